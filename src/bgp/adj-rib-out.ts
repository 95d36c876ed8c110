// Adj-RIB-Out of one peer (RustyBGP `peer_tx.rs` shape: pure logic, no I/O): what the peer
// has been sent (`sent`, prefix key → export key) against what it should have (asked of the
// caller per prefix). Changes only mark prefixes dirty; `take` turns the dirty set into the
// fewest UPDATEs: one group per distinct attribute set, then packed (update-pack.ts). Because
// only the difference is sent, an announce then withdraw inside one coalescing window
// sends nothing, and a peer that stops reading costs one dirty set, never a growing queue.

import type { ExportedRoute } from "./policy.ts";
import { Afi } from "./wire/constants.ts";
import { type Prefix, parsePrefix } from "./wire/prefix.ts";

/** The desired state of one prefix for this peer: its exported route, or absent. */
export interface Desired {
  readonly prefix: Prefix;
  readonly route: ExportedRoute;
}

export interface OutBatch {
  /** Announcements grouped by identical exported attributes. */
  readonly announce: Map<string, { route: ExportedRoute; prefixes: Prefix[] }>;
  readonly withdraw4: Prefix[];
  readonly withdraw6: Prefix[];
  /** Prefix changes in this batch. */
  readonly count: number;
}

/** Stands for "held by the peer, attributes to be re-sent": equals no export key. */
const RESEND = "";

export class AdjRibOut {
  /** prefix key → export key of what the peer holds. */
  readonly sent = new Map<string, string>();
  /** Prefix keys whose desired state may differ from `sent`. */
  readonly dirty = new Set<string>();

  markDirty(key: string): void {
    this.dirty.add(key);
  }

  /** After a session (re)start: the peer holds nothing; everything desired is dirty. */
  reset(desiredKeys: Iterable<string>): void {
    this.sent.clear();
    this.dirty.clear();
    for (const k of desiredKeys) this.dirty.add(k);
  }

  /** Route refresh (RFC 2918): re-send every desired prefix of `afi`. */
  resend(afi: 1 | 2, desiredKeys: Iterable<string>): void {
    const v6 = afi === Afi.Ipv6;
    // What the peer holds stays known (a pending withdrawal must still go out), but no
    // longer matches any export key, so every desired prefix is announced again.
    for (const k of this.sent.keys()) {
      if (k.includes(":") !== v6) continue;
      this.sent.set(k, RESEND);
      this.dirty.add(k);
    }
    for (const k of desiredKeys) if (k.includes(":") === v6) this.dirty.add(k);
  }

  /**
   * Takes up to `max` dirty prefixes, compares each with what was sent, and returns the
   * announcements and withdrawals to send; `sent` is updated as if they were sent.
   * `families` limits which address families the peer negotiated.
   */
  take(
    max: number,
    desired: (key: string) => Desired | undefined,
    families: ReadonlySet<number>,
    parse: (key: string) => Prefix | undefined = parsePrefix,
  ): OutBatch {
    const announce = new Map<string, { route: ExportedRoute; prefixes: Prefix[] }>();
    const withdraw4: Prefix[] = [];
    const withdraw6: Prefix[] = [];
    let count = 0;
    let taken = 0;
    for (const key of this.dirty) {
      if (taken >= max) break;
      taken++;
      this.dirty.delete(key);
      const want = desired(key);
      const had = this.sent.get(key);
      if (want && families.has(want.prefix.afi)) {
        if (had === want.route.key) continue;
        let g = announce.get(want.route.key);
        if (!g) {
          g = { route: want.route, prefixes: [] };
          announce.set(want.route.key, g);
        }
        g.prefixes.push(want.prefix);
        this.sent.set(key, want.route.key);
        count++;
      } else if (had !== undefined) {
        const p = want?.prefix ?? parse(key);
        this.sent.delete(key);
        if (!p) continue;
        (p.afi === Afi.Ipv4 ? withdraw4 : withdraw6).push(p);
        count++;
      }
    }
    return { announce, withdraw4, withdraw6, count };
  }

  /** Prefixes sent and still held by the peer, per family. */
  sentCount(afi?: 1 | 2): number {
    if (afi === undefined) return this.sent.size;
    let n = 0;
    for (const k of this.sent.keys()) if (k.includes(":") === (afi === Afi.Ipv6)) n++;
    return n;
  }
}
