// Forwarder.lookup (`vipmux flow`): it predicts exactly what forward() then does with the
// same packet, and it changes nothing (no entry created, refreshed, moved or reclaimed; no
// counter moves). Also the 5-tuple packet builder it is fed with.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type FlowLookup,
  Forwarder,
  VERDICT_NAMES,
  Verdict,
} from "../../../src/dataplane/forwarder.ts";
import { buildForwardingTable, type ForwardingTable } from "../../../src/lb/forwarding-table.ts";
import type { BackendSpec, ServiceModel } from "../../../src/lb/service.ts";
import { buildFlowPacket, FlowQueryError } from "../../../src/packet/build.ts";
import { TcpFlag } from "../../../src/packet/constants.ts";
import { ParsedPacket, ParseStatus, parseIpPacket } from "../../../src/packet/parse.ts";
import { buildPacket, verifyIpv4HeaderChecksum } from "../packet/packets.ts";

const DIPS = ["10.10.10.11", "10.10.10.12", "10.10.10.13", "10.10.10.14"];
const DIPS6 = ["fd10::11", "fd10::12"];

function model(states: Record<string, BackendSpec["state"] | "gone"> = {}): ServiceModel {
  const b = (dip: string, i: number): BackendSpec[] =>
    states[dip] === "gone"
      ? []
      : [
          {
            dip,
            host: dip.includes(":") ? `fd00:30::${i + 1}` : `192.168.30.${i + 1}`,
            state: (states[dip] ?? "up") as BackendSpec["state"],
          },
        ];
  return {
    services: [
      {
        name: "web",
        vip: "20.20.20.100",
        ports: [
          { protocol: "tcp", port: 80 },
          { protocol: "udp", port: 53 },
        ],
        vni: 100,
        maglevSize: 1009,
        backends: DIPS.flatMap(b),
      },
      {
        name: "web6",
        vip: "2001:db8:100::10",
        ports: [{ protocol: "tcp", port: 443 }],
        vni: 600,
        maglevSize: 1009,
        backends: DIPS6.flatMap(b),
      },
    ],
  };
}

function table(m: ServiceModel, prev?: ForwardingTable): ForwardingTable {
  const r = buildForwardingTable(m, prev);
  if (!r.ok) throw new Error(r.error.join("\n"));
  return r.value;
}

function forwarder(capacity = 4096): Forwarder {
  const f = new Forwarder({
    localV4: "192.168.1.2",
    localV6: "fd00:1::2",
    innerSrcMac: "02:00:00:00:00:01",
    conn: { capacity, untrustedQuota: Math.max(1, capacity >> 1) },
  });
  expect(f.setTable(table(model())).ok).toBe(true);
  return f;
}

/** Everything lookup must leave alone: counters (conn table included) and the table's slots. */
function state(f: Forwarder) {
  const slots = (f.conn as unknown as { d: Uint32Array }).d;
  return {
    counters: JSON.stringify(f.counters()),
    slots: Buffer.from(slots.buffer, slots.byteOffset, slots.byteLength).toString("base64"),
    last: [f.lastServiceId, f.lastBackendId],
  };
}

/** lookup, then forward the same packet: the prediction must be what happened. */
function checkAgainstForward(f: Forwarder, pkt: Uint8Array, now: number): FlowLookup {
  const before = state(f);
  const r = f.lookup(pkt, pkt.length, now);
  expect(state(f)).toEqual(before);
  const v = f.forward(pkt, pkt.length, now);
  expect(r.verdict).toBe(VERDICT_NAMES[v]);
  if (v === Verdict.forward) {
    const b = f.forwardingTable!.backendById[f.lastBackendId]!;
    expect(r.dip).toBe(b.dip);
    expect(r.host).toBe(b.host);
  } else expect(r.dip).toBeNull();
  return r;
}

const look = (f: Forwarder, pkt: Uint8Array, now: number) => f.lookup(pkt, pkt.length, now);

const tcp = (sport: number, flags: number, src = "198.51.100.7") =>
  buildPacket({ src, dst: "20.20.20.100", proto: "tcp", sport, dport: 80, flags });

describe("Forwarder.lookup", () => {
  it("a new flow: Maglev's choice; then the entry, untrusted -> established -> closing", () => {
    const f = forwarder();
    const first = checkAgainstForward(f, tcp(40000, TcpFlag.syn), 0);
    expect(first).toMatchObject({
      verdict: "forward",
      service: "web",
      distribution: "5-tuple",
      tracked: true,
      entry: null,
      via: "maglev",
      flow: { protocol: "tcp", src: "198.51.100.7", sport: 40000, dst: "20.20.20.100", dport: 80 },
    });
    expect(first.maglev).toEqual({ dip: first.dip, host: first.host });

    const ack = checkAgainstForward(f, tcp(40000, TcpFlag.ack), 10);
    expect(ack.entry).toMatchObject({ dip: first.dip, state: "untrusted", backend: "up" });
    expect(ack.via).toBe("entry");
    expect(look(f, tcp(40000, TcpFlag.ack), 20).entry).toMatchObject({
      state: "established",
      idleLeftMs: 900_000 - 10,
    });
    checkAgainstForward(f, tcp(40000, TcpFlag.ack | TcpFlag.fin), 30);
    expect(look(f, tcp(40000, TcpFlag.ack), 40).entry?.state).toBe("closing");
  });

  it("agrees with forward() through drains, failures, removals and bare SYNs on known ports", () => {
    const f = forwarder();
    const flows = Array.from({ length: 300 }, (_, i) => 20000 + i);
    for (const port of flows) {
      checkAgainstForward(f, tcp(port, TcpFlag.syn), 0);
      checkAgainstForward(f, tcp(port, TcpFlag.ack), 1);
    }
    const vias = new Set<string | null>();
    const steps: Record<string, BackendSpec["state"] | "gone">[] = [
      { "10.10.10.12": "draining" },
      { "10.10.10.12": "draining", "10.10.10.13": "down" },
      { "10.10.10.13": "gone" },
      {},
    ];
    let now = 2;
    for (const states of steps) {
      f.setTable(table(model(states), f.forwardingTable));
      for (const port of flows) {
        // A bare SYN on every third flow (a new connection reusing the ports), ACKs otherwise.
        const flags = port % 3 === 0 ? TcpFlag.syn : TcpFlag.ack;
        const r = checkAgainstForward(f, tcp(port, flags), now++);
        vias.add(r.via);
        if (r.via === "entry" && r.entry?.backend === "draining")
          expect(r.maglev?.dip).not.toBe("10.10.10.12");
      }
    }
    expect([...vias].sort()).toEqual(["entry", "new-connection", "rehash"]);
  });

  it("agrees with forward() on random packet sequences, and changes nothing itself", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            port: fc.integer({ min: 1000, max: 1015 }),
            proto: fc.constantFrom("tcp" as const, "udp" as const),
            flags: fc.constantFrom(0x02, 0x10, 0x12, 0x11, 0x04, 0x18),
            dt: fc.integer({ min: 0, max: 8_000 }),
            lookupOnly: fc.boolean(),
            change: fc.option(fc.constantFrom("draining", "down", "gone", "up"), {
              freq: 8,
            }),
          }),
          { maxLength: 80 },
        ),
        (ops) => {
          const f = forwarder(8);
          let now = 0;
          for (const op of ops) {
            now += op.dt;
            if (op.change !== null)
              f.setTable(table(model({ "10.10.10.11": op.change }), f.forwardingTable));
            const pkt = buildPacket({
              src: "198.51.100.7",
              dst: "20.20.20.100",
              proto: op.proto,
              sport: op.port,
              dport: op.proto === "tcp" ? 80 : 53,
              flags: op.flags,
            });
            if (op.lookupOnly) {
              const before = state(f);
              f.lookup(pkt, pkt.length, now);
              expect(state(f)).toEqual(before);
            } else checkAgainstForward(f, pkt, now);
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it("leaves an expired entry for forward() to reclaim, and reports the flow as new", () => {
    const f = forwarder();
    checkAgainstForward(f, tcp(5000, TcpFlag.syn), 0);
    const late = 60_000; // past the untrusted timeout (5 s)
    const before = state(f);
    const r = look(f, tcp(5000, TcpFlag.ack), late);
    expect(r.entry).toBeNull();
    expect(r.via).toBe("maglev");
    expect(state(f)).toEqual(before);
    expect(f.conn.size).toBe(1);
    checkAgainstForward(f, tcp(5000, TcpFlag.ack), late);
    expect(f.conn.expired).toBe(1);
  });

  it("says why a packet would not be forwarded", () => {
    const empty = new Forwarder({ localV4: "192.168.1.2", innerSrcMac: "02:00:00:00:00:01" });
    const p = tcp(1, TcpFlag.syn);
    expect(empty.lookup(p, p.length, 0)).toMatchObject({ verdict: "noTable", flow: null });

    const f = forwarder();
    const other = buildPacket({
      src: "198.51.100.7",
      dst: "20.20.20.99",
      proto: "tcp",
      sport: 1,
      dport: 80,
    });
    expect(checkAgainstForward(f, other, 0)).toMatchObject({
      verdict: "noService",
      reason: "20.20.20.99 is not a VIP of this MUX",
      service: null,
    });
    const port81 = buildPacket({
      src: "198.51.100.7",
      dst: "20.20.20.100",
      proto: "tcp",
      sport: 1,
      dport: 81,
    });
    expect(checkAgainstForward(f, port81, 0).reason).toBe(
      "VIP 20.20.20.100 has no service on tcp port 81",
    );
    const cut = p.subarray(0, 30);
    expect(checkAgainstForward(f, cut, 0)).toMatchObject({
      verdict: "truncated",
      reason: "malformed packet (truncated)",
    });
    const ttl1 = buildPacket({
      src: "198.51.100.7",
      dst: "20.20.20.100",
      proto: "tcp",
      sport: 1,
      dport: 80,
      ttl: 1,
    });
    expect(checkAgainstForward(f, ttl1, 0).verdict).toBe("ttlExhausted");

    // Every backend down: no Maglev choice, dropped; an established flow re-hashes to nothing.
    checkAgainstForward(f, tcp(7000, TcpFlag.syn), 0);
    checkAgainstForward(f, tcp(7000, TcpFlag.ack), 0);
    f.setTable(
      table(model(Object.fromEntries(DIPS.map((d) => [d, "down" as const]))), f.forwardingTable),
    );
    const r = checkAgainstForward(f, tcp(7000, TcpFlag.ack), 1);
    expect(r).toMatchObject({
      verdict: "noBackend",
      reason: "service web has no backend up",
      maglev: null,
      via: "rehash",
    });
    expect(r.entry?.backend).toBe("down");
  });

  it("looks up IPv6 flows and untracked packets (fragments: the 3-tuple hash, no entry)", () => {
    const f = forwarder();
    const v6 = (flags: number) =>
      buildPacket({
        src: "2001:db8::7",
        dst: "2001:db8:100::10",
        proto: "tcp",
        sport: 33333,
        dport: 443,
        flags,
      });
    checkAgainstForward(f, v6(TcpFlag.syn), 0);
    const r = checkAgainstForward(f, v6(TcpFlag.ack), 1);
    expect(r).toMatchObject({ service: "web6", via: "entry", entry: { state: "untrusted" } });
    expect(DIPS6).toContain(r.dip);
    expect(r.flow?.src).toBe("2001:db8::7");

    const frag = buildPacket({
      src: "198.51.100.7",
      dst: "20.20.20.100",
      proto: "udp",
      sport: 7,
      dport: 53,
      moreFragments: true,
    });
    expect(checkAgainstForward(f, frag, 0)).toMatchObject({
      tracked: false,
      entry: null,
      via: "maglev",
    });
  });
});

describe("buildFlowPacket", () => {
  it("builds a valid IPv4 or IPv6 TCP/UDP packet the parser reads back as the 5-tuple", () => {
    const cases = [
      { protocol: "tcp", src: "203.0.113.10", sport: 40000, dst: "20.20.20.100", dport: 80 },
      { protocol: "udp", src: "203.0.113.10", sport: 5353, dst: "20.20.20.100", dport: 53 },
      { protocol: "TCP", src: "2001:db8:c::10", sport: 1, dst: "2001:db8:f::100", dport: 65535 },
      { protocol: "udp", src: "2001:db8:c::10", sport: 9, dst: "2001:db8:f::100", dport: 7 },
    ];
    for (const q of cases) {
      const b = buildFlowPacket(q);
      const p = new ParsedPacket();
      expect(parseIpPacket(b, b.length, p)).toBe(ParseStatus.ok);
      expect(p.ipLength).toBe(b.length);
      expect(p.flowProto).toBe(q.protocol.toLowerCase() === "tcp" ? 6 : 17);
      expect([p.flowSrcPort, p.flowDstPort, p.flowHasPorts, p.fragment]).toEqual([
        q.sport,
        q.dport,
        1,
        0,
      ]);
      if (p.flowProto === 6) expect(p.tcpFlags).toBe(TcpFlag.ack);
      if (p.family === 4) expect(verifyIpv4HeaderChecksum(b)).toBe(true);
      // The TCP/UDP checksum verifies (computed here without the codec: RFC 1071 sum).
      const addr = p.family === 4 ? 4 : 16;
      const l4Len = b.length - p.l4Offset;
      let sum = p.flowProto + l4Len;
      const words = (from: number, to: number) => {
        for (let i = from; i < to; i += 2) sum += (b[i]! << 8) | (b[i + 1] ?? 0);
      };
      words(p.flowSrcOffset, p.flowSrcOffset + addr);
      words(p.flowDstOffset, p.flowDstOffset + addr);
      words(p.l4Offset, b.length);
      while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
      expect(sum).toBe(0xffff);
    }
  });

  it("refuses a bad protocol, address, port or a mix of families with FlowQueryError", () => {
    const ok = { protocol: "tcp", src: "203.0.113.10", sport: 1, dst: "20.20.20.100", dport: 80 };
    const bad: [Partial<typeof ok>, RegExp][] = [
      [{ protocol: "icmp" }, /protocol must be tcp or udp/],
      [{ src: "203.0.113" }, /source "203.0.113" is not an IP address/],
      [{ dst: "vip" }, /destination "vip" is not an IP address/],
      [{ dst: "2001:db8::1" }, /not of one address family/],
      [{ sport: 0 }, /source port must be a port number 1..65535, not 0/],
      [{ dport: 65536 }, /destination port must be/],
      [{ dport: Number.NaN }, /destination port must be .*NaN/],
      [{ sport: 1.5 }, /source port must be/],
    ];
    for (const [patch, message] of bad) {
      const run = () => buildFlowPacket({ ...ok, ...patch });
      expect(run).toThrow(FlowQueryError);
      expect(run).toThrow(message);
    }
  });
});
