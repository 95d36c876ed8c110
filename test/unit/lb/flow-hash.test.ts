import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Distribution, FLOW_KEY_WORDS, flowHash, writeFlowKey } from "../../../src/lb/flow-hash.ts";
import { hashString } from "../../../src/lb/hash.ts";
import { ParsedPacket, parseIpPacket } from "../../../src/packet/parse.ts";
import { buildIcmpError, buildPacket, type PacketSpec } from "../packet/packets.ts";

const SEED = 12345;
function hashOf(
  spec: PacketSpec | Uint8Array,
  d: number = Distribution.fiveTuple,
  seed = SEED,
): number {
  const b = spec instanceof Uint8Array ? spec : buildPacket(spec);
  const p = new ParsedPacket();
  expect(parseIpPacket(b, b.length, p)).toBe(0);
  return flowHash(b, p, d, seed);
}

describe("flow hash", () => {
  it("matches MurmurHash3 x86_32 reference vectors for strings", () => {
    // Published test vectors (seed 0 / seed 0x9747b28c).
    expect(hashString("", 0)).toBe(0);
    expect(hashString("a", 0x9747b28c)).toBe(0x7fa09ea6);
    expect(hashString("Hello, world!", 0x9747b28c)).toBe(0x24884cba);
    expect(hashString("The quick brown fox jumps over the lazy dog", 0x9747b28c)).toBe(0x2fa826cd);
  });

  it("depends on exactly the fields the distribution names", () => {
    const base = {
      src: "1.2.3.4",
      dst: "20.20.20.100",
      proto: "tcp",
      sport: 40000,
      dport: 80,
    } as const;
    const otherPort = { ...base, sport: 40001 };
    const otherProto = { ...base, proto: "udp" } as const;
    expect(hashOf(base)).not.toBe(hashOf(otherPort));
    expect(hashOf(base, Distribution.threeTuple)).toBe(hashOf(otherPort, Distribution.threeTuple));
    expect(hashOf(base, Distribution.threeTuple)).not.toBe(
      hashOf(otherProto, Distribution.threeTuple),
    );
    expect(hashOf(base, Distribution.twoTuple)).toBe(hashOf(otherProto, Distribution.twoTuple));
    expect(hashOf(base, Distribution.twoTuple)).not.toBe(
      hashOf({ ...base, src: "1.2.3.5" }, Distribution.twoTuple),
    );
    expect(hashOf(base, Distribution.fiveTuple, 1)).not.toBe(
      hashOf(base, Distribution.fiveTuple, 2),
    );
  });

  it("hashes fragments like the 3-tuple", () => {
    const spec = { src: "1.2.3.4", dst: "5.6.7.8", proto: "udp", sport: 1, dport: 53 } as const;
    const frag = hashOf({ ...spec, moreFragments: true });
    expect(frag).toBe(hashOf({ ...spec, fragOffset: 100 }));
    expect(frag).toBe(hashOf(spec, Distribution.threeTuple));
  });

  it("hashes an ICMP error exactly like the client's packets of the quoted flow (IPv4 and IPv6)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 65535 }),
        fc.integer({ min: 1, max: 65535 }),
        fc.boolean(),
        fc.boolean(),
        (cport, vport, v6, tcp) => {
          const client = v6 ? "2001:db8::77" : "198.51.100.7";
          const vip = v6 ? "2001:db8:100::10" : "20.20.20.100";
          const proto = tcp ? "tcp" : "udp";
          const fromClient = buildPacket({
            src: client,
            dst: vip,
            proto,
            sport: cport,
            dport: vport,
          });
          const fromBackend = buildPacket({
            src: vip,
            dst: client,
            proto,
            sport: vport,
            dport: cport,
            payload: new Uint8Array(100),
          });
          const error = v6
            ? buildIcmpError("2001:db8:ffff::1", vip, 2, 0, fromBackend, 48 + 8, 1280)
            : buildIcmpError("203.0.113.1", vip, 3, 4, fromBackend, 28, 1400);
          for (const d of [
            Distribution.fiveTuple,
            Distribution.threeTuple,
            Distribution.twoTuple,
          ]) {
            expect(hashOf(error, d)).toBe(hashOf(fromClient, d));
          }
        },
      ),
      { numRuns: 100 },
    );
  });

  it("spreads flows evenly over buckets (chi-square sanity)", () => {
    const buckets = new Uint32Array(64);
    const b = buildPacket({
      src: "10.0.0.1",
      dst: "20.20.20.100",
      proto: "tcp",
      sport: 1,
      dport: 80,
    });
    const p = new ParsedPacket();
    parseIpPacket(b, b.length, p);
    const n = 64_000;
    for (let i = 0; i < n; i++) {
      p.flowSrcPort = i & 0xffff;
      b[15] = i >> 16;
      buckets[flowHash(b, p, Distribution.fiveTuple, SEED) & 63]!++;
    }
    const e = n / 64;
    let chi = 0;
    for (const c of buckets) chi += (c - e) ** 2 / e;
    expect(chi).toBeLessThan(120); // 63 degrees of freedom; p < 1e-5 above ~120
  });

  it("writes connection keys that differ by service and by the distribution's fields", () => {
    const b = buildPacket({
      src: "2001:db8::1",
      dst: "2001:db8::2",
      proto: "udp",
      sport: 1,
      dport: 2,
    });
    const p = new ParsedPacket();
    parseIpPacket(b, b.length, p);
    const k1 = new Uint32Array(FLOW_KEY_WORDS);
    const k2 = new Uint32Array(FLOW_KEY_WORDS);
    writeFlowKey(b, p, Distribution.fiveTuple, 1, k1);
    writeFlowKey(b, p, Distribution.fiveTuple, 2, k2);
    expect(k1).not.toEqual(k2);
    writeFlowKey(b, p, Distribution.threeTuple, 1, k2);
    expect(k2[8]).toBe(0);
    expect(k1[8]).toBe((1 << 16) | 2);
    expect(k1[3]).toBe(1);
    expect(k1[7]).toBe(2);
  });
});
