import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  isPathMtuSignal,
  ParsedPacket,
  ParseStatus,
  parseIpPacket,
} from "../../../src/packet/parse.ts";
import { buildIcmpError, buildPacket, ipBytes } from "./packets.ts";

const p = new ParsedPacket();
const parse = (b: Uint8Array, len = b.length) => parseIpPacket(b, len, p);
const addrAt = (b: Uint8Array, off: number, len: number) => [...b.subarray(off, off + len)];

describe("IPv4", () => {
  it("parses TCP with options and reports the flow tuple", () => {
    const b = buildPacket({
      src: "1.2.3.4",
      dst: "20.20.20.100",
      proto: "tcp",
      sport: 40000,
      dport: 80,
      flags: 0x12,
      options: new Uint8Array([1, 1, 1, 0]),
    });
    expect(parse(b)).toBe(ParseStatus.ok);
    expect(p.family).toBe(4);
    expect(p.l4Offset).toBe(24);
    expect(p.proto).toBe(6);
    expect(p.tcpFlags).toBe(0x12);
    expect([p.flowSrcPort, p.flowDstPort, p.flowHasPorts]).toEqual([40000, 80, 1]);
    expect(addrAt(b, p.flowSrcOffset, 4)).toEqual([1, 2, 3, 4]);
    expect(addrAt(b, p.flowDstOffset, 4)).toEqual([20, 20, 20, 100]);
    expect(p.ipLength).toBe(b.length);
  });

  it("ignores link-layer padding after the IP total length", () => {
    const b = buildPacket({ src: "1.2.3.4", dst: "5.6.7.8", proto: "udp", sport: 1, dport: 53 });
    const padded = new Uint8Array(b.length + 10);
    padded.set(b);
    expect(parse(padded)).toBe(ParseStatus.ok);
    expect(p.ipLength).toBe(b.length);
  });

  it("treats every fragment (first included) as portless", () => {
    for (const [off, mf] of [
      [0, true],
      [185, true],
      [185, false],
    ] as const) {
      const b = buildPacket({
        src: "1.2.3.4",
        dst: "5.6.7.8",
        proto: "udp",
        sport: 1,
        dport: 53,
        fragOffset: off,
        moreFragments: mf,
      });
      expect(parse(b)).toBe(ParseStatus.ok);
      expect(p.fragment).toBe(1);
      expect(p.flowHasPorts).toBe(0);
      expect(p.flowProto).toBe(17);
    }
  });

  it("reports malformed headers with a reason", () => {
    const good = buildPacket({ src: "1.2.3.4", dst: "5.6.7.8", proto: "tcp", sport: 1, dport: 2 });
    expect(parse(good, 19)).toBe(ParseStatus.truncated);
    expect(parse(good, good.length - 1)).toBe(ParseStatus.truncated);
    const badIhl = good.slice();
    badIhl[0] = 0x44;
    expect(parse(badIhl)).toBe(ParseStatus.badHeaderLength);
    const badSum = good.slice();
    badSum[11]! ^= 1;
    expect(parse(badSum)).toBe(ParseStatus.badChecksum);
    const v5 = good.slice();
    v5[0] = 0x55;
    expect(parse(v5)).toBe(ParseStatus.badVersion);
    const shortTcp = buildPacket({
      src: "1.2.3.4",
      dst: "5.6.7.8",
      proto: "udp",
      sport: 1,
      dport: 2,
      payload: new Uint8Array(0),
    });
    shortTcp[9] = 6; // claims TCP with only 8 bytes of L4
    shortTcp[10] = 0;
    shortTcp[11] = 0;
    const s = checksumFix(shortTcp);
    expect(parse(s)).toBe(ParseStatus.truncated);
  });

  it("parses ICMP echo with the identifier as source port", () => {
    const b = buildPacket({
      src: "1.2.3.4",
      dst: "5.6.7.8",
      proto: "icmp",
      icmpType: 8,
      icmpRest: 0xbeef0007,
    });
    expect(parse(b)).toBe(ParseStatus.ok);
    expect([p.icmpType, p.flowHasPorts, p.flowSrcPort, p.flowDstPort]).toEqual([8, 1, 0xbeef, 0]);
  });

  it("hashes an ICMP frag-needed on the quoted packet, reversed", () => {
    // The backend (DSR) sent VIP:80 -> client:40000; a router answers to the VIP.
    const quoted = buildPacket({
      src: "20.20.20.100",
      dst: "1.2.3.4",
      proto: "tcp",
      sport: 80,
      dport: 40000,
      payload: new Uint8Array(1400),
    });
    const err = buildIcmpError("9.9.9.9", "20.20.20.100", 3, 4, quoted, 28, 1400);
    expect(parse(err)).toBe(ParseStatus.ok);
    expect(p.icmpError).toBe(1);
    expect(isPathMtuSignal(p)).toBe(true);
    expect(addrAt(err, p.flowSrcOffset, 4)).toEqual([1, 2, 3, 4]);
    expect(addrAt(err, p.flowDstOffset, 4)).toEqual([20, 20, 20, 100]);
    expect([p.flowProto, p.flowSrcPort, p.flowDstPort, p.flowHasPorts]).toEqual([6, 40000, 80, 1]);
    // Quote cut before the ports: still the flow's addresses, portless.
    const cut = buildIcmpError("9.9.9.9", "20.20.20.100", 11, 0, quoted, 22);
    expect(parse(cut)).toBe(ParseStatus.ok);
    expect(p.flowHasPorts).toBe(0);
    const tooShort = buildIcmpError("9.9.9.9", "20.20.20.100", 11, 0, quoted, 12);
    expect(parse(tooShort)).toBe(ParseStatus.badIcmpError);
  });
});

describe("IPv6", () => {
  it("walks extension headers to TCP", () => {
    const b = buildPacket({
      src: "2001:db8::1",
      dst: "2001:db8:100::10",
      proto: "tcp",
      sport: 5555,
      dport: 443,
      ext: [0, 43, 60],
    });
    expect(parse(b)).toBe(ParseStatus.ok);
    expect(p.family).toBe(6);
    expect(p.l4Offset).toBe(40 + 24);
    expect([p.proto, p.flowSrcPort, p.flowDstPort]).toEqual([6, 5555, 443]);
    expect(addrAt(b, p.flowDstOffset, 16)).toEqual(ipBytes("2001:db8:100::10"));
    expect(p.ttlOffset).toBe(7);
  });

  it("parses through an atomic fragment header but not a real fragment", () => {
    const atomic = buildPacket({
      src: "2001:db8::1",
      dst: "2001:db8::2",
      proto: "udp",
      sport: 7,
      dport: 9,
      ext: [44],
    });
    expect(parse(atomic)).toBe(ParseStatus.ok);
    expect([p.fragment, p.flowHasPorts, p.flowDstPort]).toEqual([0, 1, 9]);
    const frag = atomic.slice();
    frag[40 + 3] = 1; // M flag
    expect(parse(frag)).toBe(ParseStatus.ok);
    expect([p.fragment, p.flowHasPorts, p.flowProto]).toEqual([1, 0, 17]);
  });

  it("refuses over-long extension chains and truncated ones", () => {
    const long = buildPacket({
      src: "2001:db8::1",
      dst: "2001:db8::2",
      proto: "udp",
      sport: 7,
      dport: 9,
      ext: [60, 60, 60, 60, 60, 60, 60, 60, 60],
    });
    expect(parse(long)).toBe(ParseStatus.badExtensionHeader);
    const b = buildPacket({
      src: "2001:db8::1",
      dst: "2001:db8::2",
      proto: "udp",
      sport: 7,
      dport: 9,
      ext: [60],
    });
    expect(parse(b, 44)).toBe(ParseStatus.truncated);
    b[40 + 1] = 200; // header length far beyond the packet
    expect(parse(b)).toBe(ParseStatus.truncated);
  });

  it("hashes a Packet Too Big on the quoted packet, reversed", () => {
    const quoted = buildPacket({
      src: "2001:db8:100::10",
      dst: "2001:db8::1",
      proto: "udp",
      sport: 53,
      dport: 3333,
      payload: new Uint8Array(1300),
    });
    const ptb = buildIcmpError(
      "2001:db8:ffff::1",
      "2001:db8:100::10",
      2,
      0,
      quoted,
      1232 - 48,
      1280,
    );
    expect(parse(ptb)).toBe(ParseStatus.ok);
    expect(isPathMtuSignal(p)).toBe(true);
    expect(addrAt(ptb, p.flowSrcOffset, 16)).toEqual(ipBytes("2001:db8::1"));
    expect(addrAt(ptb, p.flowDstOffset, 16)).toEqual(ipBytes("2001:db8:100::10"));
    expect([p.flowProto, p.flowSrcPort, p.flowDstPort]).toEqual([17, 3333, 53]);
  });
});

describe("robustness", () => {
  it("never throws and stays within the buffer on random bytes", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 200 }),
        fc.constantFrom(0x45, 0x46, 0x60, 0x4f),
        (bytes, first) => {
          if (bytes.length > 0) bytes[0] = first;
          const st = parseIpPacket(bytes, bytes.length, p);
          if (st === ParseStatus.ok) {
            expect(p.ipLength).toBeLessThanOrEqual(bytes.length);
            expect(p.flowSrcOffset + p.flowAddrLen).toBeLessThanOrEqual(bytes.length);
            expect(p.flowDstOffset + p.flowAddrLen).toBeLessThanOrEqual(bytes.length);
          }
        },
      ),
      { numRuns: 3000 },
    );
  });

  it("never reads past a truncated good packet", () => {
    const b = buildPacket({
      src: "2001:db8::1",
      dst: "2001:db8::2",
      proto: "tcp",
      sport: 1,
      dport: 2,
      ext: [0, 60],
    });
    for (let n = 0; n < b.length; n++) expect(parse(b.subarray(0, n))).not.toBe(ParseStatus.ok);
  });
});

function checksumFix(b: Uint8Array): Uint8Array {
  let s = 0;
  for (let i = 0; i < 20; i += 2) s += (b[i]! << 8) | b[i + 1]!;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  const c = ~s & 0xffff;
  b[10] = c >> 8;
  b[11] = c & 255;
  return b;
}
