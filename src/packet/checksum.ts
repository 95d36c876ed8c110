// The Internet checksum (RFC 1071): one's-complement sum of 16-bit big-endian words.
// Sums are kept unfolded in a JS number (exact up to 2^53), folded once at the end.

/** Adds `len` bytes at `off` to `sum` as big-endian 16-bit words (odd tail padded with 0). */
export function sum16(buf: Uint8Array, off: number, len: number, sum: number): number {
  let s = sum;
  const end = off + (len & ~1);
  for (let i = off; i < end; i += 2) s += (buf[i]! << 8) | buf[i + 1]!;
  if (len & 1) s += buf[end]! << 8;
  return s;
}

/** Folds a running sum to 16 bits and complements it: the value written on the wire. */
export function foldComplement(sum: number): number {
  let s = sum;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return ~s & 0xffff;
}

/** Checksum of a byte range; 0 when verifying a range that includes its own checksum. */
export function checksum(buf: Uint8Array, off: number, len: number): number {
  return foldComplement(sum16(buf, off, len, 0));
}

/**
 * Sum of the TCP/UDP pseudo-header (RFC 768 / RFC 8200 §8.1): source and destination
 * address, protocol and upper-layer length. `addrLen` is 4 or 16.
 */
export function pseudoHeaderSum(
  buf: Uint8Array,
  srcOff: number,
  dstOff: number,
  addrLen: number,
  proto: number,
  l4Len: number,
): number {
  let s = sum16(buf, srcOff, addrLen, 0);
  s = sum16(buf, dstOff, addrLen, s);
  return s + proto + (l4Len & 0xffff) + Math.floor(l4Len / 0x10000);
}

/**
 * RFC 1624 incremental update: the new checksum after one 16-bit word of the covered data
 * changed from `oldWord` to `newWord`, without re-reading the rest.
 */
export function updateChecksum16(oldChecksum: number, oldWord: number, newWord: number): number {
  // HC' = ~(~HC + ~m + m')  (RFC 1624 eqn. 3)
  let s = (~oldChecksum & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff);
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}
