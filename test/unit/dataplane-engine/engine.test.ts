// The Dataplane API and its worker protocol, with the in-memory port (no root, no device):
// the same worker, batch path and table hand-off as the TUN / AF_PACKET engines.
import { afterEach, describe, expect, it } from "vitest";
import {
  Dataplane,
  DataplaneError,
  DEFAULT_INNER_DST_MAC,
  FlowQueryError,
} from "../../../src/dataplane/engine.ts";
import { StallSwitch } from "../../../src/dataplane/fault.ts";
import { Verdict } from "../../../src/dataplane/forwarder.ts";
import { pollUntil } from "../../../src/lab/testing.ts";
import { dipMacText } from "../../../src/lb/dip-mac.ts";
import type { ServiceModel } from "../../../src/lb/service.ts";
import { formatIp, formatMac } from "../../../src/packet/address.ts";
import { parseVxlan, VxlanPacket, VxlanStatus } from "../../../src/packet/vxlan.ts";
import { buildPacket } from "../packet/packets.ts";

const running: Dataplane[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((d) => d.stop()));
});

async function started(extra: Partial<ConstructorParameters<typeof Dataplane>[0]> = {}) {
  const dp = new Dataplane({
    io: { kind: "memory" },
    localV4: "192.0.2.2",
    flowTableSize: 4096,
    heartbeatIntervalMs: 20,
    ...extra,
  });
  running.push(dp);
  await dp.start();
  return dp;
}

/** VIP 20.20.20.100 tcp/80 + udp/53; every backend of version v sits on host 10.0.v.1, VNI v. */
function versioned(v: number, backends = 4): ServiceModel {
  return {
    services: [
      {
        name: "web",
        vip: "20.20.20.100",
        ports: [
          { protocol: "tcp", port: 80 },
          { protocol: "udp", port: 53 },
        ],
        vni: v,
        maglevSize: 1009,
        backends: Array.from({ length: backends }, (_, i) => ({
          dip: `10.10.${v}.${i + 1}`,
          host: `10.0.${v}.1`,
        })),
      },
    ],
  };
}

const lab: ServiceModel = {
  services: [
    {
      name: "web",
      vip: "20.20.20.100",
      ports: [{ protocol: "tcp", port: 80 }],
      vni: 100,
      maglevSize: 1009,
      backends: [
        { dip: "10.10.1.11", host: "198.51.100.2" },
        { dip: "10.10.1.12", host: "198.51.100.2" },
        { dip: "10.10.2.21", host: "198.51.100.6" },
        { dip: "10.10.2.22", host: "198.51.100.6" },
      ],
    },
  ],
};

function flows(n: number, dport = 80, proto: "tcp" | "udp" = "tcp", flags?: number): Uint8Array[] {
  return Array.from({ length: n }, (_, i) =>
    buildPacket({
      src: `203.0.113.${10 + (i % 200)}`,
      dst: "20.20.20.100",
      proto,
      sport: 1024 + i,
      dport,
      ...(flags !== undefined ? { flags } : {}),
    }),
  );
}

function decap(p: Uint8Array) {
  const d = new VxlanPacket();
  expect(parseVxlan(p, 0, p.length, d)).toBe(VxlanStatus.ok);
  return {
    vni: d.vni,
    host: formatIp(p, d.outerDstOffset, d.outerFamily === 4 ? 4 : 16),
    srcPort: d.udpSrcPort,
    inner: p.subarray(d.innerOffset, d.innerOffset + d.innerLength),
    innerDstMac: formatMac(p, d.ethOffset),
  };
}

describe("Dataplane (memory port)", () => {
  it("forwards nothing before a table, then VXLAN to the backend's host after apply", async () => {
    const dp = await started();
    expect(dp.appliedVersion).toBe(0);
    const before = await dp.inject(flows(3));
    expect([...before.verdicts]).toEqual([Verdict.noTable, Verdict.noTable, Verdict.noTable]);
    expect(before.outputs).toHaveLength(0);

    const r = await dp.apply(lab);
    expect(r.version).toBe(1);
    expect(r.vips).toEqual(["20.20.20.100"]);
    expect(dp.appliedVersion).toBe(1);

    const packets = flows(200);
    const out = await dp.inject(packets);
    expect(out.version).toBe(1);
    expect(out.outputs).toHaveLength(200);
    const hosts = new Set<string>();
    const ports = new Set<number>();
    for (const [i, o] of out.outputs.entries()) {
      const d = decap(o);
      expect(d.vni).toBe(100);
      hosts.add(d.host);
      ports.add(d.srcPort);
      // Inner packet intact but for the router's TTL decrement (and IPv4 checksum).
      const sent = packets[i]!;
      expect(d.inner.length).toBe(sent.length);
      expect(d.inner[8]).toBe(sent[8]! - 1);
      expect([...d.inner.subarray(12)]).toEqual([...sent.subarray(12)]);
    }
    expect([...hosts].sort()).toEqual(["198.51.100.2", "198.51.100.6"]);
    // RFC 7348 §5: the outer source port carries flow entropy.
    expect(ports.size).toBeGreaterThan(150);
  });

  it("names the chosen DIP in the inner MAC; perDipMac false writes the hosts' device MAC", async () => {
    const dp = await started();
    await dp.apply(lab);
    const one = await dp.inject(flows(1));
    const c = await dp.counters();
    const chosen = c.backends.find((b) => b.packets === 1)!;
    expect(decap(one.outputs[0]!).innerDstMac).toBe(dipMacText(chosen.dip));

    const shared = await started({ perDipMac: false });
    await shared.apply(lab);
    const out = await shared.inject(flows(20));
    expect(new Set(out.outputs.map((o) => decap(o).innerDstMac))).toEqual(
      new Set([DEFAULT_INNER_DST_MAC]),
    );
  });

  it("counts per VIP, per backend, drops by reason, connection table and batches", async () => {
    const dp = await started();
    await dp.apply(lab);
    const good = flows(100);
    const truncated = good[0]!.subarray(0, 30); // cut inside the TCP header
    const noService = flows(1, 81)[0]!;
    const badVersion = new Uint8Array(40).fill(0x55);
    await dp.inject([...good, truncated, noService, badVersion]);
    const c = await dp.counters();
    expect(c.tableVersion).toBe(1);
    expect(c.forwarded).toBe(100);
    expect(c.vips).toEqual([{ vip: "20.20.20.100", packets: 100, bytes: 100 * good[0]!.length }]);
    expect(c.backends.map((b) => b.packets).reduce((a, b) => a + b, 0)).toBe(100);
    expect(c.backends.every((b) => b.packets > 0)).toBe(true);
    expect(c.drops.truncated).toBe(1);
    expect(c.drops.noService).toBe(1);
    expect(c.drops.badVersion).toBe(1);
    expect(c.conn.size).toBe(100);
    expect(c.io.rxPackets).toBe(103);
    expect(c.io.txPackets).toBe(100);
    expect(c.io.batches).toBeGreaterThanOrEqual(2); // 103 packets, 64 per batch
    expect(c.io.maxBatch).toBe(64);
    expect(c.io.batchLatencyUs.reduce((a, b) => a + b, 0)).toBe(c.io.batches);
  });

  it("hands tables over atomically and in version order while packets flow", async () => {
    const dp = await started({ batchSize: 8 });
    await dp.apply(versioned(1));
    const seen: number[] = [];
    let stop = false;
    // Inject continuously while 40 new versions are applied.
    const traffic = (async () => {
      let i = 0;
      while (!stop) {
        const out = await dp.inject(flows(32, i++ % 2 === 0 ? 80 : 53, i % 2 ? "tcp" : "udp"));
        for (const o of out.outputs) {
          const d = decap(o);
          // Host and VNI of one packet always come from the same version of the table.
          expect(d.host).toBe(`10.0.${d.vni}.1`);
          seen.push(d.vni);
        }
      }
    })();
    for (let v = 2; v <= 41; v++) {
      const r = await dp.apply(versioned(v, 1 + (v % 5)));
      expect(r.version).toBe(v);
      expect(dp.appliedVersion).toBe(v);
    }
    stop = true;
    await traffic;
    expect(seen.length).toBeGreaterThan(0);
    // Versions observed by consecutive batches never go back.
    for (let i = 1; i < seen.length; i++) expect(seen[i]!).toBeGreaterThanOrEqual(seen[i - 1]!);
    const last = await dp.inject(flows(4));
    expect(last.version).toBe(41);
    expect(last.outputs.map((o) => decap(o).vni)).toEqual([41, 41, 41, 41]);
  });

  it("refuses an invalid model or one the forwarder cannot serve; the running table stays", async () => {
    const dp = await started();
    await dp.apply(lab);
    const bad: ServiceModel = {
      services: [{ ...lab.services[0]!, vni: 1 << 25, backends: [{ dip: "x", host: "y" }] }],
    };
    await expect(dp.apply(bad)).rejects.toThrow(DataplaneError);
    await expect(dp.apply(bad)).rejects.toThrow(/vni.*not a 24-bit integer/);
    // An IPv6 host with no localV6: the worker refuses the snapshot.
    const v6host: ServiceModel = {
      services: [
        { ...lab.services[0]!, backends: [{ dip: "10.10.1.11", host: "2001:db8:100:1::2" }] },
      ],
    };
    await expect(dp.apply(v6host)).rejects.toThrow(/IPv6 and localV6 is not set/);
    expect(dp.appliedVersion).toBe(1);
    const out = await dp.inject(flows(10));
    expect(out.version).toBe(1);
    expect(out.outputs).toHaveLength(10);
    // And the next good table gets the next version.
    const r = await dp.apply(versioned(7));
    expect(dp.appliedVersion).toBe(r.version);
  });

  it("draining keeps existing flows, down moves them", async () => {
    const dp = await started();
    await dp.apply(lab);
    const first = (await dp.inject(flows(64))).outputs.map((o) => decap(o).host);
    // The rest of each connection: ACKs (a bare SYN again would be a new connection).
    const packets = flows(64, 80, "tcp", 0x10);
    expect((await dp.inject(packets)).outputs.map((o) => decap(o).host)).toEqual(first);
    const drained: ServiceModel = {
      services: [
        {
          ...lab.services[0]!,
          backends: lab.services[0]!.backends.map((b) =>
            b.host === "198.51.100.6" ? { ...b, state: "draining" as const } : b,
          ),
        },
      ],
    };
    await dp.apply(drained);
    expect((await dp.inject(packets)).outputs.map((o) => decap(o).host)).toEqual(first);
    const down: ServiceModel = {
      services: [
        {
          ...lab.services[0]!,
          backends: lab.services[0]!.backends.map((b) =>
            b.host === "198.51.100.6" ? { ...b, state: "down" as const } : b,
          ),
        },
      ],
    };
    await dp.apply(down);
    const after = (await dp.inject(packets)).outputs.map((o) => decap(o).host);
    expect(new Set(after)).toEqual(new Set(["198.51.100.2"]));
    expect((await dp.counters()).conn.rehashed).toBe(
      first.filter((h) => h !== "198.51.100.2").length,
    );
  });

  it("lookup: an injected flow is in the table with the DIP its packets went to; lookup changes nothing", async () => {
    const dp = await started();
    await dp.apply(lab);
    const q = {
      protocol: "tcp",
      src: "203.0.113.10",
      sport: 40000,
      dst: "20.20.20.100",
      dport: 80,
    };
    const fresh = await dp.lookup(q);
    expect(fresh).toMatchObject({
      verdict: "forward",
      service: "web",
      tracked: true,
      entry: null,
      via: "maglev",
    });
    expect(fresh.maglev).toEqual({ dip: fresh.dip, host: fresh.host });
    // Looking changed nothing: the connection table is still empty.
    expect((await dp.counters()).conn.size).toBe(0);

    const pkt = (flags: number) =>
      buildPacket({ src: q.src, dst: q.dst, proto: "tcp", sport: q.sport, dport: q.dport, flags });
    const out = await dp.inject([pkt(0x02), pkt(0x10)]);
    expect(out.outputs).toHaveLength(2);
    const d = decap(out.outputs[1]!);
    const dip = lab.services[0]!.backends.find((b) => dipMacText(b.dip) === d.innerDstMac)!.dip;
    expect(fresh.dip).toBe(dip); // Maglev's answer was where the flow went

    const before = await dp.counters();
    const r = await dp.lookup(q);
    expect(r).toMatchObject({
      verdict: "forward",
      via: "entry",
      dip,
      host: d.host,
      entry: { dip, host: d.host, state: "established", backend: "up" },
      flow: { protocol: "tcp", src: q.src, sport: q.sport, dst: q.dst, dport: q.dport },
    });
    expect(await dp.counters()).toEqual(before);

    // Not a VIP here (IPv6 too), no service on the port, bad input: a typed error.
    expect(
      await dp.lookup({
        protocol: "udp",
        src: "2001:db8:c::10",
        sport: 5,
        dst: "2001:db8:f::100",
        dport: 7,
      }),
    ).toMatchObject({ verdict: "noService", reason: "2001:db8:f::100 is not a VIP of this MUX" });
    expect((await dp.lookup({ ...q, protocol: "udp" })).reason).toBe(
      "VIP 20.20.20.100 has no service on udp port 80",
    );
    await expect(dp.lookup({ ...q, sport: 0 })).rejects.toThrow(FlowQueryError);
    await expect(dp.lookup({ ...q, dst: "2001:db8::1" })).rejects.toThrow(/address family/);
    expect(await dp.counters()).toEqual(before);
  });

  it("heartbeat advances; the stall switch freezes it and the worker answers nothing", async () => {
    const stall = new StallSwitch();
    const dp = await started({ stall });
    const h0 = dp.heartbeat;
    expect(h0.running).toBe(true);
    await pollUntil(async () => dp.heartbeat.aliveAt > h0.aliveAt, {
      timeoutMs: 10_000,
      what: "a heartbeat",
    });

    stall.set(true);
    // The worker blocks at its next tick or message, before it says it is alive: this
    // request is never answered, and the heartbeat stays where it was.
    await expect(dp.counters(300)).rejects.toThrow(/did not answer/);
    const frozen = dp.heartbeat.aliveAt;
    expect(dp.heartbeat.ageMs).toBeGreaterThanOrEqual(300);
    await new Promise((r) => setTimeout(r, 200)); // ten heartbeat periods
    expect(dp.heartbeat.aliveAt).toBe(frozen);

    stall.set(false);
    await pollUntil(async () => dp.heartbeat.aliveAt > frozen, {
      timeoutMs: 10_000,
      what: "the heartbeat to resume",
    });
    await dp.apply(lab);
    expect((await dp.inject(flows(5))).outputs).toHaveLength(5);
  });

  it("stop() ends a stalled worker cleanly (it releases the stall first)", async () => {
    const stall = new StallSwitch();
    const dp = await started({ stall });
    await dp.apply(lab);
    stall.set(true);
    await expect(dp.counters(200)).rejects.toThrow(/did not answer/);
    await dp.stop();
    expect(stall.stalled).toBe(false);
    expect(dp.heartbeat.running).toBe(false);
  });

  it("stop is idempotent and ends the worker; later calls reject", async () => {
    const dp = await started();
    await dp.apply(lab);
    await Promise.all([dp.stop(), dp.stop()]);
    expect(dp.heartbeat.running).toBe(false);
    await expect(dp.apply(lab)).rejects.toThrow(/not running/);
    await expect(dp.counters()).rejects.toThrow(/not running/);
  });

  it("a worker that dies reports through onFailure; the API refuses work afterwards", async () => {
    const failures: Error[] = [];
    const dp = await started({ onFailure: (e) => failures.push(e) });
    await dp.apply(lab);
    await dp.faultKill();
    await pollUntil(async () => failures.length > 0, { timeoutMs: 10_000, what: "onFailure" });
    expect(failures).toHaveLength(1);
    expect(failures[0]!.message).toMatch(/worker exited/);
    expect(dp.heartbeat.running).toBe(false);
    await expect(dp.apply(lab)).rejects.toThrow(/worker failed/);
    await dp.stop(); // still fine after a failure
  });

  it("a device engine that cannot open reports why and leaves nothing running", async () => {
    // A TUN name the kernel cannot take (> 15 bytes): the port fails in the worker's start.
    // (No sysctl is touched: enableForwarding is off.)
    const dp = new Dataplane({
      io: { kind: "tun", name: "vipmux-name-too-long" },
      enableForwarding: false,
    });
    await expect(dp.start()).rejects.toThrow(/failed to start/);
    expect(dp.heartbeat.running).toBe(false);
  });
});
