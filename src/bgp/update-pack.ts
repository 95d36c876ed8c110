// UPDATE packing for one peer: a batch taken from its Adj-RIB-Out (adj-rib-out.ts) becomes
// the withdrawals of each family, then, per exported attribute set, the fewest UPDATEs the
// session's negotiated size allows (the codec's wire/pack.ts), all in one buffer for one
// socket write.

import type { OutBatch } from "./adj-rib-out.ts";
import type { CodecContext } from "./wire/context.ts";
import { packAnnouncements, packWithdrawals } from "./wire/pack.ts";
import { prefixListOf } from "./wire/prefix.ts";

export interface PackedBatch {
  /** The UPDATE messages back to back. */
  readonly buffer: Uint8Array;
  /** How many messages `buffer` holds (0: nothing to send). */
  readonly messages: number;
}

/** Encodes `batch` with the session's codec context; throws when the codec cannot. */
export function packBatch(batch: OutBatch, tx: CodecContext): PackedBatch {
  const chunks: Uint8Array[] = [];
  let messages = 0;
  for (const [afi, list] of [
    [1, batch.withdraw4],
    [2, batch.withdraw6],
  ] as const) {
    if (list.length === 0) continue;
    const packed = packWithdrawals(prefixListOf(afi, list), tx);
    chunks.push(packed.buffer);
    messages += packed.messages.length;
  }
  for (const g of batch.announce.values()) {
    const packed = packAnnouncements(
      prefixListOf(g.route.afi, g.prefixes),
      g.route.attrs,
      tx,
      g.route.nextHop6,
    );
    chunks.push(packed.buffer);
    messages += packed.messages.length;
  }
  return { buffer: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks), messages };
}
