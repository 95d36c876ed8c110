// BFD Control packet codec: wire layout, round trips, and one test per drop reason.
import { describe, expect, it } from "vitest";
import {
  BfdState,
  type ControlPacket,
  controlPacket,
  decodeControl,
  diagName,
  encodeControl,
} from "../../../src/bfd/packet.ts";

const up: ControlPacket = controlPacket({
  diag: 3,
  state: BfdState.Up,
  poll: true,
  detectMult: 3,
  myDiscriminator: 0x01020304,
  yourDiscriminator: 0xfffffffe,
  desiredMinTxUs: 100_000,
  requiredMinRxUs: 100_000,
  requiredMinEchoRxUs: 50_000,
});

function bytes(p: Partial<ControlPacket>): Uint8Array {
  return encodeControl(controlPacket({ myDiscriminator: 7, ...p }));
}

describe("BFD control packet codec", () => {
  it("encodes the RFC 5880 §4.1 layout bit for bit", () => {
    expect(Buffer.from(encodeControl(up)).toString("hex")).toBe(
      // vers 1 | diag 3, state Up | P, mult 3, length 24, discriminators, timers
      "23e00318" + "01020304" + "fffffffe" + "000186a0" + "000186a0" + "0000c350",
    );
  });

  it("round-trips every field and flag", () => {
    const flags = ["poll", "final", "controlPlaneIndependent", "demand"] as const;
    for (const state of [BfdState.Down, BfdState.Init, BfdState.Up, BfdState.AdminDown]) {
      for (const flag of flags) {
        const p = { ...up, state, poll: false, [flag]: true };
        const r = decodeControl(encodeControl(p));
        expect(r).toEqual({ ok: true, value: p });
      }
    }
  });

  it("accepts trailing bytes beyond the Length field and a subarray view", () => {
    const buf = new Uint8Array(40);
    buf.set(encodeControl(up), 8);
    const r = decodeControl(buf.subarray(8, 34));
    expect(r.ok).toBe(true);
  });

  const drops: [string, Uint8Array, string][] = [
    ["fewer than 24 bytes", bytes({}).subarray(0, 23), "too-short"],
    ["version 0", patch(bytes({}), 0, 0x00), "bad-version"],
    ["version 2", patch(bytes({}), 0, 0x40), "bad-version"],
    ["Length field 23", patch(bytes({}), 3, 23), "bad-length"],
    ["Length field beyond the payload", patch(bytes({}), 3, 25), "bad-length"],
    ["A bit with Length 24 (< 26)", patch(bytes({}), 1, 0x44), "bad-length"],
    ["detect multiplier 0", bytes({ detectMult: 0 }), "detect-mult-zero"],
    ["M bit", bytes({ multipoint: true }), "multipoint"],
    ["My Discriminator 0", bytes({ myDiscriminator: 0 }), "my-discriminator-zero"],
    [
      "Your Discriminator 0 in state Up",
      bytes({ state: BfdState.Up, yourDiscriminator: 0 }),
      "your-discriminator-zero",
    ],
    [
      "Your Discriminator 0 in state Init",
      bytes({ state: BfdState.Init, yourDiscriminator: 0 }),
      "your-discriminator-zero",
    ],
    ["A bit without authentication configured", withAuth(), "auth-not-configured"],
  ];
  for (const [what, b, reason] of drops)
    it(`drops ${what} as ${reason}`, () => {
      expect(decodeControl(b)).toEqual({ ok: false, error: reason });
    });

  it("accepts Your Discriminator 0 from a Down or AdminDown sender (§6.8.6)", () => {
    expect(decodeControl(bytes({ state: BfdState.Down })).ok).toBe(true);
    expect(decodeControl(bytes({ state: BfdState.AdminDown })).ok).toBe(true);
  });

  it("names diagnostics", () => {
    expect(diagName(1)).toBe("control-detection-time-expired");
    expect(diagName(7)).toBe("administratively-down");
    expect(diagName(31)).toBe("diag-31");
  });
});

function patch(b: Uint8Array, at: number, value: number): Uint8Array {
  const c = Uint8Array.from(b);
  c[at] = value;
  return c;
}

// A packet with a 2-byte (Simple Password, type 1) auth section: Length 28.
function withAuth(): Uint8Array {
  const c = new Uint8Array(28);
  c.set(bytes({ authPresent: true }));
  c[3] = 28;
  c.set([1, 4, 1, 0x61], 24);
  return c;
}
