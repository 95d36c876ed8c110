// Path attributes, BIRD style: one descriptor per type code carries the name, the required
// Optional/Transitive flags, what a malformed instance means under RFC 7606, and the decode,
// encode and format hooks (the entries live in attribute-codecs.ts). The UPDATE codec walks
// attributes and dispatches through the table here. The types are in attribute-types.ts.

import { needsAs4 } from "./as-path.ts";
import { descriptors } from "./attribute-codecs.ts";
import type { AttrDescriptor, PathAttributes } from "./attribute-types.ts";
import { AttrCode } from "./constants.ts";
import type { CodecContext } from "./context.ts";

export type {
  Aggregator,
  AttrDescriptor,
  AttrScratch,
  LargeCommunity,
  Malformed,
  PathAttributes,
  RawAttribute,
} from "./attribute-types.ts";

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
