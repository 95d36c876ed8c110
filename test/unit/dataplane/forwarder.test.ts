import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  Forwarder,
  type ForwarderOptions,
  VERDICT_NAMES,
  Verdict,
} from "../../../src/dataplane/forwarder.ts";
import { dipMacText } from "../../../src/lb/dip-mac.ts";
import { buildForwardingTable, type ForwardingTable } from "../../../src/lb/forwarding-table.ts";
import type { BackendSpec, ServiceModel } from "../../../src/lb/service.ts";
import { formatIp, formatMac } from "../../../src/packet/address.ts";
import { ParsedPacket, ParseStatus, parseIpPacket } from "../../../src/packet/parse.ts";
import { parseVxlan, VxlanPacket, VxlanStatus } from "../../../src/packet/vxlan.ts";
import {
  buildIcmpError,
  buildPacket,
  type PacketSpec,
  verifyIpv4HeaderChecksum,
} from "../packet/packets.ts";

const OPTIONS: ForwarderOptions = {
  localV4: "192.168.1.2",
  localV6: "fd00:1::2",
  innerDstMac: "02:00:00:00:01:00",
  innerSrcMac: "02:00:00:00:00:01",
};

const HOSTS: Record<string, string> = {
  "10.10.10.11": "192.168.30.11",
  "10.10.10.12": "192.168.30.12",
  "10.10.10.13": "192.168.30.13",
  "fd10::11": "fd00:30::11",
  "fd10::12": "fd00:30::12",
};

function model(
  states: Record<string, BackendSpec["state"]> = {},
  extra: Partial<BackendSpec>[] = [],
): ServiceModel {
  const b = (dip: string): BackendSpec => ({ dip, host: HOSTS[dip]!, state: states[dip] ?? "up" });
  return {
    services: [
      {
        name: "web",
        vip: "20.20.20.100",
        ports: [{ protocol: "tcp", port: 80 }, { protocol: "udp", port: 53 }, { protocol: "icmp" }],
        vni: 100,
        maglevSize: 1009,
        backends: [
          b("10.10.10.11"),
          b("10.10.10.12"),
          b("10.10.10.13"),
          ...(extra as BackendSpec[]),
        ],
      },
      {
        name: "web6",
        vip: "2001:db8:100::10",
        ports: [{ protocol: "tcp", port: 443 }, { protocol: "icmp" }],
        vni: 600,
        maglevSize: 1009,
        backends: [b("fd10::11"), b("fd10::12")],
      },
    ],
  };
}

function table(m: ServiceModel, prev?: ForwardingTable): ForwardingTable {
  const r = buildForwardingTable(m, prev);
  if (!r.ok) throw new Error(r.error.join("\n"));
  return r.value;
}

function forwarder(m: ServiceModel = model(), options: Partial<ForwarderOptions> = {}): Forwarder {
  const f = new Forwarder({ ...OPTIONS, ...options });
  const r = f.setTable(table(m));
  expect(r.ok).toBe(true);
  return f;
}

const tcp = (sport: number, flags = 0x02, extra: Partial<PacketSpec> = {}) =>
  buildPacket({
    src: "198.51.100.7",
    dst: "20.20.20.100",
    proto: "tcp",
    sport,
    dport: 80,
    flags,
    ...extra,
  });

/** Forwards and returns the backend DIP it went to (or the drop reason). */
function send(f: Forwarder, pkt: Uint8Array, now = 0): string | Verdict {
  const v = f.forward(pkt, pkt.length, now);
  if (v !== Verdict.forward) return v;
  return f.forwardingTable!.backendById[f.lastBackendId]!.dip;
}

describe("forwarder", () => {
  it("encapsulates to the chosen backend's host with the service VNI", () => {
    const f = forwarder();
    const pkt = tcp(40000);
    expect(f.forward(pkt, pkt.length, 0)).toBe(Verdict.forward);
    const d = new VxlanPacket();
    expect(parseVxlan(f.out, 0, f.outLength, d)).toBe(VxlanStatus.ok);
    const dip = f.forwardingTable!.backendById[f.lastBackendId]!.dip;
    expect(formatIp(f.out, d.outerDstOffset, 4)).toBe(HOSTS[dip]);
    expect(formatIp(f.outHost)).toBe(HOSTS[dip]);
    expect(formatIp(f.out, d.outerSrcOffset, 4)).toBe("192.168.1.2");
    expect(d.vni).toBe(100);
    expect(d.udpSrcPort).toBeGreaterThanOrEqual(49152);
    // The inner packet is the input with TTL - 1 and a still-valid header checksum.
    const inner = f.out.slice(d.innerOffset, d.innerOffset + d.innerLength);
    expect(inner[8]).toBe(63);
    expect(verifyIpv4HeaderChecksum(inner)).toBe(true);
    const expected = pkt.slice();
    expected[8] = 63;
    expect([...inner.subarray(12)]).toEqual([...expected.subarray(12)]);
    expect([...pkt.subarray(8, 9)]).toEqual([64]); // input untouched
  });

  it("writes the chosen DIP's MAC as the inner destination, the configured source MAC after it", () => {
    for (const [f, mk, v6] of [
      [forwarder(), (sport: number) => tcp(sport), false],
      [
        forwarder(),
        (sport: number) =>
          buildPacket({
            src: "2001:db8::7",
            dst: "2001:db8:100::10",
            proto: "tcp",
            sport,
            dport: 443,
            flags: 0x02,
          }),
        true,
      ],
    ] as const) {
      const macs = new Map<string, string>();
      for (let sport = 30000; sport < 30200; sport++) {
        const pkt = mk(sport);
        expect(f.forward(pkt, pkt.length, 0)).toBe(Verdict.forward);
        const d = new VxlanPacket();
        expect(parseVxlan(f.out, 0, f.outLength, d)).toBe(VxlanStatus.ok);
        const dip = f.forwardingTable!.backendById[f.lastBackendId]!.dip;
        const mac = formatMac(f.out, d.ethOffset);
        expect(mac).toBe(dipMacText(dip));
        expect(formatMac(f.out, d.ethOffset + 6)).toBe("02:00:00:00:00:01");
        macs.set(dip, mac);
      }
      // Every backend was chosen at least once, each with its own MAC.
      expect(macs.size).toBe(v6 ? 2 : 3);
      expect(new Set(macs.values()).size).toBe(macs.size);
    }
    expect(dipMacText("10.10.10.12")).toBe("02:76:0a:0a:0a:0c");
  });

  it("perDipMac: false keeps the fixed inner destination (hosts with an older agent)", () => {
    const f = forwarder(model(), { perDipMac: false });
    const pkt = tcp(40001);
    expect(f.forward(pkt, pkt.length, 0)).toBe(Verdict.forward);
    const d = new VxlanPacket();
    parseVxlan(f.out, 0, f.outLength, d);
    expect(formatMac(f.out, d.ethOffset)).toBe("02:00:00:00:01:00");
    const g = forwarder(model(), { perDipMac: false, innerDstMac: undefined });
    g.forward(pkt, pkt.length, 0);
    expect(formatMac(g.out, d.ethOffset)).toBe("02:76:6d:78:00:01");
  });

  it("keeps a flow on one backend and spreads flows by weight", () => {
    const f = forwarder();
    const seen = new Map<string, number>();
    for (let port = 1024; port < 1024 + 3000; port++) {
      const a = send(f, tcp(port));
      expect(send(f, tcp(port, 0x10))).toBe(a);
      seen.set(String(a), (seen.get(String(a)) ?? 0) + 1);
    }
    expect([...seen.keys()].sort()).toEqual(["10.10.10.11", "10.10.10.12", "10.10.10.13"]);
    for (const n of seen.values()) expect(Math.abs(n - 1000)).toBeLessThan(150);
    const c = f.counters();
    expect(c.forwarded).toBe(6000);
    expect(c.services.find((s) => s.service === "web")!.packets).toBe(6000);
    expect(c.vips.find((v) => v.vip === "20.20.20.100")!.packets).toBe(6000);
    expect(c.backends.reduce((a, b) => a + b.packets, 0)).toBe(6000);
    expect(c.conn.inserts).toBe(3000);
    expect(c.conn.size).toBe(3000);
  });

  it("sends every MUX's copy of a flow to the same backend (same model, fresh state)", () => {
    const a = forwarder();
    const b = forwarder();
    for (let port = 2000; port < 2500; port++)
      expect(send(a, tcp(port))).toBe(send(b, tcp(port, 0x10)));
  });

  it("keeps flows on a draining backend, moves flows off a failed one", () => {
    const f = forwarder();
    const flows = new Map<number, string>();
    for (let port = 3000; port < 3600; port++) {
      flows.set(port, send(f, tcp(port)) as string);
      send(f, tcp(port, 0x10)); // handshake ACK: established
    }
    const victim = "10.10.10.12";
    f.setTable(table(model({ [victim]: "draining" }), f.forwardingTable));
    for (const [port, dip] of flows) expect(send(f, tcp(port, 0x10))).toBe(dip);
    for (let port = 10000; port < 10300; port++) expect(send(f, tcp(port))).not.toBe(victim);

    f.setTable(table(model({ [victim]: "down" }), f.forwardingTable));
    let moved = 0;
    for (const [port, dip] of flows) {
      const now = send(f, tcp(port, 0x10));
      if (dip === victim) {
        expect(now).not.toBe(victim);
        moved++;
      } else expect(now).toBe(dip); // the others stay put
    }
    expect(moved).toBeGreaterThan(0);
    expect(f.connRehashed).toBe(moved);
  });

  it("a new connection reusing a drained flow's ports (bare SYN) never goes to the draining backend", () => {
    const f = forwarder();
    const victim = "10.10.10.12";
    const reused: number[] = [];
    for (let port = 20000; port < 20400; port++) {
      if (send(f, tcp(port)) === victim) reused.push(port);
      send(f, tcp(port, 0x10));
      send(f, tcp(port, 0x11)); // FIN: the old connection closes, its entry lingers
    }
    expect(reused.length).toBeGreaterThan(0);
    f.setTable(table(model({ [victim]: "draining" }), f.forwardingTable));
    const other = forwarder(model({ [victim]: "draining" }));
    for (const port of reused) {
      // Same 5-tuple, new SYN: the hash's answer, as a MUX without the old entry would give.
      const now = send(f, tcp(port));
      expect(now).not.toBe(victim);
      expect(now).toBe(send(other, tcp(port)));
      expect(send(f, tcp(port, 0x10))).toBe(now); // and the connection stays there
    }
  });

  it("forwards non-SYN packets without an entry by the hash, and falls back when the table is full", () => {
    const f = forwarder(model(), { conn: { capacity: 4, untrustedQuota: 2 } });
    const ref = forwarder();
    // Mid-flow packets of flows this MUX never saw open: by the hash, and no entry.
    for (let port = 5000; port < 5020; port++)
      expect(send(f, tcp(port, 0x10))).toBe(send(ref, tcp(port)));
    expect(f.connNoHandshake).toBe(20);
    expect(f.connInserts).toBe(0);
    // New flows (SYNs) past the untrusted quota: by the hash too, counted as fallback.
    for (let port = 6000; port < 6020; port++)
      expect(send(f, tcp(port))).toBe(send(ref, tcp(port)));
    expect(f.connInserts).toBe(2);
    expect(f.connFallback).toBe(18);
    expect(f.connUntrustedRefused).toBe(18);
    expect(f.counters().drops.noService).toBe(0);
  });

  it("connection-table poisoning: spoofed ACK pairs create nothing; flows opened during the attack survive a backend change", () => {
    // The table holds 1,000 flows; the attacker sends ACK, ACK for 20,000 spoofed tuples
    // (which, before, promoted each to a 900 s established entry and filled the table).
    const f = forwarder(model(), { conn: { capacity: 1000, untrustedQuota: 250 } });
    const spoofed = (i: number, flags: number) =>
      tcp(1024 + (i % 60_000), flags, { src: `203.0.${(i >> 8) & 0xff}.${i & 0xff}` });
    const legit = (i: number, flags: number) => tcp(40_000 + i, flags, { src: "198.51.100.99" });
    const first = new Map<number, string>();
    let t = 0;
    for (let i = 0; i < 20_000; i++) {
      send(f, spoofed(i, 0x10), t);
      send(f, spoofed(i, 0x10), t + 1);
      if (i % 200 === 0) {
        // A real client opens a connection: SYN, then the handshake's ACK, then data.
        const n = i / 200;
        first.set(n, send(f, legit(n, 0x02), t) as string);
        send(f, legit(n, 0x10), t + 2);
        send(f, legit(n, 0x18), t + 3);
      }
      t += 1;
    }
    expect(first.size).toBe(100);
    // A backend is added: Maglev moves about a quarter of new flows; live ones stay.
    f.setTable(
      table(model({}, [{ dip: "10.10.10.14", host: "192.168.30.14" }]), f.forwardingTable),
    );
    let moved = 0;
    for (const [n, dip] of first) if (send(f, legit(n, 0x10), t) !== dip) moved++;
    expect(moved).toBe(0);
    // The attacker got no entry; every legitimate flow got one.
    expect(f.connNoHandshake).toBe(40_000);
    expect(f.conn.size).toBe(100);
    expect(f.connFallback).toBe(0);
    // Sanity: the hash alone would have moved some of them (what untracked flows suffer).
    const fresh = forwarder(model({}, [{ dip: "10.10.10.14", host: "192.168.30.14" }]));
    expect(
      [...first].filter(([n, dip]) => send(fresh, legit(n, 0x02)) !== dip).length,
    ).toBeGreaterThan(5);
  });

  it("delivers an ICMP frag-needed to the flow's backend, even after the Maglev table moved", () => {
    const f = forwarder();
    const port = 4444;
    const dip = send(f, tcp(port)) as string;
    send(f, tcp(port, 0x10));
    // Add a backend: new flows may map elsewhere now; the entry keeps this one.
    f.setTable(
      table(model({}, [{ dip: "10.10.10.14", host: "192.168.30.14" }]), f.forwardingTable),
    );
    const quoted = buildPacket({
      src: "20.20.20.100",
      dst: "198.51.100.7",
      proto: "tcp",
      sport: 80,
      dport: port,
      flags: 0x10,
      payload: new Uint8Array(1400),
    });
    const err = buildIcmpError("203.0.113.1", "20.20.20.100", 3, 4, quoted, 28, 1400);
    expect(send(f, err)).toBe(dip);
    // It does not create or refresh entries.
    expect(f.connInserts).toBe(1);
    // Without an entry it goes where the hash sends the flow.
    const g = forwarder();
    expect(send(g, err)).toBe(send(forwarder(), tcp(port)));
  });

  it("forwards IPv6 packets and ICMPv6 Packet Too Big over an IPv6 underlay", () => {
    const f = forwarder();
    const pkt = buildPacket({
      src: "2001:db8::77",
      dst: "2001:db8:100::10",
      proto: "tcp",
      sport: 5555,
      dport: 443,
      ext: [0],
    });
    const dip = send(f, pkt) as string;
    expect(dip).toMatch(/^fd10::1[12]$/);
    const d = new VxlanPacket();
    expect(parseVxlan(f.out, 0, f.outLength, d)).toBe(VxlanStatus.ok);
    expect(d.outerFamily).toBe(6);
    expect(formatIp(f.out, d.outerDstOffset, 16)).toBe(HOSTS[dip]);
    expect(d.vni).toBe(600);
    expect(f.out[d.innerOffset + 7]).toBe(63);
    const quoted = buildPacket({
      src: "2001:db8:100::10",
      dst: "2001:db8::77",
      proto: "tcp",
      sport: 443,
      dport: 5555,
      payload: new Uint8Array(1300),
    });
    expect(
      send(f, buildIcmpError("2001:db8:ffff::1", "2001:db8:100::10", 2, 0, quoted, 1000, 1280)),
    ).toBe(dip);
    const echo = buildPacket({ src: "2001:db8::77", dst: "2001:db8:100::10", proto: "icmp" });
    expect(typeof send(f, echo)).toBe("string");
  });

  it("forwards ICMP echo requests and fragments; drops what it must, counting each reason", () => {
    const f = forwarder();
    expect(
      typeof send(f, buildPacket({ src: "198.51.100.7", dst: "20.20.20.100", proto: "icmp" })),
    ).toBe("string");
    const frag = buildPacket({
      src: "198.51.100.7",
      dst: "20.20.20.100",
      proto: "udp",
      sport: 1,
      dport: 53,
      fragOffset: 100,
    });
    expect(typeof send(f, frag)).toBe("string");
    const cases: [Uint8Array, Verdict][] = [
      [
        buildPacket({ src: "198.51.100.7", dst: "20.20.20.100", proto: "icmp", icmpType: 0 }),
        Verdict.icmpUnsupported,
      ],
      [
        buildPacket({
          src: "198.51.100.7",
          dst: "20.20.20.101",
          proto: "tcp",
          sport: 1,
          dport: 80,
        }),
        Verdict.noService,
      ],
      [tcp(1, 0x02, { dport: 81 }), Verdict.noService],
      [tcp(1, 0x02, { ttl: 1 }), Verdict.ttlExhausted],
      [tcp(1).subarray(0, 30), Verdict.truncated],
    ];
    for (const [pkt, why] of cases) expect(send(f, pkt)).toBe(why);
    const none = forwarder(
      model({ "10.10.10.11": "down", "10.10.10.12": "down", "10.10.10.13": "draining" }),
    );
    expect(send(none, tcp(1))).toBe(Verdict.noBackend);
    const drops = f.counters().drops;
    expect(drops.icmpUnsupported).toBe(1);
    expect(drops.noService).toBe(2);
    expect(drops.ttlExhausted).toBe(1);
    expect(drops.truncated).toBe(1);
    const empty = new Forwarder(OPTIONS);
    expect(send(empty, tcp(1))).toBe(Verdict.noTable);
  });

  it("writes into a caller-owned output buffer", () => {
    const f = forwarder(model(), { maxPacket: 1500 });
    const arena = new Uint8Array(4 * 1570);
    expect(() => f.setOutput(arena.subarray(0, 1000))).toThrow(RangeError);
    f.setOutput(arena.subarray(1570, 3140));
    const pkt = tcp(1);
    expect(f.forward(pkt, pkt.length, 0)).toBe(Verdict.forward);
    expect(arena[1570]).toBe(0x45);
    expect(arena[0]).toBe(0);
  });

  it("numbers parser failures as the parser does", () => {
    for (const [name, code] of Object.entries(ParseStatus)) {
      if (name !== "ok") expect((Verdict as Record<string, number>)[name]).toBe(code);
    }
  });

  it("refuses packets too big for the output buffer", () => {
    const f = forwarder(model(), { maxPacket: 100 });
    expect(send(f, tcp(1, 0x02, { payload: new Uint8Array(200) }))).toBe(Verdict.tooBig);
  });

  it("refuses a table whose hosts need an underlay family it lacks", () => {
    const f = new Forwarder({ ...OPTIONS, localV6: undefined });
    const r = f.setTable(table(model()));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error[0]).toMatch(/localV6 is not set/);
  });

  it("leaves the parsed view of the output consistent (inner re-parses)", () => {
    const f = forwarder();
    const pkt = buildPacket({
      src: "198.51.100.7",
      dst: "20.20.20.100",
      proto: "udp",
      sport: 999,
      dport: 53,
      payload: new Uint8Array(64),
    });
    expect(f.forward(pkt, pkt.length, 0)).toBe(Verdict.forward);
    const d = new VxlanPacket();
    parseVxlan(f.out, 0, f.outLength, d);
    const p = new ParsedPacket();
    expect(parseIpPacket(f.out.subarray(d.innerOffset), d.innerLength, p)).toBe(0);
    expect(p.flowDstPort).toBe(53);
  });
});

describe("forwarder distributions and robustness", () => {
  const svcModel = (distribution: "5-tuple" | "3-tuple" | "2-tuple"): ServiceModel => ({
    services: [
      {
        name: "sticky",
        vip: "20.20.20.100",
        ports: [
          { protocol: "tcp", port: 80 },
          { protocol: "udp", port: 53 },
        ],
        distribution,
        vni: 7,
        maglevSize: 1009,
        backends: Array.from({ length: 8 }, (_, i) => ({
          dip: `10.10.10.${20 + i}`,
          host: `192.168.30.${20 + i}`,
        })),
      },
    ],
  });
  const spec = (src: string, sport: number): PacketSpec => ({
    src,
    dst: "20.20.20.100",
    proto: "tcp",
    sport,
    dport: 80,
  });
  const from = (src: string, proto: "tcp" | "udp", sport: number) =>
    buildPacket({ src, dst: "20.20.20.100", proto, sport, dport: proto === "tcp" ? 80 : 53 });

  it("3-tuple and 2-tuple services keep a client on one backend; 5-tuple spreads its connections", () => {
    for (const d of ["5-tuple", "3-tuple", "2-tuple"] as const) {
      const f = forwarder(svcModel(d));
      const tcpBackends = new Set<string | Verdict>();
      for (let port = 1000; port < 1064; port++)
        tcpBackends.add(send(f, from("198.51.100.9", "tcp", port)));
      const udp = send(f, from("198.51.100.9", "udp", 5000));
      if (d === "5-tuple") expect(tcpBackends.size).toBeGreaterThan(4);
      else expect(tcpBackends.size).toBe(1);
      if (d === "2-tuple") expect(udp).toBe([...tcpBackends][0]);
      // Different clients still spread.
      const clients = new Set<string | Verdict>();
      for (let i = 1; i < 64; i++) clients.add(send(f, from(`198.51.100.${i}`, "tcp", 1000)));
      expect(clients.size).toBeGreaterThan(4);
    }
  });

  it("3-tuple and 2-tuple services: a client's new connection follows its entry, so its live connections stay put", () => {
    const grown = (d: "3-tuple" | "2-tuple"): ServiceModel => {
      const m = svcModel(d);
      const s = m.services[0]!;
      return {
        services: [
          { ...s, backends: [...s.backends, { dip: "10.10.10.28", host: "192.168.30.28" }] },
        ],
      };
    };
    for (const d of ["3-tuple", "2-tuple"] as const) {
      // A client whose Maglev choice moves to the added backend.
      const after = forwarder(grown(d));
      const client = Array.from({ length: 200 }, (_, i) => `198.51.100.${i + 1}`).find(
        (c) => send(after, from(c, "tcp", 1000)) === "10.10.10.28",
      )!;
      expect(client).toBeDefined();
      const f = forwarder(svcModel(d));
      const first = send(f, from(client, "tcp", 1000));
      expect(send(f, buildPacket({ ...spec(client, 1000), flags: 0x10 }))).toBe(first);
      f.setTable(table(grown(d), f.forwardingTable));
      // A second connection (bare SYN from a new port) shares the client's entry...
      expect(send(f, from(client, "tcp", 2000))).toBe(first);
      // ...and the first connection is still where it lives.
      expect(send(f, buildPacket({ ...spec(client, 1000), flags: 0x18 }))).toBe(first);
      expect(f.connRehashed).toBe(0);
    }
  });

  it("sends every fragment of a datagram to one backend (the 3-tuple's)", () => {
    const f = forwarder(svcModel("5-tuple"));
    const ref = forwarder(svcModel("3-tuple"));
    for (let i = 1; i < 40; i++) {
      const src = `198.51.100.${i}`;
      const first = buildPacket({
        src,
        dst: "20.20.20.100",
        proto: "udp",
        sport: 7,
        dport: 53,
        moreFragments: true,
      });
      const last = buildPacket({
        src,
        dst: "20.20.20.100",
        proto: "udp",
        sport: 7,
        dport: 53,
        fragOffset: 185,
      });
      const a = send(f, first);
      expect(send(f, last)).toBe(a);
      expect(a).toBe(send(ref, from(src, "udp", 7)));
    }
    expect(f.conn.size).toBe(0); // fragments are not tracked
  });

  it("reclaims idle flows through expire()", () => {
    const f = forwarder();
    for (let port = 1; port <= 100; port++) send(f, tcp(port), 0);
    expect(f.conn.size).toBe(100);
    expect(f.expire(60_000, f.conn.slots)).toBe(100);
    expect(f.conn.size).toBe(0);
  });

  it("never throws on arbitrary bytes and counts every packet exactly once", () => {
    const f = forwarder();
    const seeds = [
      tcp(80),
      buildPacket({
        src: "2001:db8::1",
        dst: "2001:db8:100::10",
        proto: "tcp",
        sport: 1,
        dport: 443,
      }),
    ];
    fc.assert(
      fc.property(
        fc.constantFrom(...seeds),
        fc.array(fc.tuple(fc.nat(80), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
        fc.integer({ min: 0, max: 100 }),
        (seed, edits, cut) => {
          const b = seed.slice();
          for (const [i, v] of edits) if (i < b.length) b[i] = v;
          const len = Math.max(0, b.length - cut);
          const before = f.verdicts.reduce((a, x) => a + x, 0);
          const v = f.forward(b, len, 0);
          expect(v).toBeGreaterThanOrEqual(0);
          expect(v).toBeLessThan(VERDICT_NAMES.length);
          expect(f.verdicts.reduce((a, x) => a + x, 0)).toBe(before + 1);
          if (v === Verdict.forward) expect(f.outLength).toBeGreaterThan(50);
        },
      ),
      { numRuns: 2000 },
    );
  });
});
