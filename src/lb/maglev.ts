// Maglev consistent hashing (Eisenbud et al., "Maglev: A Fast and Reliable Software
// Network Load Balancer", NSDI 2016, §3.4). Each backend derives a permutation of the
// table's slots from two hashes of its name (offset, skip); backends take turns claiming
// their next preferred free slot until the table is full. The result spreads load almost
// evenly and, when the backend set changes, moves few slots.
//
// Determinism: the table depends only on the backends' names and weights, the table size
// and the seed. Turn order is the backends sorted by name (code-unit order), never the
// caller's order, so every MUX computes a byte-identical table from the same config.
//
// Weights: a backend of weight w takes w/maxWeight of a turn per round (integer credit,
// no floating error); the heaviest backends claim one slot every round. Each backend
// ends within one or two slots of M·w/Σw.

import { DEFAULT_SEED, hashString } from "./hash.ts";

/** Table sizes that suit a service: prime (so every skip visits every slot), > 100·N. */
export const MAGLEV_SIZE_DEFAULT = 65537;
export const MAGLEV_SIZE_LARGE = 655373;

/** Marks a slot nobody owns yet while building. Also why a table holds at most 65535 backends. */
const EMPTY = 0xffff;
export const MAGLEV_MAX_BACKENDS = EMPTY;

export interface MaglevBackend {
  /** Stable name; the permutation is a function of it (vipmux uses the DIP). */
  readonly name: string;
  /** Relative share of the table; positive integer. */
  readonly weight: number;
}

export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

/** The seeds of the paper's h1 (offset) and h2 (skip), derived from one service-wide seed. */
function seeds(seed: number): [number, number] {
  return [seed | 0, (seed ^ 0x5bd1e995) | 0];
}

/**
 * Builds a Maglev lookup table: entry[slot] = index into `backends` (the caller's order).
 * `size` must be prime. Returns an empty table (length 0) when there is no backend with
 * positive weight; the forwarder treats that as "no backend".
 */
export function buildMaglevTable(
  backends: readonly MaglevBackend[],
  size: number = MAGLEV_SIZE_DEFAULT,
  seed: number = DEFAULT_SEED,
): Uint16Array {
  if (!isPrime(size)) throw new RangeError(`maglev table size ${size} is not prime`);
  if (backends.length > MAGLEV_MAX_BACKENDS) {
    throw new RangeError(`maglev: ${backends.length} backends, at most ${MAGLEV_MAX_BACKENDS}`);
  }
  const order: number[] = [];
  for (let i = 0; i < backends.length; i++) {
    const w = backends[i]!.weight;
    if (!Number.isInteger(w) || w < 0)
      throw new RangeError(`maglev: weight ${w} is not a non-negative integer`);
    if (w > 0) order.push(i);
  }
  // Sort by name so the caller's order cannot change the table: every MUX must build the
  // same one (docs/architecture.md#every-mux-computes-the-same-answer).
  order.sort((a, b) => {
    const na = backends[a]!.name;
    const nb = backends[b]!.name;
    return na < nb ? -1 : na > nb ? 1 : 0;
  });
  for (let i = 1; i < order.length; i++) {
    if (backends[order[i]!]!.name === backends[order[i - 1]!]!.name) {
      throw new RangeError(`maglev: duplicate backend name ${backends[order[i]!]!.name}`);
    }
  }
  const n = order.length;
  if (n === 0) return new Uint16Array(0);

  const [seedOffset, seedSkip] = seeds(seed);
  const next = new Int32Array(n); // the slot each backend tries next (its permutation cursor)
  const skip = new Int32Array(n);
  const weight = new Int32Array(n);
  const credit = new Int32Array(n);
  let maxWeight = 0;
  for (let j = 0; j < n; j++) {
    const b = backends[order[j]!]!;
    next[j] = hashString(b.name, seedOffset) % size;
    skip[j] = (hashString(b.name, seedSkip) % (size - 1)) + 1;
    weight[j] = b.weight;
    if (b.weight > maxWeight) maxWeight = b.weight;
  }

  const entry = new Uint16Array(size).fill(EMPTY);
  let filled = 0;
  for (;;) {
    for (let j = 0; j < n; j++) {
      credit[j]! += weight[j]!;
      if (credit[j]! < maxWeight) continue;
      credit[j]! -= maxWeight;
      // Walk this backend's permutation (offset + k·skip mod M) to its next free slot.
      let c = next[j]!;
      const s = skip[j]!;
      while (entry[c] !== EMPTY) {
        c += s;
        if (c >= size) c -= size;
      }
      entry[c] = order[j]!;
      c += s;
      if (c >= size) c -= size;
      next[j] = c;
      if (++filled === size) return entry;
    }
  }
}

/** Slots per backend index (length = backends.length); for tests, metrics and `status`. */
export function maglevShares(table: Uint16Array, backendCount: number): Uint32Array {
  const counts = new Uint32Array(backendCount);
  for (let i = 0; i < table.length; i++) counts[table[i]!]!++;
  return counts;
}
