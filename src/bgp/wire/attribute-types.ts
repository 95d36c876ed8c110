// The types of the path attribute table: decoded attribute values and the descriptor shape.
// They live apart from the table (attributes.ts) and its entries (attribute-codecs.ts)
// because both need them, and the table needs the entries: with the types in either
// module, the two would import each other.

import type { AsPath } from "./as-path.ts";
import type { ByteWriter } from "./buffer.ts";
import type { OriginCode } from "./constants.ts";
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
