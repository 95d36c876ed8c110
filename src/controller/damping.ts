// Route-flap damping for our own announcements (the idea of RFC 2439, applied at the
// source): each time a VIP stops being announceable it collects a penalty that decays
// exponentially; above `suppress` the VIP stays withdrawn until the penalty decays below
// `reuse`. Withdrawals are never delayed (a VIP without backends must go at once); only
// re-announcements are held back, so a flapping backend cannot make the edge churn.
// Pure: time is passed in.

export interface DampingConfig {
  enabled: boolean;
  /** Penalty added per flap (announceable -> not announceable). */
  penalty: number;
  suppress: number;
  reuse: number;
  halfLifeMs: number;
  /** Upper bound on how long a VIP stays suppressed after it stopped flapping. */
  maxSuppressMs: number;
}

interface Entry {
  penalty: number;
  atMs: number;
  suppressed: boolean;
}

export class VipDamping {
  private readonly entries = new Map<string, Entry>();
  /** Last eligibility of every prefix seen: a flap is eligible -> not eligible. */
  private readonly eligible = new Map<string, boolean>();
  private readonly cfg: DampingConfig;
  private readonly ceiling: number;

  constructor(cfg: DampingConfig) {
    this.cfg = cfg;
    // RFC 2439 §4.8: cap the penalty so a VIP is never suppressed longer than maxSuppress.
    this.ceiling = cfg.reuse * 2 ** (cfg.maxSuppressMs / cfg.halfLifeMs);
  }

  private decayed(e: Entry, nowMs: number): number {
    return e.penalty * 2 ** (-(nowMs - e.atMs) / this.cfg.halfLifeMs);
  }

  /**
   * Feeds whether `prefix` is announceable now; returns whether it may be announced.
   * Call once per reconcile for every prefix ever seen.
   */
  update(prefix: string, eligible: boolean, nowMs: number): boolean {
    if (!this.cfg.enabled) return eligible;
    const wasEligible = this.eligible.get(prefix) ?? false;
    this.eligible.set(prefix, eligible);
    let e = this.entries.get(prefix);
    const flapped = wasEligible && !eligible;
    if (!e) {
      if (!flapped) return eligible;
      e = { penalty: 0, atMs: nowMs, suppressed: false };
      this.entries.set(prefix, e);
    }
    let p = this.decayed(e, nowMs);
    if (flapped) p = Math.min(this.ceiling, p + this.cfg.penalty);
    e.penalty = p;
    e.atMs = nowMs;
    if (!e.suppressed && p > this.cfg.suppress) e.suppressed = true;
    else if (e.suppressed && p < this.cfg.reuse) e.suppressed = false;
    // Forget histories that have decayed away.
    if (!e.suppressed && p < 1) this.entries.delete(prefix);
    return eligible && !e.suppressed;
  }

  /** Drops prefixes that no longer exist (after a reload). */
  retain(prefixes: ReadonlySet<string>): void {
    for (const p of [...this.eligible.keys()]) if (!prefixes.has(p)) this.eligible.delete(p);
    for (const p of [...this.entries.keys()]) if (!prefixes.has(p)) this.entries.delete(p);
  }

  state(prefix: string, nowMs: number): { penalty: number; suppressed: boolean } {
    const e = this.entries.get(prefix);
    return e
      ? { penalty: Math.round(this.decayed(e, nowMs)), suppressed: e.suppressed }
      : { penalty: 0, suppressed: false };
  }

  /** Prefixes currently suppressed (for status output). */
  suppressedPrefixes(): string[] {
    return [...this.entries].filter(([, e]) => e.suppressed).map(([p]) => p);
  }
}
