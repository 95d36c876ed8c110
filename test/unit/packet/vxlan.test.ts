import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { formatIp, formatMac, parseIp, parseMac } from "../../../src/packet/address.ts";
import { checksum, updateChecksum16 } from "../../../src/packet/checksum.ts";
import {
  encapsulateVxlan,
  parseVxlan,
  VXLAN_OVERHEAD_V4,
  VXLAN_OVERHEAD_V6,
  VxlanEncap,
  VxlanPacket,
  VxlanStatus,
  vxlanSourcePort,
} from "../../../src/packet/vxlan.ts";
import { buildPacket, verifyIpv4HeaderChecksum } from "./packets.ts";

function encap(outerSrc: string, outerDst: string): VxlanEncap {
  const e = new VxlanEncap();
  e.outerSrc = parseIp(outerSrc)!;
  e.outerDst = parseIp(outerDst)!;
  e.srcPort = vxlanSourcePort(0xdeadbeef);
  e.vni = 100;
  e.innerDstMac = parseMac("02:00:00:00:01:00")!;
  e.innerSrcMac = parseMac("02:00:00:00:00:01")!;
  e.ipId = 7;
  return e;
}

describe("VXLAN encapsulation", () => {
  const inner = buildPacket({
    src: "1.2.3.4",
    dst: "20.20.20.100",
    proto: "tcp",
    sport: 40000,
    dport: 80,
  });

  it("writes outer IPv4 + UDP (checksum 0) + VXLAN + Ethernet byte by byte", () => {
    const out = new Uint8Array(2000);
    const n = encapsulateVxlan(out, inner, 0, inner.length, encap("192.168.1.2", "192.168.30.11"));
    expect(n).toBe(inner.length + VXLAN_OVERHEAD_V4);
    const b = Buffer.from(out.subarray(0, n));
    expect(b[0]).toBe(0x45);
    expect(b.readUInt16BE(2)).toBe(n);
    expect(b.readUInt16BE(4)).toBe(7);
    expect(b[8]).toBe(64);
    expect(b[9]).toBe(17);
    expect(verifyIpv4HeaderChecksum(out)).toBe(true);
    expect(formatIp(out, 12, 4)).toBe("192.168.1.2");
    expect(formatIp(out, 16, 4)).toBe("192.168.30.11");
    expect(b.readUInt16BE(20)).toBe(49152 | (0xdeadbeef & 0x3fff));
    expect(b.readUInt16BE(22)).toBe(4789);
    expect(b.readUInt16BE(24)).toBe(n - 20);
    expect(b.readUInt16BE(26)).toBe(0);
    expect([...b.subarray(28, 36)]).toEqual([0x08, 0, 0, 0, 0, 0, 100, 0]);
    expect(formatMac(out, 36)).toBe("02:00:00:00:01:00");
    expect(formatMac(out, 42)).toBe("02:00:00:00:00:01");
    expect(b.readUInt16BE(48)).toBe(0x0800);
    expect(Buffer.compare(b.subarray(50), Buffer.from(inner))).toBe(0);
  });

  it("writes outer IPv6 with a valid UDP checksum and the flow label", () => {
    const in6 = buildPacket({
      src: "2001:db8::1",
      dst: "2001:db8:100::10",
      proto: "udp",
      sport: 1,
      dport: 53,
    });
    const e = encap("fd00::2", "fd00:30::11");
    e.flowLabel = 0xabcde;
    const out = new Uint8Array(2000);
    const n = encapsulateVxlan(out, in6, 0, in6.length, e);
    expect(n).toBe(in6.length + VXLAN_OVERHEAD_V6);
    expect([out[0], out[1], out[2], out[3]]).toEqual([0x60, 0x0a, 0xbc, 0xde]);
    expect((out[4]! << 8) | out[5]!).toBe(n - 40);
    expect((out[46]! << 8) | out[47]!).not.toBe(0);
    const d = new VxlanPacket();
    expect(parseVxlan(out, 0, n, d)).toBe(VxlanStatus.ok);
    expect(d.innerEtherType).toBe(0x86dd);
    // Corrupt one inner byte: the UDP checksum must catch it.
    out[n - 1]! ^= 0x40;
    expect(parseVxlan(out, 0, n, d)).toBe(VxlanStatus.badChecksum);
  });

  it("round-trips any inner packet through decapsulation (both outer families)", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 1400 }),
        fc.boolean(),
        fc.integer({ min: 0, max: 0xffffff }),
        fc.integer({ min: 0, max: 50 }),
        (payload, v6, vni, offset) => {
          const pkt = buildPacket({
            src: "1.2.3.4",
            dst: "5.6.7.8",
            proto: "udp",
            sport: 9,
            dport: 10,
            payload,
          });
          const src = new Uint8Array(offset + pkt.length + 7);
          src.set(pkt, offset);
          const e = v6 ? encap("fd00::2", "fd00::3") : encap("10.0.0.2", "10.0.0.3");
          e.vni = vni;
          const out = new Uint8Array(1600);
          const n = encapsulateVxlan(out, src, offset, pkt.length, e);
          const d = new VxlanPacket();
          expect(parseVxlan(out, 0, n, d)).toBe(VxlanStatus.ok);
          expect(d.vni).toBe(vni);
          expect(d.outerFamily).toBe(v6 ? 6 : 4);
          expect(
            Buffer.compare(
              Buffer.from(out.subarray(d.innerOffset, d.innerOffset + d.innerLength)),
              Buffer.from(pkt),
            ),
          ).toBe(0);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("refuses what does not fit, and non-IP inner packets", () => {
    const e = encap("10.0.0.2", "10.0.0.3");
    expect(encapsulateVxlan(new Uint8Array(inner.length + 49), inner, 0, inner.length, e)).toBe(-1);
    const bogus = inner.slice();
    bogus[0] = 0x15;
    expect(encapsulateVxlan(new Uint8Array(2000), bogus, 0, bogus.length, e)).toBe(-1);
  });
});

describe("VXLAN decapsulation", () => {
  const inner = buildPacket({
    src: "1.2.3.4",
    dst: "20.20.20.100",
    proto: "udp",
    sport: 1,
    dport: 2,
  });
  const out = new Uint8Array(2000);
  const n = encapsulateVxlan(out, inner, 0, inner.length, encap("10.0.0.2", "10.0.0.3"));
  const d = new VxlanPacket();

  it("reports port, flag, checksum and length problems", () => {
    expect(parseVxlan(out, 0, n, d, 8472)).toBe(VxlanStatus.notVxlan);
    const noI = out.slice(0, n);
    noI[28] = 0;
    expect(parseVxlan(noI, 0, n, d)).toBe(VxlanStatus.badFlags);
    const badIp = out.slice(0, n);
    badIp[8] = 1;
    expect(parseVxlan(badIp, 0, n, d)).toBe(VxlanStatus.badChecksum);
    expect(parseVxlan(out, 0, n - 1, d)).toBe(VxlanStatus.truncated);
    expect(parseVxlan(out, 0, 30, d)).toBe(VxlanStatus.truncated);
  });

  it("refuses a zero IPv6 UDP checksum unless told to accept it (RFC 6935)", () => {
    const o6 = new Uint8Array(2000);
    const m = encapsulateVxlan(o6, inner, 0, inner.length, encap("fd00::2", "fd00::3"));
    o6[46] = 0;
    o6[47] = 0;
    expect(parseVxlan(o6, 0, m, d)).toBe(VxlanStatus.zeroChecksum);
    expect(parseVxlan(o6, 0, m, d, 4789, true)).toBe(VxlanStatus.ok);
  });
});

describe("checksums and addresses", () => {
  it("incremental update (RFC 1624) equals a full recomputation", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 20, maxLength: 20 }),
        fc.integer({ min: 0, max: 9 }),
        fc.integer({ min: 0, max: 0xffff }),
        (h, word, value) => {
          h[10] = 0;
          h[11] = 0;
          const c = checksum(h, 0, 20);
          h[10] = c >> 8;
          h[11] = c & 255;
          if (word === 5) return; // the checksum word itself
          const old = (h[2 * word]! << 8) | h[2 * word + 1]!;
          h[2 * word] = value >> 8;
          h[2 * word + 1] = value & 255;
          const inc = updateChecksum16(c, old, value);
          h[10] = 0;
          h[11] = 0;
          const full = checksum(h, 0, 20);
          // 0x0000 and 0xffff are the same one's-complement number.
          expect(inc === full || (inc ^ full) === 0xffff).toBe(true);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("parses and formats IPv4, IPv6 (RFC 5952) and MAC addresses", () => {
    for (const a of [
      "10.0.0.1",
      "::",
      "::1",
      "2001:db8::1",
      "fe80::1:0:0:2",
      "2001:db8:0:1:1:1:1:1",
      "::ffff:192.0.2.1",
    ]) {
      const b = parseIp(a)!;
      expect(formatIp(b)).toBe(a === "::ffff:192.0.2.1" ? "::ffff:c000:201" : a);
    }
    expect(formatIp(parseIp("2001:0db8:0000:0000:0001:0000:0000:0001")!)).toBe("2001:db8::1:0:0:1");
    expect(parseIp("1.2.3")).toBeUndefined();
    expect(parseIp("2001:db8::1::2")).toBeUndefined();
    expect(formatMac(parseMac("02-AA-bb-0c-0d-ff")!)).toBe("02:aa:bb:0c:0d:ff");
    expect(parseMac("02:aa:bb:0c:0d")).toBeUndefined();
  });
});
