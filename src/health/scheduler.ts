// Runs probes on their intervals (with jitter, so a thousand backends are not probed in
// the same millisecond), applies rise/fall, and reports state changes. One probe per
// target at a time: a slow probe delays only that target's next one.

import { type ProbeResult, type ProbeSpec, runProbe } from "./probes.ts";
import { applyResult, initialRiseFall, type RiseFallState } from "./rise-fall.ts";

export interface ProbeTarget {
  /** Stable identity, e.g. "web/10.10.1.11". */
  id: string;
  spec: ProbeSpec;
  intervalMs: number;
  /** Fraction of the interval to randomise by (0..0.5). */
  jitter: number;
  rise: number;
  fall: number;
}

export interface TargetStatus {
  id: string;
  up: boolean;
  last?: ProbeResult;
  lastChangeMs: number;
}

export interface SchedulerEvents {
  /** After rise/fall: the target's state flipped. */
  onChange?: (id: string, up: boolean, result: ProbeResult) => void;
  /** Every probe, for latency metrics. */
  onResult?: (id: string, result: ProbeResult) => void;
}

interface Running {
  target: ProbeTarget;
  state: RiseFallState;
  last?: ProbeResult;
  lastChangeMs: number;
  timer?: NodeJS.Timeout;
  stopped: boolean;
}

export class ProbeScheduler {
  private readonly targets = new Map<string, Running>();
  private readonly events: SchedulerEvents;
  private readonly random: () => number;
  private readonly probe: (spec: ProbeSpec) => Promise<ProbeResult>;

  constructor(
    events: SchedulerEvents = {},
    opts: { random?: () => number; probe?: (spec: ProbeSpec) => Promise<ProbeResult> } = {},
  ) {
    this.events = events;
    this.random = opts.random ?? Math.random;
    this.probe = opts.probe ?? runProbe;
  }

  /**
   * Adds or replaces targets so the set equals `targets`. A target whose definition did
   * not change keeps its state and timer (a config reload must not reset health).
   */
  sync(targets: ProbeTarget[]): void {
    const wanted = new Map(targets.map((t) => [t.id, t]));
    for (const [id, r] of this.targets) {
      const next = wanted.get(id);
      if (!next || JSON.stringify(next) !== JSON.stringify(r.target)) this.remove(id);
    }
    for (const t of targets) {
      if (this.targets.has(t.id)) continue;
      const r: Running = {
        target: t,
        state: initialRiseFall(),
        lastChangeMs: Date.now(),
        stopped: false,
      };
      this.targets.set(t.id, r);
      // Spread the first probes over one interval.
      this.schedule(r, this.random() * t.intervalMs);
    }
  }

  remove(id: string): void {
    const r = this.targets.get(id);
    if (!r) return;
    r.stopped = true;
    if (r.timer) clearTimeout(r.timer);
    this.targets.delete(id);
  }

  status(): TargetStatus[] {
    return [...this.targets.values()].map((r) => ({
      id: r.target.id,
      up: r.state.up,
      ...(r.last ? { last: r.last } : {}),
      lastChangeMs: r.lastChangeMs,
    }));
  }

  isUp(id: string): boolean | undefined {
    return this.targets.get(id)?.state.up;
  }

  stop(): void {
    for (const id of [...this.targets.keys()]) this.remove(id);
  }

  private schedule(r: Running, delayMs: number): void {
    if (r.stopped) return;
    r.timer = setTimeout(() => void this.tick(r), Math.max(0, delayMs));
    r.timer.unref?.();
  }

  private async tick(r: Running): Promise<void> {
    const started = performance.now();
    const result = await this.probe(r.target.spec);
    if (r.stopped) return;
    r.last = result;
    this.events.onResult?.(r.target.id, result);
    const { state, changed } = applyResult(r.state, result.ok, r.target);
    r.state = state;
    if (changed) {
      r.lastChangeMs = Date.now();
      this.events.onChange?.(r.target.id, state.up, result);
    }
    const t = r.target;
    const jitter = (this.random() * 2 - 1) * t.jitter * t.intervalMs;
    this.schedule(r, t.intervalMs + jitter - (performance.now() - started));
  }
}
