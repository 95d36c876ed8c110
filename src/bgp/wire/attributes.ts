// Path attributes, BIRD style: one descriptor per type code carries the name, the required
// Optional/Transitive flags, what a malformed instance means under RFC 7606, and the decode,
// encode and format hooks (the entries live in attribute-codecs.ts). The UPDATE codec walks
// attributes and dispatches through the table here.

import { type AsPath, needsAs4 } from "./as-path.ts";
import { descriptors } from "./attribute-codecs.ts";
import type { ByteWriter } from "./buffer.ts";
import { AttrCode, type OriginCode } from "./constants.ts";
import type { CodecContext } from "./context.ts";
import type { MpReach, MpUnreach } from "./mp.ts";
import type { AttributeIssue, SessionReset } from "./outcome.ts";

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

const present = (x: unknown) => x !== undefined;

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
