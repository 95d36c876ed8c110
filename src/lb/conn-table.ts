// Connection table: remembers which backend each flow went to, so a flow stays on its
// backend when the Maglev table changes (backend added, drained, weights changed).
//
// Layout: open addressing with linear probing over one Uint32Array, 16 words (64 bytes,
// one cache line) per slot: key (10 words), hash, backend id, deadline, state. A probe
// touches one line instead of one per field. No objects per flow, so 1M flows cost one
// typed array and no GC work. Deletion uses backward shifting (no tombstones), so probe
// chains never degrade. `capacity` flows live in `ceil(capacity / 0.75)` slots: load
// stays <= 75 %.
//
// Admission (Ananta, SIGCOMM 2013: the Mux's trusted and untrusted flows): a flow seen
// with one packet (a lone SYN, a first UDP datagram) is *untrusted*: it gets a short idle
// timeout and may use at most `untrustedQuota` entries. A TCP entry is created only by a
// SYN (the forwarder keeps other TCP packets without an entry untracked) and becomes
// *established* only on the handshake's ACK (ACK set, SYN clear) within the untrusted
// timeout: the evidence of a handshake this MUX saw. Other protocols are established by
// any second packet. A SYN flood therefore fills only the untrusted quota and cannot
// evict, or crowd out, established flows, and spoofed mid-flow packets create nothing.
// When a flow cannot get an entry the forwarder sends it by the hash alone (consistent
// hashing still maps it to the same backend) and counts it.
//
// Time is passed in (milliseconds, any epoch). Deadlines are stored as uint32 and compared
// with wrap-around arithmetic, so timeouts must stay below 2^31 ms (about 24 days).

import { FLOW_HASH_MASK, FLOW_KEY_WORDS } from "./flow-hash.ts";

/** Lifecycle of a flow entry (low 4 bits of the state byte). */
export const FlowState = {
  empty: 0,
  untrusted: 1,
  established: 2,
  /** FIN or RST seen: kept briefly for retransmissions and the final ACK. */
  closing: 3,
} as const;
export type FlowState = (typeof FlowState)[keyof typeof FlowState];

/** Which timeouts apply (high 4 bits of the state byte). */
export const FlowKind = { tcp: 0, udp: 1, other: 2 } as const;
export type FlowKind = (typeof FlowKind)[keyof typeof FlowKind];

export interface ConnTimeouts {
  /** One-packet flows of any protocol. */
  untrustedMs: number;
  tcpEstablishedMs: number;
  tcpClosingMs: number;
  udpMs: number;
  otherMs: number;
}

/** Defaults in the spirit of Linux IPVS (established 900 s, UDP 300 s), shortened where a MUX needs less. */
export const DEFAULT_TIMEOUTS: Readonly<ConnTimeouts> = {
  untrustedMs: 5_000,
  tcpEstablishedMs: 900_000,
  tcpClosingMs: 30_000,
  udpMs: 120_000,
  otherMs: 60_000,
};

export interface ConnTableOptions {
  /** Maximum flows (default 1,000,000). */
  capacity?: number;
  /** Maximum untrusted flows (default capacity / 4). */
  untrustedQuota?: number;
  timeouts?: Partial<ConnTimeouts>;
}

/** Negative results of `insert`. */
export const InsertFailure = {
  /** `capacity` flows live and none expired nearby. */
  full: -1,
  /** `untrustedQuota` untrusted flows live (a SYN flood, or many one-packet flows). */
  untrustedQuota: -2,
} as const;

const TCP_FIN_RST = 0x01 | 0x04;
const TCP_SYN = 0x02;
const TCP_ACK = 0x10;
/** Slots a full insert examines for expired flows before giving up: keeps insert O(1). */
const INSERT_SWEEP_SLOTS = 64;
const MAX_LOAD = 0.75;
/** Slot layout (words). */
const SLOT_WORDS = 16;
const W_HASH = 10;
const W_BACKEND = 11;
const W_DEADLINE = 12;
/** (kind << 4) | state; 0 = empty slot. */
const W_STATE = 13;

export class ConnectionTable {
  readonly capacity: number;
  readonly untrustedQuota: number;
  readonly slots: number;
  readonly timeouts: Readonly<ConnTimeouts>;
  /** Live entries (expired ones count until found or swept). */
  size = 0;
  untrustedCount = 0;
  /** Entries reclaimed because their idle timeout passed. */
  expired = 0;

  private readonly d: Uint32Array;
  private readonly homeShift: number;
  private readonly homeScale: number;
  private sweepCursor = 0;

  constructor(options: ConnTableOptions = {}) {
    const capacity = options.capacity ?? 1_000_000;
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 100_000_000) {
      throw new RangeError(`connection table capacity ${capacity} out of range 1..1e8`);
    }
    const quota = options.untrustedQuota ?? Math.max(1, Math.floor(capacity / 4));
    if (!Number.isInteger(quota) || quota < 0 || quota > capacity) {
      throw new RangeError(`untrusted quota ${quota} out of range 0..${capacity}`);
    }
    const timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
    for (const [k, v] of Object.entries(timeouts)) {
      if (!Number.isInteger(v) || v < 1 || v >= 2 ** 31)
        throw new RangeError(`timeout ${k}=${v} out of range`);
    }
    this.capacity = capacity;
    this.untrustedQuota = quota;
    this.timeouts = timeouts;
    this.slots = Math.ceil(capacity / MAX_LOAD) + 1;
    // home(h) = floor(h * slots / 2^30) for 30-bit flow hashes, computed exactly in
    // doubles: drop low hash bits so the product stays below 2^53.
    const bits = Math.ceil(Math.log2(this.slots + 1));
    this.homeShift = Math.max(0, bits - 23);
    this.homeScale = 2 ** -(30 - this.homeShift);
    this.d = new Uint32Array(this.slots * SLOT_WORDS);
  }

  /** Memory held by the table's arrays. */
  get bytes(): number {
    return this.d.byteLength;
  }

  private home(hash: number): number {
    // `| 0` keeps the result an int32 (a double would be boxed when returned).
    return ((hash >>> this.homeShift) * this.slots * this.homeScale) | 0;
  }

  private keyEquals(slot: number, key: Uint32Array): boolean {
    const k = this.d;
    const o = slot * SLOT_WORDS;
    return (
      k[o + 9] === key[9] &&
      k[o + 8] === key[8] &&
      k[o] === key[0] &&
      k[o + 4] === key[4] &&
      k[o + 1] === key[1] &&
      k[o + 2] === key[2] &&
      k[o + 3] === key[3] &&
      k[o + 5] === key[5] &&
      k[o + 6] === key[6] &&
      k[o + 7] === key[7]
    );
  }

  private isExpired(slot: number, now: number): boolean {
    return (((now >>> 0) - this.d[slot * SLOT_WORDS + W_DEADLINE]!) | 0) >= 0;
  }

  private timeoutFor(kind: number, state: number): number {
    const t = this.timeouts;
    if (state === FlowState.untrusted) return t.untrustedMs;
    if (kind === FlowKind.tcp)
      return state === FlowState.closing ? t.tcpClosingMs : t.tcpEstablishedMs;
    return kind === FlowKind.udp ? t.udpMs : t.otherMs;
  }

  /**
   * Slot of the live entry for (hash, key), or -1. `hash` is a 30-bit flow hash
   * (`flowHash`); higher bits are ignored. An expired entry is removed and not found. */
  find(hash: number, key: Uint32Array, now: number): number {
    const h = hash & FLOW_HASH_MASK;
    const slots = this.slots;
    const d = this.d;
    let i = this.home(h);
    for (;;) {
      const o = i * SLOT_WORDS;
      if (d[o + W_STATE] === 0) return -1;
      if (d[o + W_HASH] === h && this.keyEquals(i, key)) {
        if (this.isExpired(i, now)) {
          this.removeAt(i);
          this.expired++;
          return -1;
        }
        return i;
      }
      if (++i === slots) i = 0;
    }
  }

  /**
   * `find` without side effects (for lookups off the packet path, e.g. `vipmux flow`): an
   * expired entry is reported as absent but left in place for `find` or `expire` to reclaim.
   */
  peek(hash: number, key: Uint32Array, now: number): number {
    const h = hash & FLOW_HASH_MASK;
    const slots = this.slots;
    const d = this.d;
    let i = this.home(h);
    for (;;) {
      const o = i * SLOT_WORDS;
      if (d[o + W_STATE] === 0) return -1;
      if (d[o + W_HASH] === h && this.keyEquals(i, key)) return this.isExpired(i, now) ? -1 : i;
      if (++i === slots) i = 0;
    }
  }

  /** Milliseconds until the entry in `slot` expires if idle (<= 0: expired). */
  idleLeftMs(slot: number, now: number): number {
    return (this.d[slot * SLOT_WORDS + W_DEADLINE]! - (now >>> 0)) | 0;
  }

  /**
   * Adds an untrusted entry for a flow `find` did not find. Returns its slot, or an
   * InsertFailure (negative) when the table or the untrusted quota is full.
   */
  insert(hash: number, key: Uint32Array, backendId: number, kind: FlowKind, now: number): number {
    if (this.untrustedCount >= this.untrustedQuota || this.size >= this.capacity) {
      this.expire(now, INSERT_SWEEP_SLOTS);
      if (this.untrustedCount >= this.untrustedQuota) return InsertFailure.untrustedQuota;
      if (this.size >= this.capacity) return InsertFailure.full;
    }
    const h = hash & FLOW_HASH_MASK;
    const slots = this.slots;
    const d = this.d;
    let i = this.home(h);
    while (d[i * SLOT_WORDS + W_STATE] !== 0) if (++i === slots) i = 0;
    const o = i * SLOT_WORDS;
    for (let w = 0; w < FLOW_KEY_WORDS; w++) d[o + w] = key[w]!;
    d[o + W_HASH] = h;
    d[o + W_BACKEND] = backendId;
    d[o + W_STATE] = (kind << 4) | FlowState.untrusted;
    d[o + W_DEADLINE] = (now + this.timeouts.untrustedMs) >>> 0;
    this.size++;
    this.untrustedCount++;
    return i;
  }

  backendAt(slot: number): number {
    return this.d[slot * SLOT_WORDS + W_BACKEND]! | 0;
  }

  /** Moves a flow to another backend (its old one failed). */
  setBackend(slot: number, backendId: number): void {
    this.d[slot * SLOT_WORDS + W_BACKEND] = backendId;
  }

  stateAt(slot: number): FlowState {
    return (this.d[slot * SLOT_WORDS + W_STATE]! & 0x0f) as FlowState;
  }

  /**
   * Records a packet of the flow in `slot`: advances its state (promotion to established,
   * FIN/RST to closing) and pushes its idle deadline out. `tcpFlags` is 0 for non-TCP.
   */
  touch(slot: number, now: number, tcpFlags: number): void {
    const o = slot * SLOT_WORDS;
    const st = this.d[o + W_STATE]!;
    const kind = st >>> 4;
    let state = st & 0x0f;
    if (kind === FlowKind.tcp && (tcpFlags & TCP_FIN_RST) !== 0) {
      if (state === FlowState.untrusted) this.untrustedCount--;
      state = FlowState.closing;
    } else if (state === FlowState.untrusted) {
      // TCP: only the handshake's ACK (after the SYN that made the entry) proves the flow;
      // a retransmitted SYN, or a SYN-ACK a client never sends, proves nothing.
      if (kind !== FlowKind.tcp || (tcpFlags & (TCP_SYN | TCP_ACK)) === TCP_ACK) {
        this.untrustedCount--;
        state = FlowState.established;
      }
    } else if (state === FlowState.closing && (tcpFlags & (TCP_SYN | TCP_ACK)) === TCP_SYN) {
      state = FlowState.established; // the 5-tuple is being reused by a new connection
    }
    this.d[o + W_STATE] = (kind << 4) | state;
    this.d[o + W_DEADLINE] = (now + this.timeoutFor(kind, state)) >>> 0;
  }

  /** Removes the entry in `slot` (backward-shift deletion keeps later probes intact). */
  remove(slot: number): void {
    if (this.d[slot * SLOT_WORDS + W_STATE] !== 0) this.removeAt(slot);
  }

  private removeAt(slot: number): void {
    const d = this.d;
    if ((d[slot * SLOT_WORDS + W_STATE]! & 0x0f) === FlowState.untrusted) this.untrustedCount--;
    this.size--;
    const slots = this.slots;
    let hole = slot;
    let j = slot;
    for (;;) {
      if (++j === slots) j = 0;
      const o = j * SLOT_WORDS;
      if (d[o + W_STATE] === 0) break;
      const home = this.home(d[o + W_HASH]!);
      // Entry j may fill the hole only if its home is not cyclically within (hole, j].
      const stays = hole <= j ? hole < home && home <= j : hole < home || home <= j;
      if (stays) continue;
      d.copyWithin(hole * SLOT_WORDS, o, o + SLOT_WORDS);
      hole = j;
    }
    d[hole * SLOT_WORDS + W_STATE] = 0;
  }

  /**
   * Incremental idle sweep: examines up to `maxSlots` slots from where the last call
   * stopped and removes expired entries. Engines call it from their loop with a small
   * budget; returns the number removed.
   */
  expire(now: number, maxSlots: number): number {
    let removed = 0;
    let i = this.sweepCursor;
    const slots = this.slots;
    for (let n = 0; n < maxSlots; n++) {
      if (this.d[i * SLOT_WORDS + W_STATE] !== 0 && this.isExpired(i, now)) {
        this.removeAt(i); // a later entry may shift into i: look at i again
        removed++;
        continue;
      }
      if (++i === slots) i = 0;
    }
    this.sweepCursor = i;
    this.expired += removed;
    return removed;
  }

  /** Removes every entry. */
  clear(): void {
    this.d.fill(0);
    this.size = 0;
    this.untrustedCount = 0;
  }
}
