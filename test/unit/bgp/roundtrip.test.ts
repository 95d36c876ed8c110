// Round-trip properties: value → bytes → value is the identity, and a decoded message
// re-encodes to the same bytes, for every message type and attribute.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AttrFlag } from "../../../src/bgp/wire/constants.ts";
import { contextWith, defaultContext } from "../../../src/bgp/wire/context.ts";
import { Framer } from "../../../src/bgp/wire/framer.ts";
import {
  decodeMessage,
  encodeMessage,
  KEEPALIVE,
  type Message,
} from "../../../src/bgp/wire/message.ts";
import { encodeNotification, truncateUtf8 } from "../../../src/bgp/wire/notification.ts";
import { decodeOpen, encodeOpen, type Open } from "../../../src/bgp/wire/open.ts";
import { formatPrefix, parsePrefix } from "../../../src/bgp/wire/prefix.ts";
import { encodeRouteRefresh } from "../../../src/bgp/wire/route-refresh.ts";
import { decodeUpdate, encodeUpdate, type Update } from "../../../src/bgp/wire/update.ts";
import {
  capability,
  context,
  ipv4List,
  ipv4Prefix,
  ipv6Prefix,
  pathAttributes,
  u32,
} from "./arbitraries.ts";

const runs = { numRuns: 300 };

function decodeOk(bytes: Uint8Array, ctx = defaultContext): Message {
  const r = decodeMessage(bytes, ctx);
  if (!r.ok) throw new Error(`decode failed: ${r.error.reason}`);
  return r.value;
}

describe("UPDATE round trip", () => {
  const updateArb = context.chain((ctx) =>
    fc.record({
      ctx: fc.constant(ctx),
      update: fc.record({
        withdrawn: ipv4List(ctx.addPath.ipv4),
        nlri: ipv4List(ctx.addPath.ipv4),
        attrs: pathAttributes(ctx, true),
      }) as fc.Arbitrary<Update>,
    }),
  );

  it("decode(encode(u)) == u for every attribute, both AS widths, add-path, v4 and v6", () => {
    fc.assert(
      fc.property(updateArb, ({ ctx, update }) => {
        const bytes = encodeUpdate(update, ctx);
        const r = decodeUpdate(bytes.subarray(19), ctx);
        if (!r.ok) throw new Error(r.error.reason);
        expect(r.value.issues).toEqual([]);
        expect(r.value.treatAsWithdraw).toBe(false);
        expect(r.value.attrs).toEqual(update.attrs);
        expect(r.value.nlri).toEqual(update.nlri);
        expect(r.value.withdrawn).toEqual(update.withdrawn);
        // Canonical re-encode (no layout) and layout-preserving re-encode are both exact.
        expect(encodeUpdate({ ...r.value, layout: undefined }, ctx)).toEqual(bytes);
        expect(encodeUpdate(r.value, ctx)).toEqual(bytes);
      }),
      runs,
    );
  });

  it("keeps any attribute order and extended-length choice through a decode and re-encode", () => {
    fc.assert(
      fc.property(updateArb, fc.integer({ min: 0, max: 2 ** 31 }), ({ ctx, update }, seed) => {
        const canonical = decodeUpdate(encodeUpdate(update, ctx).subarray(19), ctx);
        if (!canonical.ok) throw new Error(canonical.error.reason);
        // Shuffle the layout and toggle the extended-length bit deterministically.
        const layout = [...(canonical.value.layout ?? [])]
          .map((e, i) => ({ e, k: (seed * (i + 7)) % 101 }))
          .sort((a, b) => a.k - b.k)
          .map(({ e }, i) => ({
            code: e.code,
            flags: (seed >> i) & 1 ? e.flags | AttrFlag.ExtendedLength : e.flags,
          }));
        const bytes = encodeUpdate({ ...update, layout }, ctx);
        const again = decodeUpdate(bytes.subarray(19), ctx);
        if (!again.ok) throw new Error(again.error.reason);
        expect(again.value.layout?.map((e) => e.code)).toEqual(layout.map((e) => e.code));
        const sorted = {
          ...again.value.attrs,
          unknown:
            again.value.attrs.unknown &&
            [...again.value.attrs.unknown].sort((a, b) => a.code - b.code),
        };
        expect(sorted).toEqual(update.attrs);
        expect(encodeUpdate(again.value, ctx)).toEqual(bytes);
      }),
      { numRuns: 150 },
    );
  });

  it("withdraw-only UPDATEs need no attributes", () => {
    fc.assert(
      fc.property(ipv4List(false), (withdrawn) => {
        const empty = {
          afi: 1 as const,
          count: 0,
          addrs: new Uint32Array(0),
          lens: new Uint8Array(0),
          pathIds: null,
        };
        const bytes = encodeUpdate({ withdrawn, attrs: {}, nlri: empty }, defaultContext);
        const m = decodeOk(bytes);
        expect(m.type === "update" && m.issues).toEqual([]);
        expect(m.type === "update" && m.withdrawn).toEqual(withdrawn);
      }),
      runs,
    );
  });
});

describe("OPEN round trip", () => {
  const openArb = fc
    .record({
      myAs: fc.integer({ min: 1, max: 0xffff }),
      holdTime: fc.oneof(fc.constant(0), fc.integer({ min: 3, max: 0xffff })),
      bgpId: fc.integer({ min: 1, max: 0xffffffff }),
      capabilities: fc.array(capability, { maxLength: 30 }),
      extended: fc.boolean(),
      cuts: fc.array(fc.nat(), { maxLength: 5 }),
    })
    .map((r): Open => {
      // Random grouping of capabilities into optional parameters; the long form is needed
      // whenever a group or the whole would not fit one octet of length.
      const n = r.capabilities.length;
      const cuts = [...new Set(r.cuts.map((c) => (n === 0 ? 0 : c % (n + 1))))].sort(
        (a, b) => a - b,
      );
      const bounds = [0, ...cuts, n];
      const capsPerParam = bounds
        .slice(1)
        .map((b, i) => b - bounds[i]!)
        .filter((c) => c > 0);
      return {
        version: 4,
        myAs: r.myAs,
        holdTime: r.holdTime,
        bgpId: r.bgpId,
        capabilities: r.capabilities,
        layout: { capsPerParam, extended: r.extended },
      };
    });

  it("decode(encode(open)) == open, including RFC 9072 extended parameters", () => {
    fc.assert(
      fc.property(openArb, (open) => {
        const bytes = encodeOpen(open);
        const r = decodeOpen(bytes.subarray(19));
        if (!r.ok) throw new Error(r.error.reason);
        expect(r.value.capabilities).toEqual(open.capabilities);
        expect([r.value.myAs, r.value.holdTime, r.value.bgpId]).toEqual([
          open.myAs,
          open.holdTime,
          open.bgpId,
        ]);
        expect(encodeOpen(r.value)).toEqual(bytes);
      }),
      runs,
    );
  });

  it("switches to the RFC 9072 form only when the short form cannot hold the capabilities", () => {
    const many = Array.from({ length: 80 }, (_, i) => ({
      kind: "multiprotocol" as const,
      afi: i,
      safi: 1,
    }));
    const big = encodeOpen({ version: 4, myAs: 65000, holdTime: 90, bgpId: 1, capabilities: many });
    expect(big[28]).toBe(255);
    expect(big[29]).toBe(255);
    const small = encodeOpen({
      version: 4,
      myAs: 65000,
      holdTime: 90,
      bgpId: 1,
      capabilities: many.slice(0, 3),
    });
    expect(small[28]).toBe(3 * 6 + 2);
    const r = decodeOpen(big.subarray(19));
    expect(r.ok && r.value.capabilities).toEqual(many);
  });
});

describe("NOTIFICATION, KEEPALIVE, ROUTE-REFRESH round trip", () => {
  it("NOTIFICATION code, subcode and data", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 255 }),
        fc.integer({ min: 0, max: 255 }),
        fc.uint8Array({ maxLength: 200 }),
        (code, subcode, data) => {
          const m = decodeOk(encodeNotification({ code, subcode, data }));
          expect(m.type).toBe("notification");
          if (m.type !== "notification") return;
          expect([m.code, m.subcode, m.data]).toEqual([code, subcode, data]);
        },
      ),
      runs,
    );
  });

  it("shutdown communication (RFC 9003) survives, truncated to 255 octets on a character boundary", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(2, 4),
        fc.string({ unit: "grapheme", maxLength: 150 }),
        (subcode, text) => {
          const m = decodeOk(encodeNotification({ code: 6, subcode, communication: text }));
          if (m.type !== "notification") throw new Error("not a notification");
          const sent = new TextDecoder().decode(truncateUtf8(text, 255));
          expect(sent.length === 0 ? undefined : m.communication).toBe(
            sent.length === 0 ? undefined : sent,
          );
          expect(text.startsWith(sent)).toBe(true);
          expect(m.communicationError).toBeUndefined();
        },
      ),
      runs,
    );
  });

  it("KEEPALIVE", () => {
    expect(decodeOk(KEEPALIVE)).toEqual({ type: "keepalive" });
    expect(encodeMessage({ type: "keepalive" }, defaultContext)).toEqual(KEEPALIVE);
  });

  it("ROUTE-REFRESH with every subtype (RFC 7313 BoRR/EoRR)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffff }),
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 0, max: 255 }),
        (afi, safi, subtype) => {
          const bytes = encodeRouteRefresh({ afi, safi, subtype });
          expect(bytes.length).toBe(23);
          expect(decodeOk(bytes)).toEqual({ type: "route-refresh", afi, safi, subtype });
        },
      ),
      runs,
    );
  });
});

describe("framing", () => {
  it("reassembles any chunking of a message stream", () => {
    const msgArb = fc.oneof(
      fc.constant(KEEPALIVE),
      fc
        .record({ afi: fc.constantFrom(1, 2), subtype: fc.constantFrom(0, 1, 2) })
        .map((r) => encodeRouteRefresh({ ...r, safi: 1 })),
      fc
        .uint8Array({ maxLength: 300 })
        .map((data) => encodeNotification({ code: 6, subcode: 3, data })),
      ipv4List(false, 500).map((nlri) =>
        encodeUpdate(
          { withdrawn: nlri, attrs: {}, nlri: { ...nlri, count: 0 } },
          contextWith({ maxMessageLength: 65535 }),
        ),
      ),
    );
    fc.assert(
      fc.property(
        fc.array(msgArb, { minLength: 1, maxLength: 20 }),
        fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1 }),
        (msgs, sizes) => {
          const stream = Buffer.concat(msgs);
          const framer = new Framer(65535, 64);
          const got: Uint8Array[] = [];
          for (let p = 0, k = 0; p < stream.length; k++) {
            const n = sizes[k % sizes.length]!;
            framer.push(stream.subarray(p, p + n));
            p += n;
            for (let f = framer.next(); f; f = framer.next()) {
              if (!f.ok) throw new Error(f.error.reason);
              got.push(f.value.message.slice());
            }
          }
          expect(got.map((g) => Buffer.from(g).toString("hex"))).toEqual(
            msgs.map((m) => Buffer.from(m).toString("hex")),
          );
          expect(framer.buffered).toBe(0);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe("prefix text helpers", () => {
  it("parse(format(p)) == p for IPv4 and IPv6", () => {
    fc.assert(
      fc.property(fc.oneof(ipv4Prefix(false), ipv6Prefix(false)), (p) => {
        expect(parsePrefix(formatPrefix(p))).toEqual(p);
      }),
      { numRuns: 1000 },
    );
  });

  it("formats IPv6 per RFC 5952 and rejects bad text", () => {
    expect(formatPrefix(parsePrefix("2001:DB8:0:0:1:0:0:1/128")!)).toBe("2001:db8::1:0:0:1/128");
    expect(formatPrefix(parsePrefix("2001:db8:0:1:1:1:1:1/128")!)).toBe("2001:db8:0:1:1:1:1:1/128");
    expect(formatPrefix(parsePrefix("::ffff:192.0.2.1")!)).toBe("::ffff:c000:201/128");
    expect(formatPrefix(parsePrefix("::/0")!)).toBe("::/0");
    for (const bad of [
      "10.0.0.1/24",
      "1.2.3/8",
      "256.0.0.0/8",
      "10.0.0.0/33",
      "1::2::3",
      "2001:db8::/129",
      "x",
    ]) {
      expect(parsePrefix(bad)).toBeUndefined();
    }
  });

  it("u32 arbitrary sanity", () => {
    fc.assert(fc.property(u32, (v) => v >= 0 && v <= 0xffffffff));
  });
});
