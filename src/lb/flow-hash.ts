// Flow hashing: which fields of a packet decide its backend. Reads the flow tuple the
// parser located (offsets into the packet buffer), never copies it, never allocates.
// The same hash picks the Maglev slot, keys the connection table and becomes the VXLAN
// outer source port, so one flow stays on one backend and one underlay path.

import type { ParsedPacket } from "../packet/parse.ts";
import { mixWord, readU32 } from "./hash.ts";

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

/** Words in a connection-table key: src (4), dst (4), ports (1), meta (1). */
export const FLOW_KEY_WORDS = 10;

/**
 * 32-bit seeded hash of the packet's flow tuple under `distribution`. Packets without
 * ports (fragments, non-TCP/UDP) hash on the 3-tuple even for 5-tuple services.
 */
export function flowHash(
  buf: Uint8Array,
  p: ParsedPacket,
  distribution: number,
  seed: number,
): number {
  let h = seed | 0;
  const src = p.flowSrcOffset;
  const dst = p.flowDstOffset;
  if (p.flowAddrLen === 4) {
    h = mixWord(h, readU32(buf, src));
    h = mixWord(h, readU32(buf, dst));
  } else {
    h = mixWord(h, readU32(buf, src));
    h = mixWord(h, readU32(buf, src + 4));
    h = mixWord(h, readU32(buf, src + 8));
    h = mixWord(h, readU32(buf, src + 12));
    h = mixWord(h, readU32(buf, dst));
    h = mixWord(h, readU32(buf, dst + 4));
    h = mixWord(h, readU32(buf, dst + 8));
    h = mixWord(h, readU32(buf, dst + 12));
  }
  let words = p.flowAddrLen >>> 1;
  if (distribution !== Distribution.twoTuple) {
    h = mixWord(h, p.flowProto);
    words++;
    if (distribution === Distribution.fiveTuple && p.flowHasPorts) {
      h = mixWord(h, ((p.flowSrcPort << 16) | p.flowDstPort) >>> 0);
      words++;
    }
  }
  // MurmurHash3 finaliser, inlined to keep the per-packet path call-light.
  let x = h ^ (words << 2);
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
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
