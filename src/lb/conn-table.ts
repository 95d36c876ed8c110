// Connection table: remembers which backend each flow went to, so a flow stays on its
// backend when the Maglev table changes (backend added, drained, weights changed).
//
// Layout: open addressing with linear probing over parallel typed arrays (one slot = one
// flow); no objects per flow, so 1M flows cost a few typed arrays and no GC work. Deletion
// uses backward shifting (no tombstones), so probe chains never degrade. The table has
// `capacity` flows in `ceil(capacity / 0.75)` slots: load stays <= 75 %.
//
// Admission (Ananta, SIGCOMM 2013 §3.3.3): a flow seen with one packet (a lone SYN, a first
// UDP datagram) is *untrusted*: it gets a short idle timeout and may use at most
// `untrustedQuota` entries. It becomes *established* when it proves two-way life (for TCP
// a packet that is not a bare SYN, i.e. the handshake's ACK; for others a second packet).
// A SYN flood therefore fills only the untrusted quota and cannot evict, or crowd out,
// established flows. When a flow cannot get an entry the forwarder sends it by the hash
// alone (consistent hashing still maps it to the same backend) and counts it.
//
// Time is passed in (milliseconds, any epoch). Deadlines are stored as uint32 and compared
// with wrap-around arithmetic, so timeouts must stay below 2^31 ms (about 24 days).

import { FLOW_KEY_WORDS } from "./flow-hash.ts";

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

  private readonly keys: Uint32Array;
  private readonly hashes: Uint32Array;
  private readonly backends: Int32Array;
  private readonly deadlines: Uint32Array;
  /** (kind << 4) | state; 0 = empty slot. */
  private readonly states: Uint8Array;
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
    // home(h) = floor(h * slots / 2^32), computed exactly in doubles: drop low hash bits so
    // the product stays below 2^53.
    const bits = Math.ceil(Math.log2(this.slots + 1));
    this.homeShift = Math.max(0, bits - 21);
    this.homeScale = 2 ** -(32 - this.homeShift);
    this.keys = new Uint32Array(this.slots * FLOW_KEY_WORDS);
    this.hashes = new Uint32Array(this.slots);
    this.backends = new Int32Array(this.slots);
    this.deadlines = new Uint32Array(this.slots);
    this.states = new Uint8Array(this.slots);
  }

  /** Memory held by the table's arrays. */
  get bytes(): number {
    return (
      this.keys.byteLength +
      this.hashes.byteLength +
      this.backends.byteLength +
      this.deadlines.byteLength +
      this.states.byteLength
    );
  }

  private home(hash: number): number {
    return Math.floor((hash >>> this.homeShift) * this.slots * this.homeScale);
  }

  private keyEquals(slot: number, key: Uint32Array): boolean {
    const k = this.keys;
    const o = slot * FLOW_KEY_WORDS;
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
    return (((now >>> 0) - this.deadlines[slot]!) | 0) >= 0;
  }

  private timeoutFor(kind: number, state: number): number {
    const t = this.timeouts;
    if (state === FlowState.untrusted) return t.untrustedMs;
    if (kind === FlowKind.tcp)
      return state === FlowState.closing ? t.tcpClosingMs : t.tcpEstablishedMs;
    return kind === FlowKind.udp ? t.udpMs : t.otherMs;
  }

  /** Slot of the live entry for (hash, key), or -1. An expired entry is removed and not found. */
  find(hash: number, key: Uint32Array, now: number): number {
    const h = hash >>> 0;
    const slots = this.slots;
    let i = this.home(h);
    for (;;) {
      if (this.states[i] === 0) return -1;
      if (this.hashes[i] === h && this.keyEquals(i, key)) {
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
   * Adds an untrusted entry for a flow `find` did not find. Returns its slot, or an
   * InsertFailure (negative) when the table or the untrusted quota is full.
   */
  insert(hash: number, key: Uint32Array, backendId: number, kind: FlowKind, now: number): number {
    if (this.untrustedCount >= this.untrustedQuota || this.size >= this.capacity) {
      this.expire(now, INSERT_SWEEP_SLOTS);
      if (this.untrustedCount >= this.untrustedQuota) return InsertFailure.untrustedQuota;
      if (this.size >= this.capacity) return InsertFailure.full;
    }
    const h = hash >>> 0;
    const slots = this.slots;
    let i = this.home(h);
    while (this.states[i] !== 0) if (++i === slots) i = 0;
    const o = i * FLOW_KEY_WORDS;
    const k = this.keys;
    for (let w = 0; w < FLOW_KEY_WORDS; w++) k[o + w] = key[w]!;
    this.hashes[i] = h;
    this.backends[i] = backendId;
    this.states[i] = (kind << 4) | FlowState.untrusted;
    this.deadlines[i] = (now + this.timeouts.untrustedMs) >>> 0;
    this.size++;
    this.untrustedCount++;
    return i;
  }

  backendAt(slot: number): number {
    return this.backends[slot]!;
  }

  /** Moves a flow to another backend (its old one failed). */
  setBackend(slot: number, backendId: number): void {
    this.backends[slot] = backendId;
  }

  stateAt(slot: number): FlowState {
    return (this.states[slot]! & 0x0f) as FlowState;
  }

  /**
   * Records a packet of the flow in `slot`: advances its state (promotion to established,
   * FIN/RST to closing) and pushes its idle deadline out. `tcpFlags` is 0 for non-TCP.
   */
  touch(slot: number, now: number, tcpFlags: number): void {
    const st = this.states[slot]!;
    const kind = st >>> 4;
    let state = st & 0x0f;
    if (kind === FlowKind.tcp && (tcpFlags & TCP_FIN_RST) !== 0) {
      if (state === FlowState.untrusted) this.untrustedCount--;
      state = FlowState.closing;
    } else if (state === FlowState.untrusted) {
      // A retransmitted bare SYN proves nothing; anything else from the flow does.
      if (kind !== FlowKind.tcp || (tcpFlags & (TCP_SYN | TCP_ACK)) !== TCP_SYN) {
        this.untrustedCount--;
        state = FlowState.established;
      }
    } else if (state === FlowState.closing && (tcpFlags & (TCP_SYN | TCP_ACK)) === TCP_SYN) {
      state = FlowState.established; // the 5-tuple is being reused by a new connection
    }
    this.states[slot] = (kind << 4) | state;
    this.deadlines[slot] = (now + this.timeoutFor(kind, state)) >>> 0;
  }

  /** Removes the entry in `slot` (backward-shift deletion keeps later probes intact). */
  remove(slot: number): void {
    if (this.states[slot] !== 0) this.removeAt(slot);
  }

  private removeAt(slot: number): void {
    if ((this.states[slot]! & 0x0f) === FlowState.untrusted) this.untrustedCount--;
    this.size--;
    const slots = this.slots;
    const k = this.keys;
    let hole = slot;
    let j = slot;
    for (;;) {
      if (++j === slots) j = 0;
      if (this.states[j] === 0) break;
      const home = this.home(this.hashes[j]!);
      // Entry j may fill the hole only if its home is not cyclically within (hole, j].
      const stays = hole <= j ? hole < home && home <= j : hole < home || home <= j;
      if (stays) continue;
      k.copyWithin(hole * FLOW_KEY_WORDS, j * FLOW_KEY_WORDS, (j + 1) * FLOW_KEY_WORDS);
      this.hashes[hole] = this.hashes[j]!;
      this.backends[hole] = this.backends[j]!;
      this.deadlines[hole] = this.deadlines[j]!;
      this.states[hole] = this.states[j]!;
      hole = j;
    }
    this.states[hole] = 0;
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
      if (this.states[i] !== 0 && this.isExpired(i, now)) {
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
    this.states.fill(0);
    this.size = 0;
    this.untrustedCount = 0;
  }
}
