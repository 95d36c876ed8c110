// A 20k sample of the seeded fuzzer (the full 1M run is `npm run fuzz:codec`).

import { describe, expect, it } from "vitest";
import { fuzz } from "../../../bench/fuzz-codec.ts";

describe("decoder fuzz sample", () => {
  it("20,000 random and mutated messages: no exception escapes, none is slow", () => {
    const r = fuzz(20261122, 20_000, 50);
    expect(r.failures).toEqual([]);
    expect(r.slowMessages).toBe(0);
    // The sample must reach the body decoders, not only the header checks.
    expect(r.outcomes["update ok"]).toBeGreaterThan(100);
    expect(r.outcomes["update treat-as-withdraw"]).toBeGreaterThan(100);
    expect(r.outcomes["open ok"]).toBeGreaterThan(10);
    expect(r.heapAfterMb - r.heapBeforeMb).toBeLessThan(64);
  });
});
