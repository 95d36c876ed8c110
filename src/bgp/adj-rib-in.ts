// Adj-RIB-In of one peer: the routes it sent (after RFC 7606 treat-as-withdraw) and the
// error-handling outcomes it caused, kept for queries. Nothing here reaches the kernel.

import type { PathAttributes } from "./wire/attributes.ts";
import type { AttributeIssue } from "./wire/outcome.ts";
import { formatPrefix, type PrefixList, prefixAt } from "./wire/prefix.ts";
import type { DecodedUpdate } from "./wire/update.ts";
import { routeChanges } from "./wire/update.ts";

export interface ReceivedRoute {
  readonly prefix: string;
  readonly attrs: PathAttributes;
  readonly receivedAtMs: number;
}

export interface ReceivedIssue extends AttributeIssue {
  readonly atMs: number;
  /** Prefixes of the UPDATE (first few) for context. */
  readonly prefixes: readonly string[];
}

export interface AdjRibInCounters {
  updates: number;
  announced: number;
  withdrawn: number;
  treatAsWithdraw: number;
  attributeDiscard: number;
  endOfRib: number;
}

const ISSUE_LOG = 100;

export class AdjRibIn {
  readonly routes = new Map<string, ReceivedRoute>();
  /** The last RFC 7606 outcomes (bounded). */
  readonly issues: ReceivedIssue[] = [];
  readonly counters: AdjRibInCounters = {
    updates: 0,
    announced: 0,
    withdrawn: 0,
    treatAsWithdraw: 0,
    attributeDiscard: 0,
    endOfRib: 0,
  };
  /** Families whose End-of-RIB arrived. */
  readonly endOfRib = new Set<number>();
  /** RFC 7313 §4: routes not re-announced between BoRR and EoRR are removed. */
  private readonly stale = new Map<number, Set<string>>();

  /**
   * Applies one UPDATE: withdrawals first, then announcements. `maxRoutes` bounds the table:
   * a prefix not held yet that would make it larger is not stored, the rest of the UPDATE
   * is skipped, and the AFI of that prefix is returned (the caller ends the session,
   * RFC 4486 §4). The table never holds more than `maxRoutes` entries; a re-announced
   * prefix replaces its entry and counts once.
   */
  apply(u: DecodedUpdate, nowMs: number, maxRoutes = Number.POSITIVE_INFINITY): number | undefined {
    this.counters.updates++;
    if (u.endOfRib) {
      this.counters.endOfRib++;
      this.endOfRib.add(u.endOfRib.afi);
      return undefined;
    }
    const ch = routeChanges(u);
    if (u.issues.length > 0) {
      const prefixes: string[] = [];
      for (const l of [...ch.announced, ...ch.withdrawn])
        for (let i = 0; i < l.count && prefixes.length < 8; i++)
          prefixes.push(formatPrefix(prefixAt(l, i)));
      for (const issue of u.issues) {
        if (issue.action === "treat-as-withdraw") this.counters.treatAsWithdraw++;
        else this.counters.attributeDiscard++;
        this.issues.push({ ...issue, atMs: nowMs, prefixes });
        if (this.issues.length > ISSUE_LOG) this.issues.shift();
      }
    }
    for (const l of ch.withdrawn)
      for (let i = 0; i < l.count; i++)
        if (this.routes.delete(formatPrefix(prefixAt(l, i)))) this.counters.withdrawn++;
    const { mpReach: _r, mpUnreach: _u, ...rest } = ch.attrs;
    const attrs: PathAttributes = ch.attrs.mpReach
      ? { ...rest, mpReach: { ...ch.attrs.mpReach, nlri: EMPTY6 } }
      : rest;
    for (const l of ch.announced) {
      const kept = l.afi === 2 && ch.attrs.mpReach ? attrs : rest;
      for (let i = 0; i < l.count; i++) {
        const k = formatPrefix(prefixAt(l, i));
        if (this.routes.size >= maxRoutes && !this.routes.has(k)) return l.afi;
        this.routes.set(k, { prefix: k, attrs: kept, receivedAtMs: nowMs });
        this.stale.get(l.afi)?.delete(k);
        this.counters.announced++;
      }
    }
    return undefined;
  }

  /** Enhanced route refresh BoRR: every route of the family is stale until re-announced. */
  beginRefresh(afi: number): void {
    const v6 = afi === 2;
    const s = new Set<string>();
    for (const k of this.routes.keys()) if (k.includes(":") === v6) s.add(k);
    this.stale.set(afi, s);
  }

  /** EoRR: drop what was not re-announced; returns how many. */
  endRefresh(afi: number): number {
    const s = this.stale.get(afi);
    this.stale.delete(afi);
    if (!s) return 0;
    for (const k of s) this.routes.delete(k);
    return s.size;
  }

  clear(): void {
    this.routes.clear();
    this.stale.clear();
    this.endOfRib.clear();
  }
}

const EMPTY6: PrefixList = {
  afi: 2,
  count: 0,
  addrs: new Uint8Array(0),
  lens: new Uint8Array(0),
  pathIds: null,
};
