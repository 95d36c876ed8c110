// Route-flap damping for our own announcements (the idea of RFC 2439, applied at the
// source): each time a VIP stops being announceable it collects a penalty that decays
// exponentially; above `suppress` the VIP stays withdrawn until the penalty decays below
// `reuse`. Withdrawals are never delayed (a VIP without backends must go at once); only
// re-announcements are held back, so a flapping backend cannot make the edge churn.
// Pure: the state is a value passed in and returned, time is passed in.

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

export interface DampingEntry {
  /** Whether the prefix was announceable at the last step (a flap is true -> false). */
  eligible: boolean;
  /** Penalty at `atMs`; 0 with no history. */
  penalty: number;
  atMs: number;
  suppressed: boolean;
}

/** Per prefix: its last eligibility and penalty history. Never mutated: steps return a new one. */
export type DampingState = ReadonlyMap<string, DampingEntry>;

export const noDamping = (): DampingState => new Map();

export interface DampingStep {
  state: DampingState;
  /** Prefixes that are announceable but held back, with their current penalty. */
  suppressed: ReadonlyMap<string, number>;
}

function decayed(e: DampingEntry, nowMs: number, cfg: DampingConfig): number {
  return e.penalty === 0 ? 0 : e.penalty * 2 ** (-(nowMs - e.atMs) / cfg.halfLifeMs);
}

/**
 * One step for every prefix that exists now (`eligible`: whether each is announceable on
 * health alone); prefixes absent from it are forgotten (removed by a reload).
 */
export function stepDamping(
  prev: DampingState,
  eligible: ReadonlyMap<string, boolean>,
  nowMs: number,
  cfg: DampingConfig,
): DampingStep {
  const state = new Map<string, DampingEntry>();
  const suppressed = new Map<string, number>();
  // RFC 2439 §4.8: cap the penalty so a VIP is never suppressed longer than maxSuppress.
  const ceiling = cfg.reuse * 2 ** (cfg.maxSuppressMs / cfg.halfLifeMs);
  for (const [prefix, ok] of eligible) {
    if (!cfg.enabled) {
      state.set(prefix, { eligible: ok, penalty: 0, atMs: nowMs, suppressed: false });
      continue;
    }
    const e = prev.get(prefix);
    const flapped = (e?.eligible ?? false) && !ok;
    let penalty = e ? decayed(e, nowMs, cfg) : 0;
    if (flapped) penalty = Math.min(ceiling, penalty + cfg.penalty);
    let held = e?.suppressed ?? false;
    if (!held && penalty > cfg.suppress) held = true;
    else if (held && penalty < cfg.reuse) held = false;
    // A history that has decayed away is forgotten.
    if (!held && penalty < 1) penalty = 0;
    state.set(prefix, { eligible: ok, penalty, atMs: nowMs, suppressed: held });
    if (ok && held) suppressed.set(prefix, Math.round(penalty));
  }
  return { state, suppressed };
}

/** A prefix's damping for status output. */
export function dampingOf(
  state: DampingState,
  prefix: string,
  nowMs: number,
  cfg: DampingConfig,
): { penalty: number; suppressed: boolean } {
  const e = state.get(prefix);
  return e
    ? { penalty: Math.round(decayed(e, nowMs, cfg)), suppressed: e.suppressed }
    : { penalty: 0, suppressed: false };
}
