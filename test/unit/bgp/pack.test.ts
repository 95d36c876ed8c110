// Encoder packing: fewest UPDATEs within the negotiated size, every prefix exactly once,
// canonical encoding, IPv6 through MP_REACH/MP_UNREACH, End-of-RIB.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { PathAttributes } from "../../../src/bgp/wire/attributes.ts";
import { type CodecContext, contextWith } from "../../../src/bgp/wire/context.ts";
import { decodeMessage, type Message } from "../../../src/bgp/wire/message.ts";
import { nlriSize } from "../../../src/bgp/wire/nlri.ts";
import { negotiate, type Open } from "../../../src/bgp/wire/open.ts";
import {
  type PackedUpdates,
  packAnnouncements,
  packWithdrawals,
} from "../../../src/bgp/wire/pack.ts";
import {
  type Ipv4PrefixList,
  type PrefixList,
  parseIpv4,
  parseIpv6,
  prefixesToStrings,
} from "../../../src/bgp/wire/prefix.ts";
import { type DecodedUpdate, encodeEndOfRib, encodeUpdate } from "../../../src/bgp/wire/update.ts";
import { ipv4List, ipv6List } from "./arbitraries.ts";

const attrs: PathAttributes = {
  origin: 0,
  asPath: [{ type: 2, asns: [65101, 4200000000] }],
  nextHop: parseIpv4("192.0.2.2")!,
  med: 5,
  communities: [0xfde80064],
  largeCommunities: [[65101, 1, 2]],
};
const nh6 = parseIpv6("2001:db8::2")!;
const nh6ll = Uint8Array.from([...nh6, ...parseIpv6("fe80::2")!]);

function decodeAll(p: PackedUpdates, ctx: CodecContext): (DecodedUpdate & { type: "update" })[] {
  let offset = 0;
  return p.messages.map((m) => {
    // `buffer` holds the messages back to back.
    expect(Buffer.from(p.buffer.subarray(offset, offset + m.length)).equals(Buffer.from(m))).toBe(
      true,
    );
    offset += m.length;
    expect(m.length).toBeLessThanOrEqual(ctx.maxMessageLength);
    const r = decodeMessage(m, ctx);
    if (!r.ok) throw new Error(r.error.reason);
    expect(r.value.type).toBe("update");
    const u = r.value as Message & { type: "update" };
    expect(u.issues).toEqual([]);
    // Packed messages are canonical: re-encoding the decoded value gives the same bytes.
    expect(Buffer.from(encodeUpdate({ ...u, layout: undefined }, ctx)).equals(Buffer.from(m))).toBe(
      true,
    );
    return u;
  });
}

const sorted = (l: string[]) => [...l].sort();

function v4Table(n: number, len = 32): Ipv4PrefixList {
  const addrs = new Uint32Array(n);
  for (let i = 0; i < n; i++) addrs[i] = (0x14000000 + (i << (32 - len))) >>> 0;
  return { afi: 1, count: n, addrs, lens: new Uint8Array(n).fill(len), pathIds: null };
}

describe("packAnnouncements", () => {
  it("100k /32s: every prefix once, the minimum number of 4096-octet UPDATEs", () => {
    const ctx = contextWith({});
    const table = v4Table(100_000);
    const p = packAnnouncements(table, attrs, ctx);
    const us = decodeAll(p, ctx);
    let seen = 0;
    const first = us[0]!;
    for (const u of us) {
      expect(u.attrs).toEqual(first.attrs);
      seen += u.nlri.count;
    }
    expect(seen).toBe(100_000);
    expect(new Set(us.flatMap((u) => [...u.nlri.addrs])).size).toBe(100_000);
    // Capacity per message after header, lengths and the shared attributes.
    const attrBytes =
      first.layout!.length > 0 ? p.messages[0]!.length - 23 - first.nlri.count * 5 : 0;
    const perMessage = Math.floor((4096 - 23 - attrBytes) / 5);
    expect(p.messages.length).toBe(Math.ceil(100_000 / perMessage));
  });

  it("uses the RFC 8654 maximum when negotiated", () => {
    const big = packAnnouncements(v4Table(20_000), attrs, contextWith({ maxMessageLength: 65535 }));
    const small = packAnnouncements(v4Table(20_000), attrs, contextWith({}));
    expect(big.messages.length).toBe(2);
    expect(small.messages.length).toBeGreaterThan(20);
    expect(Math.max(...big.messages.map((m) => m.length))).toBeGreaterThan(4096);
  });

  it("property: any IPv4 or IPv6 list, any size limit, add-path or not: all prefixes, full messages", () => {
    const arb = fc
      .record({
        max: fc.integer({ min: 200, max: 4096 }),
        addPath: fc.boolean(),
        v6: fc.boolean(),
        linkLocal: fc.boolean(),
        seed: fc.nat(),
      })
      .chain((r) =>
        fc.record({
          r: fc.constant(r),
          list: (r.v6
            ? ipv6List(r.addPath, 600)
            : ipv4List(r.addPath, 900)) as fc.Arbitrary<PrefixList>,
        }),
      );
    fc.assert(
      fc.property(arb, ({ r, list }) => {
        const ctx = contextWith({
          maxMessageLength: r.max,
          addPath: { ipv4: r.addPath, ipv6: r.addPath },
        });
        const p = packAnnouncements(list, attrs, ctx, r.linkLocal ? nh6ll : nh6);
        const us = decodeAll(p, ctx);
        const got = us.flatMap((u) =>
          prefixesToStrings(list.afi === 1 ? u.nlri : u.attrs.mpReach!.nlri),
        );
        expect(sorted(got)).toEqual(sorted(prefixesToStrings(list)));
        if (list.afi === 2) {
          for (const u of us) {
            expect(u.attrs.mpReach!.nextHop).toEqual(r.linkLocal ? nh6ll : nh6);
            expect(u.attrs.nextHop).toBeUndefined(); // RFC 4760: no NEXT_HOP for MP-only routes
            expect(u.layout![0]!.code).toBe(14); // RFC 7606 §5.1: MP_REACH_NLRI first
          }
        }
        if (list.count === 0) expect(p.messages.length).toBe(0);
        // Fewest messages: never more than one beyond the byte lower bound, and exactly the
        // bound when the prefixes all have the same size.
        const total = nlriSize(list, r.addPath);
        if (list.count > 0) {
          const overhead =
            p.messages[0]!.length -
            nlriSize(list.afi === 1 ? us[0]!.nlri : us[0]!.attrs.mpReach!.nlri, r.addPath);
          const lower = Math.ceil(total / (r.max - overhead - (list.afi === 2 ? 1 : 0)));
          expect(p.messages.length).toBeGreaterThanOrEqual(lower - 1);
          expect(p.messages.length).toBeLessThanOrEqual(lower + 1);
        }
      }),
      { numRuns: 150 },
    );
  });

  it("rejects attributes that leave no room for a prefix", () => {
    const huge = { ...attrs, communities: new Array(1100).fill(1) };
    expect(() => packAnnouncements(v4Table(1), huge, contextWith({}))).toThrow(RangeError);
  });
});

describe("packWithdrawals", () => {
  it("IPv4 in the Withdrawn Routes field, IPv6 in MP_UNREACH_NLRI, fewest messages", () => {
    const ctx = contextWith({});
    fc.assert(
      fc.property(
        fc.oneof(ipv4List(false, 2000), ipv6List(false, 900)) as fc.Arbitrary<PrefixList>,
        (list) => {
          const p = packWithdrawals(list, ctx);
          const us = decodeAll(p, ctx);
          const got = us.flatMap((u) =>
            prefixesToStrings(list.afi === 1 ? u.withdrawn : u.attrs.mpUnreach!.withdrawn),
          );
          expect(sorted(got)).toEqual(sorted(prefixesToStrings(list)));
          for (const u of us) {
            expect(u.nlri.count).toBe(0);
            expect(
              Object.keys(u.attrs).filter(
                (k) => (u.attrs as Record<string, unknown>)[k] !== undefined,
              ),
            ).toEqual(list.afi === 1 ? [] : ["mpUnreach"]);
          }
          const lower = Math.ceil(nlriSize(list, false) / (4096 - 23 - (list.afi === 2 ? 7 : 0)));
          expect(p.messages.length).toBeLessThanOrEqual(lower + 1);
        },
      ),
      { numRuns: 100 },
    );
  });
});

describe("End-of-RIB (RFC 4724 §2)", () => {
  it("IPv4 is an empty UPDATE, IPv6 an empty MP_UNREACH_NLRI; both decode as End-of-RIB", () => {
    const ctx = contextWith({});
    const v4 = encodeEndOfRib(1, ctx);
    expect(Buffer.from(v4).toString("hex")).toBe(`${"ff".repeat(16)}00170200000000`);
    const v6 = encodeEndOfRib(2, ctx);
    expect(Buffer.from(v6).toString("hex")).toBe(`${"ff".repeat(16)}001d0200000006800f03000201`);
    for (const [bytes, afi] of [
      [v4, 1],
      [v6, 2],
    ] as const) {
      const r = decodeMessage(bytes, ctx);
      expect(r.ok && r.value.type === "update" && r.value.endOfRib).toEqual({ afi, safi: 1 });
    }
  });
});

describe("negotiate", () => {
  const open = (caps: Open["capabilities"], holdTime = 90): Open => ({
    version: 4,
    myAs: 23456,
    holdTime,
    bgpId: 1,
    capabilities: caps,
  });
  it("needs both sides for 4-octet AS, extended messages and route refresh; takes the smaller hold time", () => {
    const full = open(
      [
        { kind: "four-octet-as", asn: 4200000000 },
        { kind: "extended-message" },
        { kind: "route-refresh" },
        { kind: "enhanced-route-refresh" },
      ],
      9,
    );
    const n = negotiate(full, full);
    expect([
      n.rx.as4,
      n.rx.maxMessageLength,
      n.holdTime,
      n.routeRefresh,
      n.enhancedRouteRefresh,
    ]).toEqual([true, 65535, 9, true, true]);
    const m = negotiate(full, open([{ kind: "route-refresh" }], 180));
    expect([
      m.rx.as4,
      m.tx.maxMessageLength,
      m.holdTime,
      m.routeRefresh,
      m.enhancedRouteRefresh,
    ]).toEqual([false, 4096, 9, true, false]);
  });
  it("add-path per direction and family (RFC 7911 §4)", () => {
    const local = open([
      {
        kind: "add-path",
        families: [
          { afi: 1, safi: 1, sendReceive: 1 },
          { afi: 2, safi: 1, sendReceive: 3 },
        ],
      },
    ]);
    const remote = open([
      {
        kind: "add-path",
        families: [
          { afi: 1, safi: 1, sendReceive: 2 },
          { afi: 2, safi: 1, sendReceive: 1 },
        ],
      },
    ]);
    const n = negotiate(local, remote);
    expect(n.rx.addPath).toEqual({ ipv4: true, ipv6: false });
    expect(n.tx.addPath).toEqual({ ipv4: false, ipv6: true });
  });
  it("families: the multiprotocol capabilities both sent, IPv4 unicast when a side sent none", () => {
    const v4v6 = open([
      { kind: "multiprotocol", afi: 1, safi: 1 },
      { kind: "multiprotocol", afi: 2, safi: 1 },
    ]);
    const v6 = open([{ kind: "multiprotocol", afi: 2, safi: 1 }]);
    expect(negotiate(v4v6, v6).families).toEqual([{ afi: 2, safi: 1 }]);
    expect(negotiate(v4v6, open([])).families).toEqual([{ afi: 1, safi: 1 }]);
    expect(negotiate(v6, open([])).families).toEqual([]);
  });
  it("extended next hop for IPv4 over IPv6 (RFC 8950) needs both", () => {
    const enh = open([
      { kind: "extended-next-hop", entries: [{ afi: 1, safi: 1, nextHopAfi: 2 }] },
    ]);
    expect(negotiate(enh, enh).rx.extendedNextHop).toBe(true);
    expect(negotiate(enh, open([])).rx.extendedNextHop).toBe(false);
  });
});
