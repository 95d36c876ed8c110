import { describe, expect, it } from "vitest";
import {
  type DampingConfig,
  type DampingState,
  dampingOf,
  noDamping,
  stepDamping,
} from "../../../src/controller/damping.ts";

const cfg = {
  enabled: true,
  penalty: 1000,
  suppress: 2000,
  reuse: 750,
  halfLifeMs: 10_000,
  maxSuppressMs: 60_000,
};
const P = "20.20.20.100/32";

/** Threads the pure step's state through a sequence of updates of one prefix. */
class VipDamping {
  private s: DampingState = noDamping();
  private readonly cfg: DampingConfig;
  constructor(cfg: DampingConfig) {
    this.cfg = cfg;
  }
  update(prefix: string, eligible: boolean, nowMs: number): boolean {
    const step = stepDamping(this.s, new Map([[prefix, eligible]]), nowMs, this.cfg);
    this.s = step.state;
    return eligible && !step.suppressed.has(prefix);
  }
  state(prefix: string, nowMs: number) {
    return dampingOf(this.s, prefix, nowMs, this.cfg);
  }
}

describe("VIP flap damping", () => {
  it("lets the first flaps through, suppresses a VIP that keeps flapping, and releases it once stable", () => {
    const d = new VipDamping(cfg);
    let t = 0;
    const seen: boolean[] = [];
    // The VIP's eligibility flips every 500 ms for 30 s.
    for (; t < 30_000; t += 500) seen.push(d.update(P, (t / 500) % 2 === 0, t));
    const announcements = seen.filter((v, i) => v && !seen[i - 1]).length;
    // Penalty 1000 per flap, suppress above 2000: two full cycles, then suppressed.
    expect(announcements).toBe(3);
    expect(d.state(P, t).suppressed).toBe(true);
    // Stable from now on: released when the penalty decays below reuse (750), and never
    // later than max-suppress after the last flap.
    let released = -1;
    for (let s = t; s < t + 120_000; s += 100)
      if (d.update(P, true, s)) {
        released = s - t;
        break;
      }
    expect(released).toBeGreaterThan(0);
    expect(released).toBeLessThanOrEqual(60_000 + 500);
  });

  it("never delays a withdrawal, and a single flap is not punished", () => {
    const d = new VipDamping(cfg);
    expect(d.update(P, true, 0)).toBe(true);
    expect(d.update(P, false, 1000)).toBe(false);
    expect(d.update(P, true, 2000)).toBe(true);
    expect(d.state(P, 2000).penalty).toBeGreaterThan(800);
  });

  it("does nothing when disabled", () => {
    const d = new VipDamping({ ...cfg, enabled: false });
    for (let t = 0; t < 10_000; t += 100) expect(d.update(P, t % 200 === 0, t)).toBe(t % 200 === 0);
  });

  it("forgets prefixes that no longer exist and never changes the state it was given", () => {
    const a = stepDamping(noDamping(), new Map([[P, true]]), 0, cfg).state;
    const b = stepDamping(a, new Map([[P, false]]), 100, cfg).state;
    expect(a.get(P)).toEqual({ eligible: true, penalty: 0, atMs: 0, suppressed: false });
    expect(b.get(P)?.penalty).toBe(1000);
    const c = stepDamping(b, new Map([["20.20.20.53/32", true]]), 200, cfg).state;
    expect([...c.keys()]).toEqual(["20.20.20.53/32"]);
  });
});
