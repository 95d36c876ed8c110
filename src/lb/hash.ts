// Seeded 32-bit hashing (MurmurHash3 x86_32 mixing). One hash family serves the Maglev
// permutation (backend names) and the per-packet flow hash (words read from the packet).
// Every MUX must compute the same values, so this is plain integer arithmetic: no
// platform hash, no randomised seed.

/** Seed used when a caller gives none. Fixed forever: changing it moves every flow. */
export const DEFAULT_SEED = 0x9e3779b9 | 0;

/** One MurmurHash3 round: folds the 32-bit word `k` into the running state `h`. */
export function mixWord(h: number, k: number): number {
  let x = Math.imul(k, 0xcc9e2d51);
  x = (x << 15) | (x >>> 17);
  x = Math.imul(x, 0x1b873593);
  let y = h ^ x;
  y = (y << 13) | (y >>> 19);
  return (Math.imul(y, 5) + 0xe6546b64) | 0;
}

/** MurmurHash3 finaliser: avalanches the state so every input bit affects every output bit. */
export function finish(h: number, lengthBytes: number): number {
  let x = h ^ lengthBytes;
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

/** Big-endian 32-bit word at `off` (network byte order, as on the wire). */
export function readU32(buf: Uint8Array, off: number): number {
  return ((buf[off]! << 24) | (buf[off + 1]! << 16) | (buf[off + 2]! << 8) | buf[off + 3]!) >>> 0;
}

/** MurmurHash3 x86_32 of a byte string (control plane: backend names, config keys). */
export function hashBytes(bytes: Uint8Array, seed: number, length = bytes.length): number {
  let h = seed | 0;
  const n = length;
  const whole = n & ~3;
  for (let i = 0; i < whole; i += 4) {
    // Little-endian word, as the reference implementation reads it.
    const k = bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24);
    h = mixWord(h, k);
  }
  const tail = n & 3;
  if (tail !== 0) {
    let k = 0;
    if (tail === 3) k ^= bytes[whole + 2]! << 16;
    if (tail >= 2) k ^= bytes[whole + 1]! << 8;
    k ^= bytes[whole]!;
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
  }
  return finish(h, n);
}

const utf8 = new TextEncoder();
let scratch = new Uint8Array(256);

/**
 * MurmurHash3 x86_32 of a string's UTF-8 bytes. Encodes into a reused buffer: a Maglev
 * build hashes every backend name twice, and a fresh TextEncoder array per name cost more
 * than the whole table fill.
 */
export function hashString(s: string, seed: number): number {
  if (s.length * 3 > scratch.length) scratch = new Uint8Array(s.length * 3);
  let n = 0;
  for (; n < s.length; n++) {
    const c = s.charCodeAt(n);
    if (c >= 0x80) {
      n = utf8.encodeInto(s, scratch).written; // rare: non-ASCII names
      break;
    }
    scratch[n] = c;
  }
  return hashBytes(scratch, seed, n);
}
