// Flow hashing: which fields of a packet decide its backend. Reads the flow tuple the
// parser located (offsets into the packet buffer), never copies it, never allocates.
// The same hash picks the Maglev slot, keys the connection table and becomes the VXLAN
// outer source port, so one flow stays on one backend and one underlay path.

import type { ParsedPacket } from "../packet/parse.ts";
import { readU32 } from "./hash.ts";

/** Fields a service hashes on (config: `distribution: 5-tuple | 3-tuple | 2-tuple`). */
export const Distribution = {
  /** src, dst, protocol, src port, dst port: spreads a client's connections. */
  fiveTuple: 5,
  /** src, dst, protocol: one client sticks to one backend per protocol. */
  threeTuple: 3,
  /** src, dst: one client sticks to one backend for everything. */
  twoTuple: 2,
} as const;
export type Distribution = (typeof Distribution)[keyof typeof Distribution];

export function parseDistribution(text: string): Distribution | undefined {
  if (text === "5-tuple") return Distribution.fiveTuple;
  if (text === "3-tuple") return Distribution.threeTuple;
  if (text === "2-tuple") return Distribution.twoTuple;
  return undefined;
}

/** Flow hashes are 30-bit non-negative integers. */
export const FLOW_HASH_MASK = 0x3fffffff;

/** Words in a connection-table key: src (4), dst (4), ports (1), meta (1). */
export const FLOW_KEY_WORDS = 10;

/**
 * Seeded hash of the packet's flow tuple under `distribution`: MurmurHash3 over the tuple's
 * words, reduced to 30 bits so it stays a V8 small integer (returning a full uint32 from a
 * function boxes it in a heap number about half the time: an allocation per packet).
 * Packets without ports (fragments, non-TCP/UDP) hash on the 3-tuple even for 5-tuple
 * services.
 */
export function flowHash(
  buf: Uint8Array,
  p: ParsedPacket,
  distribution: number,
  seed: number,
): number {
  // MurmurHash3 rounds written out inline: helper calls that return int32 values outside
  // the small-integer range would box them when V8 does not inline the helper.
  let h = seed | 0;
  const addrLen = p.flowAddrLen;
  let words = addrLen >>> 1;
  for (let side = 0; side < 2; side++) {
    const base = side === 0 ? p.flowSrcOffset : p.flowDstOffset;
    const end = base + addrLen;
    for (let o = base; o < end; o += 4) {
      let k = (buf[o]! << 24) | (buf[o + 1]! << 16) | (buf[o + 2]! << 8) | buf[o + 3]!;
      k = Math.imul(k, 0xcc9e2d51);
      k = (k << 15) | (k >>> 17);
      h ^= Math.imul(k, 0x1b873593);
      h = (h << 13) | (h >>> 19);
      h = (Math.imul(h, 5) + 0xe6546b64) | 0;
    }
  }
  if (distribution !== Distribution.twoTuple) {
    let extra = 1;
    let k2 = 0;
    if (distribution === Distribution.fiveTuple && p.flowHasPorts) {
      extra = 2;
      k2 = (p.flowSrcPort << 16) | p.flowDstPort;
    }
    for (let j = 0; j < extra; j++) {
      let k = j === 0 ? p.flowProto : k2;
      k = Math.imul(k, 0xcc9e2d51);
      k = (k << 15) | (k >>> 17);
      h ^= Math.imul(k, 0x1b873593);
      h = (h << 13) | (h >>> 19);
      h = (Math.imul(h, 5) + 0xe6546b64) | 0;
    }
    words += extra;
  }
  // MurmurHash3 finaliser.
  h ^= words << 2;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h & FLOW_HASH_MASK;
}

/**
 * Writes the connection-table key of the packet's flow into `key` (FLOW_KEY_WORDS words):
 * exactly the fields `distribution` hashes, plus the service id so two services on one
 * VIP never share an entry.
 */
export function writeFlowKey(
  buf: Uint8Array,
  p: ParsedPacket,
  distribution: number,
  serviceId: number,
  key: Uint32Array,
): void {
  const src = p.flowSrcOffset;
  const dst = p.flowDstOffset;
  if (p.flowAddrLen === 4) {
    key[0] = readU32(buf, src);
    key[1] = 0;
    key[2] = 0;
    key[3] = 0;
    key[4] = readU32(buf, dst);
    key[5] = 0;
    key[6] = 0;
    key[7] = 0;
  } else {
    for (let i = 0; i < 4; i++) {
      key[i] = readU32(buf, src + 4 * i);
      key[4 + i] = readU32(buf, dst + 4 * i);
    }
  }
  const withPorts = distribution === Distribution.fiveTuple && p.flowHasPorts;
  key[8] = withPorts ? ((p.flowSrcPort << 16) | p.flowDstPort) >>> 0 : 0;
  const proto = distribution === Distribution.twoTuple ? 0 : p.flowProto;
  key[9] = ((serviceId << 9) | (p.flowAddrLen === 16 ? 0x100 : 0) | proto) >>> 0;
}
