// ctnetlink message parsing and endpoint matching, on bytes laid out as the kernel sends
// them (linux/netfilter/nfnetlink_conntrack.h).
import { describe, expect, it } from "vitest";
import { matchesEndpoint, parseConntrackMessage } from "../../../src/hostagent/conntrack.ts";

/** One netlink attribute, padded to 4 bytes. */
function attr(type: number, data: Buffer, nested = false): Buffer {
  const len = 4 + data.length;
  const b = Buffer.alloc((len + 3) & ~3);
  b.writeUInt16LE(len, 0);
  b.writeUInt16LE(type | (nested ? 0x8000 : 0), 2);
  data.copy(b, 4);
  return b;
}
const be16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);

function ctMessage(
  family: number,
  src: number[],
  dst: number[],
  proto: number,
  sport: number,
  dport: number,
  zone?: number,
) {
  const v6 = family === 10;
  const ip = attr(
    1,
    Buffer.concat([attr(v6 ? 3 : 1, Buffer.from(src)), attr(v6 ? 4 : 2, Buffer.from(dst))]),
    true,
  );
  const pr = attr(
    2,
    Buffer.concat([attr(1, Buffer.from([proto])), attr(2, be16(sport)), attr(3, be16(dport))]),
    true,
  );
  const orig = attr(1, Buffer.concat([ip, pr]), true);
  const reply = attr(2, Buffer.concat([ip, pr]), true);
  return Buffer.concat([
    Buffer.from([family, 0, 0, 0]),
    orig,
    reply,
    ...(zone ? [attr(18, be16(zone))] : []),
  ]);
}

describe("ctnetlink", () => {
  it("parses the original tuple and keeps its raw attribute for the delete", () => {
    const m = ctMessage(2, [203, 0, 113, 10], [20, 20, 20, 100], 6, 40000, 80);
    const e = parseConntrackMessage(m)!;
    expect({ ...e, key: undefined }).toEqual({
      family: 2,
      proto: 6,
      src: "203.0.113.10",
      dst: "20.20.20.100",
      sport: 40000,
      dport: 80,
      key: undefined,
    });
    // The delete key is CTA_TUPLE_ORIG exactly as received (the reply tuple is not sent).
    expect(e.key.readUInt16LE(2) & 0x3fff).toBe(1);
    expect(e.key.length).toBe(e.key.readUInt16LE(0));
  });

  it("keeps the zone with the key and parses IPv6", () => {
    const vip = [0x20, 0x01, 0x0d, 0xb8, 0, 0x0f, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00];
    const client = [0x20, 0x01, 0x0d, 0xb8, 0, 0x0c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10];
    const e = parseConntrackMessage(ctMessage(10, client, vip, 17, 5000, 7, 3))!;
    expect([e.src, e.dst, e.proto, e.dport]).toEqual(["2001:db8:c::10", "2001:db8:f::100", 17, 7]);
    expect(e.key.readUInt16LE(e.key.readUInt16LE(0) + 2) & 0x3fff).toBe(18);
  });

  it("matches endpoints by protocol, VIP (any spelling) and port range", () => {
    const e = parseConntrackMessage(
      ctMessage(2, [203, 0, 113, 10], [20, 20, 20, 100], 6, 40000, 8050),
    )!;
    expect(
      matchesEndpoint(e, [{ protocol: "tcp", vip: "20.20.20.100", first: 8000, last: 8099 }]),
    ).toBe(true);
    expect(
      matchesEndpoint(e, [{ protocol: "udp", vip: "20.20.20.100", first: 8000, last: 8099 }]),
    ).toBe(false);
    expect(
      matchesEndpoint(e, [{ protocol: "tcp", vip: "20.20.20.101", first: 8000, last: 8099 }]),
    ).toBe(false);
    expect(
      matchesEndpoint(e, [{ protocol: "tcp", vip: "20.20.20.100", first: 80, last: 80 }]),
    ).toBe(false);
    const vip = [0x20, 0x01, 0x0d, 0xb8, 0, 0x0f, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00];
    const e6 = parseConntrackMessage(ctMessage(10, vip, vip, 6, 1, 80))!;
    expect(
      matchesEndpoint(e6, [{ protocol: "tcp", vip: "2001:db8:f:0:0::100", first: 80, last: 80 }]),
    ).toBe(true);
  });

  it("an incomplete message is skipped, not thrown", () => {
    expect(parseConntrackMessage(Buffer.from([2, 0]))).toBeUndefined();
    expect(
      parseConntrackMessage(Buffer.from([2, 0, 0, 0, 8, 0, 1, 0x80, 0, 0, 0, 0])),
    ).toBeUndefined();
  });
});
