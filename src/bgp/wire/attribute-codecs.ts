// The descriptor entries of the path attribute table (attributes.ts; their type is in
// attribute-types.ts): per type code, the required flags, the RFC 7606 approach for a
// malformed instance, and the decode, encode and format hooks.

import {
  as4PathFor,
  decodeAsPath,
  encodeAsPath,
  formatAsPath,
  hasConfedSegments,
  needsAs4,
} from "./as-path.ts";
import type { Aggregator, AttrDescriptor, LargeCommunity } from "./attribute-types.ts";
import { AS_TRANS, AttrCode, AttrFlag, type OriginCode } from "./constants.ts";
import { decodeMpReach, decodeMpUnreach, encodeMpReach, encodeMpUnreach } from "./mp.ts";
import { discard } from "./outcome.ts";
import { formatIpv4, formatIpv6, prefixesToStrings } from "./prefix.ts";

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

function decodeAggregator(v: Uint8Array, asSize: 2 | 4, name: string): Aggregator | string {
  if (v.length !== asSize + 4) return `${name} length ${v.length}, expected ${asSize + 4}`;
  return asSize === 4
    ? { asn: u32(v, 0), address: u32(v, 4) }
    : { asn: (v[0]! << 8) | v[1]!, address: u32(v, 2) };
}

// RFC 7606 §7.x, attribute by attribute.
export const descriptors: readonly AttrDescriptor[] = [
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
