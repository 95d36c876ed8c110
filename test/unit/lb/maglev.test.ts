import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  buildMaglevTable,
  isPrime,
  MAGLEV_SIZE_DEFAULT,
  MAGLEV_SIZE_LARGE,
  type MaglevBackend,
  maglevShares,
} from "../../../src/lb/maglev.ts";

const names = (n: number, prefix = "10.0") =>
  Array.from({ length: n }, (_, i) => `${prefix}.${i >> 8}.${i & 255}`);
const equal = (n: number): MaglevBackend[] => names(n).map((name) => ({ name, weight: 1 }));

/** Slot -> backend name, so tables over different backend arrays can be compared. */
function slotNames(table: Uint16Array, backends: readonly MaglevBackend[]): string[] {
  return Array.from(table, (i) => backends[i]!.name);
}

describe("maglev table", () => {
  it("uses prime sizes and refuses others", () => {
    expect(isPrime(MAGLEV_SIZE_DEFAULT)).toBe(true);
    expect(isPrime(MAGLEV_SIZE_LARGE)).toBe(true);
    expect(() => buildMaglevTable(equal(3), 65536)).toThrow(/not prime/);
    expect(buildMaglevTable([], 251).length).toBe(0);
    expect(buildMaglevTable([{ name: "a", weight: 0 }], 251).length).toBe(0);
  });

  it("fills every slot with a valid backend", () => {
    const t = buildMaglevTable(equal(7), 251);
    expect(t.length).toBe(251);
    for (const i of t) expect(i).toBeLessThan(7);
  });

  it("keeps each backend within 1% of its share when M > 100·N (equal weights)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 600 }), (n) => {
        const m = MAGLEV_SIZE_DEFAULT; // > 100·N for N <= 655
        const shares = maglevShares(buildMaglevTable(equal(n), m), n);
        const expected = m / n;
        for (const s of shares) expect(Math.abs(s - expected) / expected).toBeLessThanOrEqual(0.01);
      }),
      { numRuns: 25 },
    );
  });

  it("keeps weighted backends within 1% of their weighted share (and within 2 slots)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 8 }), { minLength: 1, maxLength: 80 }),
        (weights) => {
          const backends = weights.map((weight, i) => ({ name: `b${i}`, weight }));
          const m = MAGLEV_SIZE_DEFAULT;
          const total = weights.reduce((a, b) => a + b, 0);
          const shares = maglevShares(buildMaglevTable(backends, m), backends.length);
          weights.forEach((w, i) => {
            const expected = (m * w) / total;
            // Credit-based turns: each backend ends within two slots of its exact share...
            expect(Math.abs(shares[i]! - expected)).toBeLessThanOrEqual(2);
            // ...which is within 1% because every share here is > 200 slots (M > 100·Σw/w).
            expect(Math.abs(shares[i]! - expected) / expected).toBeLessThanOrEqual(0.01);
          });
        },
      ),
      { numRuns: 40 },
    );
  });

  it("does not depend on the order backends are given in", () => {
    fc.assert(
      fc.property(fc.shuffledSubarray(equal(40), { minLength: 40, maxLength: 40 }), (shuffled) => {
        const a = equal(40);
        expect(slotNames(buildMaglevTable(shuffled, 1021), shuffled)).toEqual(
          slotNames(buildMaglevTable(a, 1021), a),
        );
      }),
      { numRuns: 20 },
    );
  });

  it("removing one of N backends moves only its slots plus a small overshoot", () => {
    const m = MAGLEV_SIZE_DEFAULT;
    const report: string[] = [];
    for (const n of [10, 50, 200, 500]) {
      const before = equal(n);
      const beforeNames = slotNames(buildMaglevTable(before, m), before);
      let worst = 0;
      for (const victim of [0, Math.floor(n / 2), n - 1]) {
        const after = before.filter((_, i) => i !== victim);
        const afterNames = slotNames(buildMaglevTable(after, m), after);
        let victimSlots = 0;
        let otherMoved = 0;
        for (let s = 0; s < m; s++) {
          if (beforeNames[s] === before[victim]!.name) victimSlots++;
          else if (beforeNames[s] !== afterNames[s]) otherMoved++;
        }
        expect(victimSlots).toBeGreaterThan(0);
        worst = Math.max(worst, otherMoved / m);
      }
      report.push(`N=${n}: overshoot ${(worst * 100).toFixed(3)}% of slots`);
      // The paper (Fig. 13) shows a few percent of extra movement at worst; bound it.
      expect(worst).toBeLessThan(0.03);
    }
    console.log(
      `maglev removal overshoot (slots moved besides the removed backend's): ${report.join("; ")}`,
    );
  });

  it("adding a backend to N moves about 1/(N+1) of the slots", () => {
    const report: string[] = [];
    // Maglev's extra movement shrinks as M/N grows: within 3 points of 1/(N+1) at
    // M = 65537, within 1.5x of it once M > 3000·N.
    for (const [m, n, slack] of [
      [MAGLEV_SIZE_DEFAULT, 10, 0.03],
      [MAGLEV_SIZE_DEFAULT, 50, 0.03],
      [MAGLEV_SIZE_DEFAULT, 200, 0.03],
      [MAGLEV_SIZE_LARGE, 50, 0],
      [MAGLEV_SIZE_LARGE, 200, 0],
    ] as const) {
      const before = equal(n);
      const after = [...before, { name: "192.168.99.99", weight: 1 }];
      const a = slotNames(buildMaglevTable(before, m), before);
      const b = slotNames(buildMaglevTable(after, m), after);
      let moved = 0;
      for (let s = 0; s < m; s++) if (a[s] !== b[s]) moved++;
      const ideal = 1 / (n + 1);
      const share = moved / m;
      report.push(
        `M=${m} N=${n}: moved ${(share * 100).toFixed(2)}% (ideal ${(ideal * 100).toFixed(2)}%)`,
      );
      expect(share).toBeGreaterThanOrEqual(ideal * 0.99);
      if (slack > 0) expect(share).toBeLessThan(ideal + slack);
      else expect(share).toBeLessThan(ideal * 1.5);
    }
    console.log(`maglev addition: ${report.join("; ")}`);
  });

  it("is byte-identical across processes given the same config", () => {
    const child = fileURLToPath(new URL("./maglev-child.ts", import.meta.url));
    const run = () => {
      const r = spawnSync(process.execPath, [child, String(MAGLEV_SIZE_DEFAULT), "300"], {
        encoding: "utf8",
      });
      expect(r.status, r.stderr).toBe(0);
      return r.stdout.trim().split("\n");
    };
    const backends = Array.from({ length: 300 }, (_, i) => ({
      name: `10.1.${i >> 8}.${i & 255}`,
      weight: 1 + (i % 3),
    }));
    const table = buildMaglevTable(backends, MAGLEV_SIZE_DEFAULT);
    const bytesHere = createHash("sha256").update(table).digest("hex");
    const namesHere = createHash("sha256")
      .update(slotNames(table, backends).join("\n"))
      .digest("hex");
    const a = run();
    const b = run();
    expect(a[0]).toMatch(/^[0-9a-f]{64}$/);
    expect(a).toEqual(b); // two child processes agree
    expect(a[0]).toBe(bytesHere); // and agree with this one, byte for byte
    expect(a[1]).toBe(namesHere); // and the order backends were listed in changes nothing
  });

  it("pins the table bytes for a fixed config (a change here moves flows on upgrade)", () => {
    const t = buildMaglevTable(equal(5), 251);
    expect(createHash("sha256").update(t).digest("hex").slice(0, 16)).toBe("c2ddd5d1a388bd23");
  });
});
