// dipMac: the inner Ethernet destination that carries the MUX's choice of DIP to the host.
// The IPv6 vectors were computed with an independent MurmurHash3 x86_32 (Python, from the
// reference algorithm) over the 16 address bytes with seed 0x646d6163.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DIP_MAC_SEED, dipMac, dipMacText } from "../../../src/lb/dip-mac.ts";
import { hashBytes } from "../../../src/lb/hash.ts";
import { formatIp, parseIp } from "../../../src/packet/address.ts";

describe("dipMac", () => {
  it("IPv4: 02:76 followed by the four address bytes", () => {
    expect(dipMacText("10.10.1.11")).toBe("02:76:0a:0a:01:0b");
    expect(dipMacText("10.10.1.12")).toBe("02:76:0a:0a:01:0c");
    expect(dipMacText("255.0.0.1")).toBe("02:76:ff:00:00:01");
    expect([...dipMac(Uint8Array.of(192, 0, 2, 1))]).toEqual([2, 0x76, 192, 0, 2, 1]);
  });

  it("IPv6: 02:76 followed by MurmurHash3 x86_32 (seed 0x646d6163) of the 16 bytes, big-endian", () => {
    expect(DIP_MAC_SEED).toBe(0x646d6163);
    expect(dipMacText("fd00:10:1::11")).toBe("02:76:77:a7:05:09");
    expect(dipMacText("fd00:10:1::12")).toBe("02:76:98:c8:30:7c");
    expect(dipMacText("::")).toBe("02:76:28:03:a2:cb");
    expect(dipMacText("2001:db8::1")).toBe("02:76:0e:29:4f:54");
    // Text forms of one address give one MAC; bytes and text agree.
    expect(dipMacText("2001:0db8:0000::0001")).toBe("02:76:0e:29:4f:54");
    expect(dipMacText(parseIp("2001:db8::1")!)).toBe("02:76:0e:29:4f:54");
  });

  it("is deterministic, locally administered unicast, and distinct for distinct IPv4 DIPs", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (a) => {
        const m = dipMac(a);
        expect(m.length).toBe(6);
        expect(m[0]! & 0x01).toBe(0); // unicast
        expect(m[0]! & 0x02).toBe(2); // locally administered
        expect([...dipMac(formatIp(a))]).toEqual([...m]);
        const h = hashBytes(a, DIP_MAC_SEED);
        expect(((m[2]! << 24) | (m[3]! << 16) | (m[4]! << 8) | m[5]!) >>> 0).toBe(h);
      }),
      { numRuns: 200 },
    );
    fc.assert(
      fc.property(fc.ipV4(), fc.ipV4(), (a, b) => {
        expect(dipMacText(a) === dipMacText(b)).toBe(a === b);
      }),
      { numRuns: 200 },
    );
  });

  it("refuses what is not an address", () => {
    expect(() => dipMac("10.10.1")).toThrow(RangeError);
    expect(() => dipMac(new Uint8Array(5))).toThrow(RangeError);
  });
});
