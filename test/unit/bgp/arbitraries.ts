// fast-check generators for wire values that encode validly (the malformed suite and the
// fuzzer cover the rest).

import fc from "fast-check";
import type { AsPath, AsPathSegment } from "../../../src/bgp/wire/as-path.ts";
import type {
  LargeCommunity,
  PathAttributes,
  RawAttribute,
} from "../../../src/bgp/wire/attributes.ts";
import type { Capability } from "../../../src/bgp/wire/capabilities.ts";
import type { AsPathSegmentTypeCode } from "../../../src/bgp/wire/constants.ts";
import type { CodecContext } from "../../../src/bgp/wire/context.ts";
import type { MpReach, MpUnreach } from "../../../src/bgp/wire/mp.ts";
import {
  type Ipv4PrefixList,
  type Ipv6PrefixList,
  ipv4Mask,
  maskIpv6InPlace,
  type Prefix,
  prefixListOf,
} from "../../../src/bgp/wire/prefix.ts";

export const u32 = fc.integer({ min: 0, max: 0xffffffff });
export const u16 = fc.integer({ min: 0, max: 0xffff });

export const ipv4Prefix = (pathId: boolean) =>
  fc
    .record({ addr: u32, len: fc.integer({ min: 0, max: 32 }), pathId: u32 })
    .map(
      (r): Prefix =>
        pathId
          ? { afi: 1, addr: (r.addr & ipv4Mask(r.len)) >>> 0, len: r.len, pathId: r.pathId }
          : { afi: 1, addr: (r.addr & ipv4Mask(r.len)) >>> 0, len: r.len },
    );

export const ipv6Prefix = (pathId: boolean) =>
  fc
    .record({
      addr: fc.uint8Array({ minLength: 16, maxLength: 16 }),
      len: fc.integer({ min: 0, max: 128 }),
      pathId: u32,
    })
    .map((r): Prefix => {
      const addr = r.addr.slice();
      maskIpv6InPlace(addr, 0, r.len);
      return pathId ? { afi: 2, addr, len: r.len, pathId: r.pathId } : { afi: 2, addr, len: r.len };
    });

export const ipv4List = (pathId: boolean, max = 40) =>
  fc.array(ipv4Prefix(pathId), { maxLength: max }).map((ps) => {
    const l = prefixListOf(1, ps) as Ipv4PrefixList;
    // With add-path the decoder always yields path ids, even for an empty list.
    return pathId && l.pathIds === null ? { ...l, pathIds: new Uint32Array(0) } : l;
  });

export const ipv6List = (pathId: boolean, max = 40) =>
  fc.array(ipv6Prefix(pathId), { maxLength: max }).map((ps) => {
    const l = prefixListOf(2, ps) as Ipv6PrefixList;
    return pathId && l.pathIds === null ? { ...l, pathIds: new Uint32Array(0) } : l;
  });

export const context = fc.record({
  as4: fc.boolean(),
  maxMessageLength: fc.constant(65535),
  addPath: fc.record({ ipv4: fc.boolean(), ipv6: fc.boolean() }),
  extendedNextHop: fc.boolean(),
  ibgp: fc.boolean(),
}) as fc.Arbitrary<CodecContext>;

const segment = (types: AsPathSegmentTypeCode[], asn: fc.Arbitrary<number>) =>
  fc.record({
    type: fc.constantFrom(...types),
    asns: fc.array(asn, { minLength: 1, maxLength: 12 }),
  }) as fc.Arbitrary<AsPathSegment>;

/** Confederation segments only lead the path (RFC 5065 §5.3) and only on internal sessions. */
export const asPath = (ctx: CodecContext): fc.Arbitrary<AsPath> =>
  fc
    .tuple(
      ctx.ibgp ? fc.array(segment([3, 4], ctx.as4 ? u32 : u16), { maxLength: 2 }) : fc.constant([]),
      fc.array(segment([1, 2], fc.oneof(u32, u16, fc.constant(23456))), { maxLength: 4 }),
    )
    .map(([c, r]) => [...c, ...r]);

const nextHop4 = fc.integer({ min: 0x01000000, max: 0x7effffff }); // not 0/8, 127/8, 224/3
const unknownCode = fc.integer({ min: 33, max: 254 });

export const rawAttributes = fc
  .uniqueArray(fc.record({ code: unknownCode, value: fc.uint8Array({ maxLength: 300 }) }), {
    selector: (r) => r.code,
    maxLength: 3,
  })
  .map((list): RawAttribute[] =>
    list
      .map((r) => ({ flags: 0xe0, code: r.code, value: r.value }))
      .sort((a, b) => a.code - b.code),
  );

const largeCommunity = fc.tuple(u32, u32, u32) as fc.Arbitrary<LargeCommunity>;

export function mpReach(ctx: CodecContext): fc.Arbitrary<MpReach> {
  const v6 = fc.record({
    afi: fc.constant(2 as const),
    safi: fc.constant(1),
    nextHop: fc.oneof(
      fc.uint8Array({ minLength: 16, maxLength: 16 }),
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
    ),
    nlri: ipv6List(ctx.addPath.ipv6),
  });
  const v4NhLengths = ctx.extendedNextHop ? [4, 16, 32] : [4];
  const v4 = fc.record({
    afi: fc.constant(1 as const),
    safi: fc.constant(1),
    nextHop: fc
      .constantFrom(...v4NhLengths)
      .chain((n) => fc.uint8Array({ minLength: n, maxLength: n })),
    nlri: ipv4List(ctx.addPath.ipv4),
  });
  return fc.oneof(v6, v4);
}

export const mpUnreach = (ctx: CodecContext): fc.Arbitrary<MpUnreach> =>
  fc.oneof(
    fc.record({
      afi: fc.constant(2 as const),
      safi: fc.constant(1),
      withdrawn: ipv6List(ctx.addPath.ipv6),
    }),
    fc.record({
      afi: fc.constant(1 as const),
      safi: fc.constant(1),
      withdrawn: ipv4List(ctx.addPath.ipv4),
    }),
  );

/** Attributes that decode without issues when `announces` says routes are announced. */
export function pathAttributes(
  ctx: CodecContext,
  announces: boolean,
): fc.Arbitrary<PathAttributes> {
  const opt = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
  // On a 2-octet session an AGGREGATOR AS other than AS_TRANS voids AS4_PATH (RFC 6793
  // §4.2.3), so generated aggregators there are always 4-octet ones.
  const aggAsn = ctx.as4 ? u32 : fc.integer({ min: 0x10000, max: 0xffffffff });
  return fc.record({
    origin: announces ? fc.constantFrom(0, 1, 2) : opt(fc.constantFrom(0, 1, 2)),
    asPath: announces ? asPath(ctx) : opt(asPath(ctx)),
    nextHop: announces ? nextHop4 : opt(nextHop4),
    med: opt(u32),
    localPref: ctx.ibgp ? u32 : fc.constant(undefined),
    atomicAggregate: opt(fc.constant(true)),
    aggregator: opt(fc.record({ asn: aggAsn, address: u32 })),
    communities: opt(fc.array(u32, { minLength: 1, maxLength: 20 })),
    originatorId: opt(u32),
    clusterList: opt(fc.array(u32, { minLength: 1, maxLength: 5 })),
    mpReach: opt(mpReach(ctx)),
    mpUnreach: opt(mpUnreach(ctx)),
    extendedCommunities: opt(
      fc.array(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), { minLength: 1, maxLength: 10 }),
    ),
    largeCommunities: opt(fc.array(largeCommunity, { minLength: 1, maxLength: 10 })),
    unknown: opt(rawAttributes.filter((l) => l.length > 0)),
  }) as fc.Arbitrary<PathAttributes>;
}

export const capability: fc.Arbitrary<Capability> = fc.oneof(
  fc.record({
    kind: fc.constant("multiprotocol" as const),
    afi: u16,
    safi: fc.integer({ min: 0, max: 255 }),
  }),
  fc.constant({ kind: "route-refresh" as const }),
  fc.constant({ kind: "enhanced-route-refresh" as const }),
  fc.constant({ kind: "extended-message" as const }),
  fc.record({ kind: fc.constant("four-octet-as" as const), asn: u32 }),
  fc.record({
    kind: fc.constant("graceful-restart" as const),
    restartFlags: fc.integer({ min: 0, max: 15 }),
    restartTimeSec: fc.integer({ min: 0, max: 4095 }),
    families: fc.array(
      fc.record({
        afi: u16,
        safi: fc.integer({ min: 0, max: 255 }),
        flags: fc.integer({ min: 0, max: 255 }),
      }),
      {
        maxLength: 4,
      },
    ),
  }),
  fc.record({
    kind: fc.constant("extended-next-hop" as const),
    entries: fc.array(fc.record({ afi: u16, safi: u16, nextHopAfi: u16 }), {
      minLength: 1,
      maxLength: 4,
    }),
  }),
  fc.record({
    kind: fc.constant("add-path" as const),
    families: fc.array(
      fc.record({
        afi: u16,
        safi: fc.integer({ min: 0, max: 255 }),
        sendReceive: fc.integer({ min: 1, max: 3 }),
      }),
      { minLength: 1, maxLength: 4 },
    ),
  }),
  fc.record({
    kind: fc.constant("fqdn" as const),
    hostname: fc.string({ maxLength: 30 }),
    domain: fc.string({ maxLength: 30 }),
  }),
  fc.record({
    kind: fc.constant("unknown" as const),
    code: fc
      .integer({ min: 0, max: 255 })
      .filter((c) => ![1, 2, 5, 6, 64, 65, 69, 70, 73].includes(c)),
    value: fc.uint8Array({ maxLength: 40 }),
  }),
);
