// The <length, prefix> NLRI encoding (RFC 4271 §4.3), shared by the Withdrawn Routes and
// NLRI fields and by MP_REACH/MP_UNREACH (RFC 4760 §5), with an optional 4-octet Path
// Identifier before each entry when add-path is negotiated (RFC 7911 §3).

import { Afi } from "./constants.ts";
import type { PrefixList } from "./prefix.ts";

/** Bits of an address for a family. */
export const maxPrefixLength = (afi: 1 | 2): number => (afi === Afi.Ipv4 ? 32 : 128);

/**
 * Decodes `bytes[start, end)` as NLRI. Returns the list, or a reason string when the field
 * is syntactically incorrect (RFC 7606 §5.3: a length beyond the family or an overrun).
 */
export function decodeNlri(
  bytes: Uint8Array,
  start: number,
  end: number,
  afi: 1 | 2,
  addPath: boolean,
): PrefixList | string {
  const maxLen = maxPrefixLength(afi);
  // First pass: validate and count, so the typed arrays are allocated once.
  let count = 0;
  for (let p = start; p < end; ) {
    if (addPath) {
      if (p + 4 >= end) return `NLRI path identifier overruns the field at offset ${p - start}`;
      p += 4;
    }
    const len = bytes[p] ?? 0;
    if (len > maxLen) return `prefix length ${len} exceeds ${maxLen}`;
    p += 1 + ((len + 7) >> 3);
    if (p > end) return `prefix of length ${len} overruns the NLRI field`;
    count++;
  }
  const lens = new Uint8Array(count);
  const pathIds = addPath ? new Uint32Array(count) : null;
  if (afi === Afi.Ipv4) {
    const addrs = new Uint32Array(count);
    for (let p = start, i = 0; i < count; i++) {
      if (pathIds) {
        pathIds[i] =
          ((bytes[p]! << 24) | (bytes[p + 1]! << 16) | (bytes[p + 2]! << 8) | bytes[p + 3]!) >>> 0;
        p += 4;
      }
      const len = bytes[p++]!;
      const n = (len + 7) >> 3;
      let a = 0;
      for (let k = 0; k < 4; k++) a = (a << 8) | (k < n ? bytes[p + k]! : 0);
      // Trailing bits are irrelevant (RFC 4271 §4.3); keep the address canonical.
      addrs[i] = len === 0 ? 0 : (a & (0xffffffff << (32 - len))) >>> 0;
      lens[i] = len;
      p += n;
    }
    return { afi: 1, count, addrs, lens, pathIds };
  }
  const addrs = new Uint8Array(16 * count);
  for (let p = start, i = 0; i < count; i++) {
    if (pathIds) {
      pathIds[i] =
        ((bytes[p]! << 24) | (bytes[p + 1]! << 16) | (bytes[p + 2]! << 8) | bytes[p + 3]!) >>> 0;
      p += 4;
    }
    const len = bytes[p++]!;
    const n = (len + 7) >> 3;
    const base = 16 * i;
    addrs.set(bytes.subarray(p, p + n), base);
    if (len & 7) addrs[base + n - 1] = addrs[base + n - 1]! & (0xff << (8 - (len & 7)));
    lens[i] = len;
    p += n;
  }
  return { afi: 2, count, addrs, lens, pathIds };
}

/** Encoded size of entry `i`. */
export const nlriEntrySize = (list: PrefixList, i: number, addPath: boolean): number =>
  (addPath ? 5 : 1) + (((list.lens[i] ?? 0) + 7) >> 3);

/** Encoded size of the whole list. */
export function nlriSize(list: PrefixList, addPath: boolean): number {
  let size = addPath ? 5 * list.count : list.count;
  for (let i = 0; i < list.count; i++) size += ((list.lens[i] ?? 0) + 7) >> 3;
  return size;
}

/** Writes entry `i` at `pos` in `out` (caller checked the room) and returns the new end. */
export function writeNlriEntry(
  out: Uint8Array,
  pos: number,
  list: PrefixList,
  i: number,
  addPath: boolean,
): number {
  let p = pos;
  if (addPath) {
    const id = list.pathIds?.[i] ?? 0;
    out[p] = id >>> 24;
    out[p + 1] = id >>> 16;
    out[p + 2] = id >>> 8;
    out[p + 3] = id;
    p += 4;
  }
  const len = list.lens[i] ?? 0;
  out[p++] = len;
  const n = (len + 7) >> 3;
  if (list.afi === Afi.Ipv4) {
    const a = list.addrs[i] ?? 0;
    if (n > 0) out[p] = a >>> 24;
    if (n > 1) out[p + 1] = a >>> 16;
    if (n > 2) out[p + 2] = a >>> 8;
    if (n > 3) out[p + 3] = a;
  } else {
    out.set(list.addrs.subarray(16 * i, 16 * i + n), p);
  }
  return p + n;
}
