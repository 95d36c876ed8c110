// Path attributes, BIRD style: one descriptor per type code carries the name, the required
// Optional/Transitive flags, what a malformed instance means under RFC 7606, and the decode,
// encode and format hooks. The UPDATE codec walks attributes and dispatches here.

import {
  type AsPath,
  as4PathFor,
  decodeAsPath,
  encodeAsPath,
  formatAsPath,
  hasConfedSegments,
  needsAs4,
} from "./as-path.ts";
import type { ByteWriter } from "./buffer.ts";
import { AS_TRANS, AttrCode, AttrFlag, type OriginCode } from "./constants.ts";
import type { CodecContext } from "./context.ts";
import {
  decodeMpReach,
  decodeMpUnreach,
  encodeMpReach,
  encodeMpUnreach,
  type MpReach,
  type MpUnreach,
} from "./mp.ts";
import { type AttributeIssue, discard, type SessionReset } from "./outcome.ts";
import { formatIpv4, formatIpv6, prefixesToStrings } from "./prefix.ts";

export interface Aggregator {
  readonly asn: number;
  /** IPv4 address of the aggregating speaker as uint32. */
  readonly address: number;
}

/** An attribute we do not interpret: kept (optional transitive) with flags for propagation. */
export interface RawAttribute {
  readonly flags: number;
  readonly code: number;
  readonly value: Uint8Array;
}

export type LargeCommunity = readonly [globalAdmin: number, localData1: number, localData2: number];

/**
 * Decoded attributes. `asPath` and `aggregator` always hold 4-octet AS numbers: on a
 * 2-octet session the codec reconciles AS4_PATH / AS4_AGGREGATOR on input and generates
 * them on output (RFC 6793), so callers never see the transition attributes.
 */
export interface PathAttributes {
  readonly origin?: OriginCode;
  readonly asPath?: AsPath;
  /** IPv4 NEXT_HOP as uint32. */
  readonly nextHop?: number;
  readonly med?: number;
  readonly localPref?: number;
  readonly atomicAggregate?: boolean;
  readonly aggregator?: Aggregator;
  /** RFC 1997 communities, each as uint32 (ASN << 16 | value). */
  readonly communities?: readonly number[];
  readonly originatorId?: number;
  readonly clusterList?: readonly number[];
  readonly mpReach?: MpReach;
  readonly mpUnreach?: MpUnreach;
  /** RFC 4360 extended communities, each as the 8 octets in a bigint. */
  readonly extendedCommunities?: readonly bigint[];
  /** RFC 8092 large communities. */
  readonly largeCommunities?: readonly LargeCommunity[];
  readonly unknown?: readonly RawAttribute[];
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** What the decode hooks fill in; the AS4 fields are reconciled away by the UPDATE codec. */
export interface AttrScratch {
  attrs: Mutable<PathAttributes>;
  as4Path?: AsPath;
  as4Aggregator?: Aggregator;
  /** Issues raised by hooks that are not fatal to the attribute itself. */
  issues: AttributeIssue[];
}

/** The RFC 7606 approach for a malformed instance of an attribute. */
export type Malformed = "treat-as-withdraw" | "attribute-discard" | "session-reset";

export interface AttrDescriptor {
  readonly code: number;
  readonly name: string;
  /** Required Optional and Transitive bits (RFC 4271 §5, checked per RFC 7606 §3.c). */
  readonly flags: number;
  readonly malformed: Malformed;
  /** Fills `st`; returns null, the reason the value is malformed, or a session reset. */
  decode(
    v: Uint8Array,
    ctx: CodecContext,
    st: AttrScratch,
    raw: Uint8Array,
  ): string | SessionReset | null;
  /** Writes the value if `a` has this attribute; returns whether it did. */
  encode(a: PathAttributes, ctx: CodecContext, w: ByteWriter): boolean;
  format(a: PathAttributes): string | undefined;
}

const WELL_KNOWN = AttrFlag.Transitive;
const OPT_TRANS = AttrFlag.Optional | AttrFlag.Transitive;
const OPT_NON_TRANS = AttrFlag.Optional;

const u32 = (v: Uint8Array, p: number) =>
  ((v[p]! << 24) | (v[p + 1]! << 16) | (v[p + 2]! << 8) | v[p + 3]!) >>> 0;

function u32List(v: Uint8Array, name: string, unit: number): number[] | string {
  if (v.length === 0 || v.length % unit !== 0)
    return `${name} length ${v.length} is not a non-zero multiple of ${unit}`;
  const out: number[] = new Array(v.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = u32(v, 4 * i);
  return out;
}

const present = (x: unknown) => x !== undefined;

function decodeAggregator(v: Uint8Array, asSize: 2 | 4, name: string): Aggregator | string {
  if (v.length !== asSize + 4) return `${name} length ${v.length}, expected ${asSize + 4}`;
  return asSize === 4
    ? { asn: u32(v, 0), address: u32(v, 4) }
    : { asn: (v[0]! << 8) | v[1]!, address: u32(v, 2) };
}

// RFC 7606 §7.x, attribute by attribute.
const descriptors: AttrDescriptor[] = [
  {
    code: AttrCode.Origin,
    name: "ORIGIN",
    flags: WELL_KNOWN,
    malformed: "treat-as-withdraw", // §7.1
    decode(v, _ctx, st) {
      if (v.length !== 1) return `ORIGIN length ${v.length}, expected 1`;
      if (v[0]! > 2) return `ORIGIN value ${v[0]} undefined`;
      st.attrs.origin = v[0] as OriginCode;
      return null;
    },
    encode(a, _ctx, w) {
      if (a.origin === undefined) return false;
      w.u8(a.origin);
      return true;
    },
    format: (a) =>
      a.origin === undefined ? undefined : (["igp", "egp", "incomplete"][a.origin] ?? "?"),
  },
  {
    code: AttrCode.AsPath,
    name: "AS_PATH",
    flags: WELL_KNOWN,
    malformed: "treat-as-withdraw", // §7.2
    decode(v, ctx, st) {
      const path = decodeAsPath(v, ctx.as4 ? 4 : 2);
      if (typeof path === "string") return path;
      // §7.2 / RFC 5065 §5.3: confederation segments only come from inside a confederation.
      if (!ctx.ibgp && hasConfedSegments(path))
        return "AS_PATH confederation segment from an external peer";
      st.attrs.asPath = path;
      return null;
    },
    encode(a, ctx, w) {
      if (a.asPath === undefined) return false;
      encodeAsPath(w, a.asPath, ctx.as4 ? 4 : 2);
      return true;
    },
    format: (a) => (a.asPath === undefined ? undefined : formatAsPath(a.asPath)),
  },
  {
    code: AttrCode.NextHop,
    name: "NEXT_HOP",
    flags: WELL_KNOWN,
    malformed: "treat-as-withdraw", // §7.3 (semantic checks are in the UPDATE codec)
    decode(v, _ctx, st) {
      if (v.length !== 4) return `NEXT_HOP length ${v.length}, expected 4`;
      st.attrs.nextHop = u32(v, 0);
      return null;
    },
    encode(a, _ctx, w) {
      if (a.nextHop === undefined) return false;
      w.u32(a.nextHop);
      return true;
    },
    format: (a) => (a.nextHop === undefined ? undefined : formatIpv4(a.nextHop)),
  },
  {
    code: AttrCode.Med,
    name: "MULTI_EXIT_DISC",
    flags: OPT_NON_TRANS,
    malformed: "treat-as-withdraw", // §7.4
    decode(v, _ctx, st) {
      if (v.length !== 4) return `MULTI_EXIT_DISC length ${v.length}, expected 4`;
      st.attrs.med = u32(v, 0);
      return null;
    },
    encode(a, _ctx, w) {
      if (a.med === undefined) return false;
      w.u32(a.med);
      return true;
    },
    format: (a) => (a.med === undefined ? undefined : String(a.med)),
  },
  {
    code: AttrCode.LocalPref,
    name: "LOCAL_PREF",
    flags: WELL_KNOWN,
    malformed: "treat-as-withdraw", // §7.5
    decode(v, ctx, st) {
      if (v.length !== 4) return `LOCAL_PREF length ${v.length}, expected 4`;
      // §7.5: from an external peer it is discarded, not an error.
      if (!ctx.ibgp) {
        st.issues.push(discard(AttrCode.LocalPref, "LOCAL_PREF from an external peer"));
        return null;
      }
      st.attrs.localPref = u32(v, 0);
      return null;
    },
    encode(a, _ctx, w) {
      if (a.localPref === undefined) return false;
      w.u32(a.localPref);
      return true;
    },
    format: (a) => (a.localPref === undefined ? undefined : String(a.localPref)),
  },
  {
    code: AttrCode.AtomicAggregate,
    name: "ATOMIC_AGGREGATE",
    flags: WELL_KNOWN,
    malformed: "attribute-discard", // §7.6
    decode(v, _ctx, st) {
      if (v.length !== 0) return `ATOMIC_AGGREGATE length ${v.length}, expected 0`;
      st.attrs.atomicAggregate = true;
      return null;
    },
    encode: (a) => a.atomicAggregate === true,
    format: (a) => (a.atomicAggregate ? "yes" : undefined),
  },
  {
    code: AttrCode.Aggregator,
    name: "AGGREGATOR",
    flags: OPT_TRANS,
    malformed: "attribute-discard", // §7.7
    decode(v, ctx, st) {
      const agg = decodeAggregator(v, ctx.as4 ? 4 : 2, "AGGREGATOR");
      if (typeof agg === "string") return agg;
      st.attrs.aggregator = agg;
      return null;
    },
    encode(a, ctx, w) {
      if (a.aggregator === undefined) return false;
      if (ctx.as4) w.u32(a.aggregator.asn);
      else w.u16(a.aggregator.asn > 0xffff ? AS_TRANS : a.aggregator.asn);
      w.u32(a.aggregator.address);
      return true;
    },
    format: (a) =>
      a.aggregator === undefined
        ? undefined
        : `${a.aggregator.asn} ${formatIpv4(a.aggregator.address)}`,
  },
  {
    code: AttrCode.Communities,
    name: "COMMUNITIES",
    flags: OPT_TRANS,
    malformed: "treat-as-withdraw", // §7.8
    decode(v, _ctx, st) {
      const list = u32List(v, "COMMUNITIES", 4);
      if (typeof list === "string") return list;
      st.attrs.communities = list;
      return null;
    },
    encode(a, _ctx, w) {
      if (a.communities === undefined || a.communities.length === 0) return false;
      w.ensure(4 * a.communities.length);
      for (const c of a.communities) w.u32(c);
      return true;
    },
    format: (a) => a.communities?.map((c) => `${c >>> 16}:${c & 0xffff}`).join(" "),
  },
  {
    code: AttrCode.OriginatorId,
    name: "ORIGINATOR_ID",
    flags: OPT_NON_TRANS,
    malformed: "treat-as-withdraw", // §7.9
    decode(v, _ctx, st) {
      if (v.length !== 4) return `ORIGINATOR_ID length ${v.length}, expected 4`;
      st.attrs.originatorId = u32(v, 0);
      return null;
    },
    encode(a, _ctx, w) {
      if (a.originatorId === undefined) return false;
      w.u32(a.originatorId);
      return true;
    },
    format: (a) => (a.originatorId === undefined ? undefined : formatIpv4(a.originatorId)),
  },
  {
    code: AttrCode.ClusterList,
    name: "CLUSTER_LIST",
    flags: OPT_NON_TRANS,
    malformed: "treat-as-withdraw", // §7.10
    decode(v, _ctx, st) {
      const list = u32List(v, "CLUSTER_LIST", 4);
      if (typeof list === "string") return list;
      st.attrs.clusterList = list;
      return null;
    },
    encode(a, _ctx, w) {
      if (a.clusterList === undefined || a.clusterList.length === 0) return false;
      for (const c of a.clusterList) w.u32(c);
      return true;
    },
    format: (a) => a.clusterList?.map(formatIpv4).join(" "),
  },
  {
    code: AttrCode.MpReachNlri,
    name: "MP_REACH_NLRI",
    flags: OPT_NON_TRANS,
    malformed: "session-reset", // §7.11, §5.3
    decode(v, ctx, st, raw) {
      const mp = decodeMpReach(v, raw, ctx);
      if ("action" in mp) return mp;
      if ("unsupported" in mp) {
        st.issues.push(
          discard(
            AttrCode.MpReachNlri,
            `MP_REACH_NLRI for unsupported AFI ${mp.afi} SAFI ${mp.safi}`,
          ),
        );
        return null;
      }
      st.attrs.mpReach = mp;
      return null;
    },
    encode(a, ctx, w) {
      if (a.mpReach === undefined) return false;
      encodeMpReach(w, a.mpReach, ctx);
      return true;
    },
    format(a) {
      const mp = a.mpReach;
      if (mp === undefined) return undefined;
      const nh =
        mp.nextHop.length === 4 ? formatIpv4(u32(mp.nextHop, 0)) : formatIpv6(mp.nextHop, 0);
      const ll = mp.nextHop.length === 32 ? ` ll ${formatIpv6(mp.nextHop, 16)}` : "";
      return `afi ${mp.afi} nh ${nh}${ll} [${prefixesToStrings(mp.nlri).join(" ")}]`;
    },
  },
  {
    code: AttrCode.MpUnreachNlri,
    name: "MP_UNREACH_NLRI",
    flags: OPT_NON_TRANS,
    malformed: "session-reset", // §7.12, §5.3
    decode(v, ctx, st, raw) {
      const mp = decodeMpUnreach(v, raw, ctx);
      if ("action" in mp) return mp;
      if ("unsupported" in mp) {
        st.issues.push(
          discard(
            AttrCode.MpUnreachNlri,
            `MP_UNREACH_NLRI for unsupported AFI ${mp.afi} SAFI ${mp.safi}`,
          ),
        );
        return null;
      }
      st.attrs.mpUnreach = mp;
      return null;
    },
    encode(a, ctx, w) {
      if (a.mpUnreach === undefined) return false;
      encodeMpUnreach(w, a.mpUnreach, ctx);
      return true;
    },
    format: (a) =>
      a.mpUnreach === undefined
        ? undefined
        : `afi ${a.mpUnreach.afi} [${prefixesToStrings(a.mpUnreach.withdrawn).join(" ")}]`,
  },
  {
    code: AttrCode.ExtendedCommunities,
    name: "EXTENDED_COMMUNITIES",
    flags: OPT_TRANS,
    malformed: "treat-as-withdraw", // §7.14
    decode(v, _ctx, st) {
      if (v.length === 0 || v.length % 8 !== 0)
        return `EXTENDED_COMMUNITIES length ${v.length} is not a non-zero multiple of 8`;
      const dv = new DataView(v.buffer, v.byteOffset, v.length);
      const out: bigint[] = [];
      for (let p = 0; p < v.length; p += 8) out.push(dv.getBigUint64(p));
      st.attrs.extendedCommunities = out;
      return null;
    },
    encode(a, _ctx, w) {
      if (a.extendedCommunities === undefined || a.extendedCommunities.length === 0) return false;
      w.ensure(8 * a.extendedCommunities.length);
      for (const c of a.extendedCommunities) {
        w.view.setBigUint64(w.pos, BigInt.asUintN(64, c));
        w.pos += 8;
      }
      return true;
    },
    format: (a) =>
      a.extendedCommunities?.map((c) => `0x${c.toString(16).padStart(16, "0")}`).join(" "),
  },
  {
    code: AttrCode.As4Path,
    name: "AS4_PATH",
    flags: OPT_TRANS,
    malformed: "attribute-discard", // RFC 6793 §6
    decode(v, ctx, st) {
      if (ctx.as4) {
        st.issues.push(
          discard(AttrCode.As4Path, "AS4_PATH on a 4-octet AS session is ignored (RFC 6793 §6)"),
        );
        return null;
      }
      const path = decodeAsPath(v, 4);
      if (typeof path === "string") return path;
      if (hasConfedSegments(path)) return "AS4_PATH with confederation segments";
      st.as4Path = path;
      return null;
    },
    // Generated on 2-octet sessions when the path has an AS number above 65535 (§4.2.2).
    encode(a, ctx, w) {
      if (ctx.as4 || a.asPath === undefined || !needsAs4(a.asPath)) return false;
      encodeAsPath(w, as4PathFor(a.asPath), 4);
      return true;
    },
    format: () => undefined,
  },
  {
    code: AttrCode.As4Aggregator,
    name: "AS4_AGGREGATOR",
    flags: OPT_TRANS,
    malformed: "attribute-discard", // RFC 6793 §6
    decode(v, ctx, st) {
      if (ctx.as4) {
        st.issues.push(
          discard(
            AttrCode.As4Aggregator,
            "AS4_AGGREGATOR on a 4-octet AS session is ignored (RFC 6793 §6)",
          ),
        );
        return null;
      }
      const agg = decodeAggregator(v, 4, "AS4_AGGREGATOR");
      if (typeof agg === "string") return agg;
      st.as4Aggregator = agg;
      return null;
    },
    encode(a, ctx, w) {
      if (ctx.as4 || a.aggregator === undefined || a.aggregator.asn <= 0xffff) return false;
      w.u32(a.aggregator.asn);
      w.u32(a.aggregator.address);
      return true;
    },
    format: () => undefined,
  },
  {
    code: AttrCode.LargeCommunities,
    name: "LARGE_COMMUNITY",
    flags: OPT_TRANS,
    malformed: "treat-as-withdraw", // RFC 8092 §6 (follows RFC 7606)
    decode(v, _ctx, st) {
      const list = u32List(v, "LARGE_COMMUNITY", 12);
      if (typeof list === "string") return list;
      const out: LargeCommunity[] = [];
      for (let i = 0; i < list.length; i += 3) out.push([list[i]!, list[i + 1]!, list[i + 2]!]);
      st.attrs.largeCommunities = out;
      return null;
    },
    encode(a, _ctx, w) {
      if (a.largeCommunities === undefined || a.largeCommunities.length === 0) return false;
      w.ensure(12 * a.largeCommunities.length);
      for (const [g, l1, l2] of a.largeCommunities) {
        w.u32(g);
        w.u32(l1);
        w.u32(l2);
      }
      return true;
    },
    format: (a) => a.largeCommunities?.map((c) => c.join(":")).join(" "),
  },
];

/** The table: descriptor by attribute type code (sparse array, O(1) lookup). */
export const ATTRIBUTES: readonly (AttrDescriptor | undefined)[] = (() => {
  const table: (AttrDescriptor | undefined)[] = new Array(256).fill(undefined);
  for (const d of descriptors) table[d.code] = d;
  return table;
})();

export const attributeName = (code: number): string => ATTRIBUTES[code]?.name ?? `ATTR_${code}`;

/** Attribute lines for logs and `vipmux status` (name: value), in type-code order. */
export function formatAttributes(a: PathAttributes): string[] {
  const lines: string[] = [];
  for (const d of ATTRIBUTES) {
    const text = d?.format(a);
    if (d && text !== undefined) lines.push(`${d.name}: ${text}`);
  }
  for (const u of a.unknown ?? []) {
    lines.push(
      `${attributeName(u.code)}: flags 0x${u.flags.toString(16)} ${Buffer.from(u.value).toString("hex")}`,
    );
  }
  return lines;
}

/** Whether `a` holds anything for this attribute code (the AS4 ones are derived). */
export function hasAttribute(a: PathAttributes, code: number, ctx: CodecContext): boolean {
  switch (code) {
    case AttrCode.As4Path:
      return !ctx.as4 && a.asPath !== undefined && needsAs4(a.asPath);
    case AttrCode.As4Aggregator:
      return !ctx.as4 && a.aggregator !== undefined && a.aggregator.asn > 0xffff;
    case AttrCode.AtomicAggregate:
      return a.atomicAggregate === true;
    case AttrCode.Communities:
      return (a.communities?.length ?? 0) > 0;
    case AttrCode.ClusterList:
      return (a.clusterList?.length ?? 0) > 0;
    case AttrCode.ExtendedCommunities:
      return (a.extendedCommunities?.length ?? 0) > 0;
    case AttrCode.LargeCommunities:
      return (a.largeCommunities?.length ?? 0) > 0;
    default: {
      const key = KEY_BY_CODE[code];
      if (key !== undefined) return present(a[key]);
      return (a.unknown ?? []).some((u) => u.code === code);
    }
  }
}

const KEY_BY_CODE: Readonly<Record<number, keyof PathAttributes>> = {
  [AttrCode.Origin]: "origin",
  [AttrCode.AsPath]: "asPath",
  [AttrCode.NextHop]: "nextHop",
  [AttrCode.Med]: "med",
  [AttrCode.LocalPref]: "localPref",
  [AttrCode.Aggregator]: "aggregator",
  [AttrCode.OriginatorId]: "originatorId",
  [AttrCode.MpReachNlri]: "mpReach",
  [AttrCode.MpUnreachNlri]: "mpUnreach",
};
