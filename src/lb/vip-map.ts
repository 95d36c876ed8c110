// VIP lookup: (VIP address, protocol, port) -> service index, read straight from the
// packet buffer. A small open-addressing table over typed arrays, built once per
// forwarding table and never modified, so lookups allocate nothing.

import { finish, mixWord, readU32 } from "./hash.ts";

const KEY_WORDS = 5; // address (4 words; IPv4 uses word 0) + (family, proto, port)
const SEED = 0x2545f491;

function metaWord(addrLen: number, proto: number, port: number): number {
  return ((addrLen === 16 ? 1 << 24 : 0) | (proto << 16) | port) >>> 0;
}

export interface VipKey {
  /** 4 or 16 bytes. */
  readonly addr: Uint8Array;
  readonly proto: number;
  readonly port: number;
  readonly value: number;
}

export class VipMap {
  readonly size: number;
  private readonly mask: number;
  private readonly keys: Uint32Array;
  private readonly values: Int32Array;

  constructor(entries: readonly VipKey[]) {
    let cap = 8;
    while (cap < entries.length * 2) cap *= 2;
    this.mask = cap - 1;
    this.keys = new Uint32Array(cap * KEY_WORDS);
    this.values = new Int32Array(cap).fill(-1);
    this.size = 0;
    for (const e of entries) {
      const a = e.addr;
      const i = this.slotOf(a, 0, a.length, e.proto, e.port);
      if (this.values[i] !== -1) throw new RangeError("duplicate VIP key");
      const o = i * KEY_WORDS;
      for (let w = 0; w < a.length / 4; w++) this.keys[o + w] = readU32(a, 4 * w);
      this.keys[o + 4] = metaWord(a.length, e.proto, e.port);
      this.values[i] = e.value;
      this.size++;
    }
  }

  /** Slot holding the key, or the empty slot where it would go. */
  private slotOf(
    buf: Uint8Array,
    off: number,
    addrLen: number,
    proto: number,
    port: number,
  ): number {
    const w0 = readU32(buf, off);
    const w1 = addrLen === 16 ? readU32(buf, off + 4) : 0;
    const w2 = addrLen === 16 ? readU32(buf, off + 8) : 0;
    const w3 = addrLen === 16 ? readU32(buf, off + 12) : 0;
    const meta = metaWord(addrLen, proto, port);
    let h = mixWord(SEED, w0);
    h = mixWord(h, w1);
    h = mixWord(h, w2);
    h = mixWord(h, w3);
    h = mixWord(h, meta);
    let i = finish(h, 20) & this.mask;
    const k = this.keys;
    for (;;) {
      if (this.values[i] === -1) return i;
      const o = i * KEY_WORDS;
      if (
        k[o + 4] === meta &&
        k[o] === w0 &&
        k[o + 1] === w1 &&
        k[o + 2] === w2 &&
        k[o + 3] === w3
      ) {
        return i;
      }
      i = (i + 1) & this.mask;
    }
  }

  /** Value for the address at buf[off, off + addrLen) with proto and port, or -1. */
  lookup(buf: Uint8Array, off: number, addrLen: number, proto: number, port: number): number {
    return this.values[this.slotOf(buf, off, addrLen, proto, port)]!;
  }
}
