// AS_PATH and AS4_PATH (RFC 4271 §4.3, RFC 5065, RFC 6793): segment codec, the 2-octet
// transition encoding, and AS4_PATH reconciliation.

import type { ByteWriter } from "./buffer.ts";
import { AS_TRANS, AsPathSegmentType, type AsPathSegmentTypeCode } from "./constants.ts";

export interface AsPathSegment {
  readonly type: AsPathSegmentTypeCode;
  readonly asns: readonly number[];
}

export type AsPath = readonly AsPathSegment[];

const isConfed = (t: number) =>
  t === AsPathSegmentType.ConfedSequence || t === AsPathSegmentType.ConfedSet;

/**
 * Decodes segments of `asSize`-octet AS numbers. A string is the reason the attribute is
 * malformed (RFC 7606 §7.2: overrun, unknown segment type, zero-length segment).
 */
export function decodeAsPath(v: Uint8Array, asSize: 2 | 4): AsPath | string {
  const segments: AsPathSegment[] = [];
  let p = 0;
  while (p < v.length) {
    if (p + 2 > v.length) return "AS_PATH segment header truncated";
    const type = v[p]!;
    const count = v[p + 1]!;
    p += 2;
    if (type < AsPathSegmentType.AsSet || type > AsPathSegmentType.ConfedSet) {
      return `AS_PATH segment type ${type}`;
    }
    if (count === 0) return "AS_PATH segment of length 0";
    if (p + count * asSize > v.length) return "AS_PATH segment overruns the attribute";
    const asns: number[] = new Array(count);
    for (let i = 0; i < count; i++, p += asSize) {
      asns[i] =
        asSize === 4
          ? ((v[p]! << 24) | (v[p + 1]! << 16) | (v[p + 2]! << 8) | v[p + 3]!) >>> 0
          : (v[p]! << 8) | v[p + 1]!;
    }
    segments.push({ type: type as AsPathSegmentTypeCode, asns });
  }
  return segments;
}

/** Writes segments with `asSize`-octet numbers; the 2-octet form maps large ASNs to AS_TRANS. */
export function encodeAsPath(w: ByteWriter, path: AsPath, asSize: 2 | 4): void {
  for (const seg of path) {
    // A segment holds at most 255 ASNs, so longer runs are split; empty ones are dropped
    // because a zero-length segment is malformed (RFC 7606 §7.2).
    for (let i = 0; i < seg.asns.length; i += 255) {
      const n = Math.min(255, seg.asns.length - i);
      w.ensure(2 + n * asSize);
      w.u8(seg.type);
      w.u8(n);
      for (let k = i; k < i + n; k++) {
        const asn = seg.asns[k]!;
        if (asSize === 4) w.u32(asn);
        else w.u16(asn > 0xffff ? AS_TRANS : asn);
      }
    }
  }
}

/** RFC 4271 §9.1.2.2 path length: an AS_SET counts 1, confederation segments 0. */
export function asPathLength(path: AsPath): number {
  let n = 0;
  for (const seg of path) {
    if (seg.type === AsPathSegmentType.AsSequence) n += seg.asns.length;
    else if (seg.type === AsPathSegmentType.AsSet) n += 1;
  }
  return n;
}

export const needsAs4 = (path: AsPath): boolean => path.some((s) => s.asns.some((a) => a > 0xffff));

/** RFC 6793 §4.2.2: AS4_PATH carries no confederation segments. */
export const as4PathFor = (path: AsPath): AsPath => path.filter((s) => !isConfed(s.type));

export const hasConfedSegments = (path: AsPath): boolean => path.some((s) => isConfed(s.type));

/**
 * RFC 6793 §4.2.3: rebuild the true path from a 2-octet AS_PATH and an AS4_PATH. When the
 * AS4_PATH is longer than the AS_PATH it is ignored; otherwise the leading ASes of AS_PATH
 * that the AS4_PATH does not cover (added by 2-octet-only speakers) are kept in front of it,
 * along with any confederation segments.
 */
export function reconcileAs4Path(asPath: AsPath, as4Path: AsPath): AsPath {
  const n = asPathLength(asPath);
  const m = asPathLength(as4Path);
  if (n < m) return asPath;
  let keep = n - m;
  const out: AsPathSegment[] = [];
  let split = false;
  for (const seg of asPath) {
    if (isConfed(seg.type)) {
      out.push(seg);
    } else if (keep > 0) {
      if (seg.type === AsPathSegmentType.AsSet) {
        out.push(seg);
        keep -= 1;
      } else {
        const take = Math.min(keep, seg.asns.length);
        out.push({ type: seg.type, asns: seg.asns.slice(0, take) });
        split = take < seg.asns.length;
        keep -= take;
      }
    }
  }
  const first = as4Path[0];
  const last = out[out.length - 1];
  // A sequence that the old speaker's prepends split in two is joined back at the seam.
  if (
    split &&
    first &&
    last &&
    last.type === AsPathSegmentType.AsSequence &&
    first.type === AsPathSegmentType.AsSequence &&
    last.asns.length + first.asns.length <= 255
  ) {
    out[out.length - 1] = { type: last.type, asns: [...last.asns, ...first.asns] };
    out.push(...as4Path.slice(1));
  } else {
    out.push(...as4Path);
  }
  return out;
}

export function formatAsPath(path: AsPath): string {
  return path
    .map((s) => {
      const list = s.asns.join(" ");
      switch (s.type) {
        case AsPathSegmentType.AsSet:
          return `{${list}}`;
        case AsPathSegmentType.ConfedSequence:
          return `(${list})`;
        case AsPathSegmentType.ConfedSet:
          return `[${list}]`;
        default:
          return list;
      }
    })
    .join(" ");
}
