// The userspace MUX engine in the canonical lab: real kernels, a real TUN device, VXLAN on
// the wire. The engine runs in mux1 from containerlab/mux1.yml; captures on the hosts'
// uplinks check what arrives.
//
// VIP traffic reaches mux1 through a STATIC route on the edge: this test runs the forwarding
// engine alone (no BGP speaker announces the VIPs), so the dataplane is checked by itself.
import { spawnSync } from "node:child_process";
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pollUntil, startLab, type TestLab } from "../../src/lab/testing.ts";
import { dipMacText } from "../../src/lb/dip-mac.ts";
import { formatIp } from "../../src/packet/address.ts";
import { ParsedPacket, parseIpPacket } from "../../src/packet/parse.ts";
import { sleep } from "../../src/util/proc.ts";
import {
  addonBuilt,
  capture as captureOn,
  type Decapped,
  decap,
  type RunningEngine,
  sendUdpFlows,
  startEngine,
} from "../fixtures/dataplane-lab/helpers.ts";
import { canonicalTopology, fixture, isRoot, repoRoot } from "./helpers.ts";

/** IPv4 header (checksum left 0: the raw socket fills it) + a transport header. */
function ipv4(dst: string, proto: number, l4: number[]): string {
  const total = 20 + l4.length;
  const d = dst.split(".").map(Number);
  const h = [0x45, 0, total >> 8, total & 255, 0, 1, 0, 0, 64, proto, 0, 0, 203, 0, 113, 10, ...d];
  return Buffer.from([...h, ...l4]).toString("hex");
}

const hostDipMacs: Record<string, string[]> = {
  "198.51.100.2": ["10.10.1.11", "10.10.1.12"].map((d) => dipMacText(d)),
  "198.51.100.6": ["10.10.2.21", "10.10.2.22"].map((d) => dipMacText(d)),
};

describe.skipIf(!isRoot || !addonBuilt)("dataplane: userspace engine in the lab", () => {
  let lab: TestLab;
  let engine: RunningEngine;
  let configFile: string;
  const status = () => engine.status();
  const capture = (node: string, name: string, during: () => Promise<void>) =>
    captureOn(lab, node, name, during);

  beforeAll(async () => {
    lab = await startLab(canonicalTopology, "dp", { skipCmd: true });
    // A copy, so the reload test can change it.
    configFile = `${lab.plan.dir}/mux1.yml`;
    copyFileSync(`${repoRoot}containerlab/mux1.yml`, configFile);
    // The config names its health token relative to itself.
    copyFileSync(`${repoRoot}containerlab/health-token`, `${lab.plan.dir}/health-token`);
    engine = await startEngine(lab, "mux1", configFile);
    // Static routes stand in for the BGP announcement (see the header).
    await lab.must("edge", ["ip", "route", "add", "20.20.20.100/32", "via", "192.0.2.2"]);
    await lab.must("edge", [
      "ip",
      "-6",
      "route",
      "add",
      "2001:db8:f::100/128",
      "via",
      "2001:db8:0:1::2",
    ]);
  });

  afterAll(async () => {
    await engine?.stop();
    await lab?.down();
  });

  it("routes the VIPs into its TUN device", async () => {
    const v4 = await lab.must("mux1", ["ip", "route", "show", "20.20.20.100"]);
    expect(v4).toContain("dev vipmux0");
    const v6 = await lab.must("mux1", ["ip", "-6", "route", "show", "2001:db8:f::100"]);
    expect(v6).toContain("dev vipmux0");
  });

  it("encapsulates UDP flows to the right host: VNI, outer addresses, per-flow source port, intact inner packet", async () => {
    const ports = Array.from({ length: 40 }, (_, i) => 30001 + i);
    const send = () => sendUdpFlows(lab, "client", "20.20.20.100", 7, ports);
    let host2: Uint8Array[] = [];
    const host1 = await capture("host1", "cap-host1", async () => {
      host2 = await capture("host2", "cap-host2", send);
    });
    const seen = new Map<number, Decapped>();
    for (const [pa, pkts] of [
      ["198.51.100.2", host1],
      ["198.51.100.6", host2],
    ] as const) {
      for (const p of pkts) {
        const d = decap(p);
        expect(d.vni).toBe(100);
        expect(d.outerSrc).toBe("192.0.2.2");
        expect(d.outerDst).toBe(pa);
        // The chosen DIP's own MAC (src/lb/dip-mac.ts), one of this host's DIPs.
        expect(hostDipMacs[pa]).toContain(d.innerDstMac);
        const ip = new ParsedPacket();
        expect(parseIpPacket(d.inner, d.inner.length, ip)).toBe(0);
        expect(formatIp(d.inner, 12, 4)).toBe("203.0.113.10");
        expect(formatIp(d.inner, 16, 4)).toBe("20.20.20.100");
        const sport = (d.inner[20]! << 8) | d.inner[21]!;
        const dport = (d.inner[22]! << 8) | d.inner[23]!;
        expect(dport).toBe(7);
        expect(Buffer.from(d.inner.subarray(28)).toString()).toBe(`flow-${sport}\n`);
        expect(seen.has(sport)).toBe(false);
        seen.set(sport, d);
      }
    }
    expect([...seen.keys()].sort()).toEqual(ports);
    // Both hosts get flows; the outer source port varies per flow (RFC 7348 §5 entropy).
    expect(host1.length).toBeGreaterThan(0);
    expect(host2.length).toBeGreaterThan(0);
    expect(new Set([...seen.values()].map((d) => d.srcPort)).size).toBeGreaterThan(30);

    const c = await pollUntil(
      async () => {
        const s = status();
        return s.counters.vips.find((v) => v.vip === "20.20.20.100")!.packets >= 40 ? s : undefined;
      },
      { timeoutMs: 5_000, what: "VIP counters" },
    );
    const web = c.counters.backends.filter((b) => b.service === "web");
    expect(web.reduce((a, b) => a + b.packets, 0)).toBe(40);
    expect(c.counters.io.txFailed).toBe(0);
  });

  it("forwards IPv6 VIP traffic (TCP SYN to 2001:db8:f::100) as VXLAN", async () => {
    const pkts = await capture("host1", "cap6-host1", async () => {
      await lab.exec("client", [
        "sh",
        "-c",
        "for i in 1 2 3 4 5 6 7 8; do nc -6 -z -w 1 2001:db8:f::100 80 & done; wait",
      ]);
    });
    const s = status();
    const v6 = s.counters.vips.find((v) => v.vip === "2001:db8:f::100")!;
    expect(v6.packets).toBeGreaterThan(0);
    // Some of the 8+ SYN flows hash to host1's DIPs; every one of them is well formed.
    for (const p of pkts) {
      const d = decap(p);
      expect(d.vni).toBe(101);
      expect(d.inner[0]! >> 4).toBe(6);
      expect(formatIp(d.inner, 24, 16)).toBe("2001:db8:f::100");
      expect(d.inner[6]).toBe(6); // TCP
    }
    const host1Dips = s.counters.backends
      .filter((b) => b.service === "web6" && b.host === "198.51.100.2")
      .reduce((a, b) => a + b.packets, 0);
    expect(pkts.length).toBe(host1Dips);
  });

  it("drops malformed and unexpected packets by reason and keeps forwarding", async () => {
    const before = status().counters;
    // Not a VIP, but routed to the MUX and into its device (a stale or wrong route).
    await lab.must("edge", ["ip", "route", "add", "20.20.20.101/32", "via", "192.0.2.2"]);
    await lab.must("mux1", ["ip", "route", "add", "20.20.20.101/32", "dev", "vipmux0"]);
    const tcpSyn = [0x75, 0x30, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0];
    const packets = [
      ipv4("20.20.20.100", 6, tcpSyn.slice(0, 8)), // TCP header cut at 8 bytes: truncated
      ipv4("20.20.20.100", 6, [...tcpSyn.slice(0, 12), 0x30, ...tcpSyn.slice(13)]), // doff 3: badHeaderLength
      ipv4("20.20.20.100", 6, [...tcpSyn.slice(0, 12), 0xf0, ...tcpSyn.slice(13)]), // doff 15 > 20 bytes: truncated
      ipv4("20.20.20.100", 17, [0x75, 0x30, 0, 7, 0, 200, 0, 0, 1, 2, 3, 4]), // UDP length 200 > 12: badLength
      ipv4("20.20.20.100", 17, [0x75, 0x30, 0, 7, 0, 4, 0, 0]), // UDP length 4 < 8: badLength
      ipv4("20.20.20.100", 17, [0x75, 0x30, 0, 9, 0, 9, 0, 0, 1]), // no service on udp/9
      ipv4("20.20.20.101", 17, [0x75, 0x30, 0, 7, 0, 9, 0, 0, 1]), // not a VIP
    ];
    const r = spawnSync(
      "ip",
      [
        "netns",
        "exec",
        lab.node("client").netns,
        process.execPath,
        fixture("dataplane-lab/send-raw.ts"),
        ...packets,
      ],
      { encoding: "utf8", timeout: 20_000 },
    );
    expect(r.stdout + r.stderr).toContain('"sent":7');
    const after = await pollUntil(
      async () => {
        const c = status().counters;
        const d = (k: string) => (c.drops[k] ?? 0) - (before.drops[k] ?? 0);
        return d("truncated") + d("badHeaderLength") + d("badLength") + d("noService") >= 7
          ? c
          : undefined;
      },
      { timeoutMs: 5_000, what: "drop counters" },
    );
    const delta = (k: string) => (after.drops[k] ?? 0) - (before.drops[k] ?? 0);
    expect(delta("truncated")).toBe(2);
    expect(delta("badHeaderLength")).toBe(1);
    expect(delta("badLength")).toBe(2);
    expect(delta("noService")).toBe(2);
    expect(after.forwarded).toBe(before.forwarded);

    // Still forwarding, still alive.
    const fwd0 = after.forwarded;
    await lab.must("client", [
      "sh",
      "-c",
      "echo again | socat -u - UDP4-SENDTO:20.20.20.100:7,sourceport=31999",
    ]);
    await pollUntil(async () => status().counters.forwarded === fwd0 + 1, {
      timeoutMs: 5_000,
      what: "a good packet after the bad ones",
    });
    expect(engine.child.exitCode).toBe(null);
    expect(status().heartbeat.ageMs).toBeLessThan(1_000);
  });

  it("test fault switch: SIGUSR2 stalls the worker (heartbeat ages, nothing forwarded) and resumes it", async () => {
    const fwd0 = status().counters.forwarded;
    engine.child.kill("SIGUSR2");
    await pollUntil(async () => status().heartbeat.ageMs > 600, {
      timeoutMs: 5_000,
      what: "the heartbeat to age",
    });
    await sendUdpFlows(lab, "client", "20.20.20.100", 7, [33001, 33002, 33003]);
    await sleep(300);
    expect(status().counters.forwarded).toBe(fwd0);
    engine.child.kill("SIGUSR2");
    // The packets queued in the TUN device while stalled are forwarded on resume.
    await pollUntil(async () => status().counters.forwarded === fwd0 + 3, {
      timeoutMs: 5_000,
      what: "forwarding to resume",
    });
    expect(status().heartbeat.ageMs).toBeLessThan(500);
  });

  it("reloads on SIGHUP: a bad file changes nothing; web6 moves to an IPv6 underlay", async () => {
    const good = readFileSync(configFile, "utf8");
    writeFileSync(configFile, `${good}\n  - name: broken\n    vip: not-an-ip\n`);
    engine.child.kill("SIGHUP");
    await sleep(500);
    expect(status().counters.tableVersion).toBe(1);

    const web6 = good.indexOf("  - name: web6");
    writeFileSync(
      configFile,
      good.slice(0, web6) +
        good
          .slice(web6)
          .replaceAll("host: 198.51.100.2", 'host: "2001:db8:100:1::2"')
          .replaceAll("host: 198.51.100.6", 'host: "2001:db8:100:2::2"'),
    );
    engine.child.kill("SIGHUP");
    await pollUntil(async () => status().counters.tableVersion === 2, {
      timeoutMs: 5_000,
      what: "table v2 after SIGHUP",
    });
    const before = status().counters.backends.filter((b) => b.service === "web6");
    const pkts = await capture("host1", "cap6u-host1", async () => {
      await lab.exec("client", [
        "sh",
        "-c",
        "for i in $(seq 16); do nc -6 -z -w 1 2001:db8:f::100 80 & done; wait",
      ]);
    });
    expect(pkts.length).toBeGreaterThan(0);
    for (const p of pkts) {
      const d = decap(p); // checks the outer IPv6 UDP checksum (RFC 8200 §8.1)
      expect(d.outerSrc).toBe("2001:db8:0:1::2");
      expect(d.outerDst).toBe("2001:db8:100:1::2");
      expect(d.vni).toBe(101);
      expect(formatIp(d.inner, 24, 16)).toBe("2001:db8:f::100");
    }
    const after = status().counters.backends.filter((b) => b.service === "web6");
    const toHost1 = after
      .filter((b) => b.host === "2001:db8:100:1::2")
      .reduce((a, b) => a + b.packets - (before.find((x) => x.dip === b.dip)?.packets ?? 0), 0);
    expect(pkts.length).toBe(toHost1);
  });

  it("stops cleanly on SIGTERM: device and VIP routes gone", async () => {
    await engine.stop();
    expect(engine.child.exitCode).toBe(0);
    const links = await lab.must("mux1", ["ip", "-o", "link", "show"]);
    expect(links).not.toContain("vipmux0");
    expect(await lab.must("mux1", ["ip", "route", "show", "20.20.20.100"])).toBe("");
  });

  it("a TUN device deleted under the engine ends it with a reason and a non-zero exit", async () => {
    const again = await startEngine(lab, "mux1", configFile);
    await lab.must("mux1", ["ip", "link", "del", "vipmux0"]);
    await pollUntil(async () => again.child.exitCode !== null, {
      timeoutMs: 10_000,
      what: "the engine to exit",
    });
    expect(again.child.exitCode).toBe(1);
    const log = readFileSync(`${lab.plan.dir}/engine-mux1.log`, "utf8");
    expect(log).toMatch(/worker failed: packet input failed/);
  });
});
