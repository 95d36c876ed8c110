// Byte-range copy without allocating a view: `dst.set(src.subarray(a, b))` creates a
// subarray object per call, Buffer.prototype.copy is a native memmove that accepts any
// Uint8Array and allocates nothing.
import { Buffer } from "node:buffer";

const nativeCopy = Buffer.prototype.copy;

/** Copies src[srcStart, srcEnd) to dst at dstStart; returns the number of bytes copied. */
export function copyBytes(
  src: Uint8Array,
  srcStart: number,
  srcEnd: number,
  dst: Uint8Array,
  dstStart: number,
): number {
  return nativeCopy.call(src, dst, dstStart, srcStart, srcEnd);
}
