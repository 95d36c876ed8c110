// Churn: random announce/withdraw at 1,000 operations per second over a pool of 10,000
// /32s; FRR must end with exactly the speaker's final set (RIB and kernel FIB). 10 s by
// default; VIPMUX_LONG=1 runs the full 60 s (60,000 operations).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pollUntil, startLab, type TestLab } from "../../src/lab/testing.ts";
import {
  bgpFixture,
  type SpeakerHandle,
  startSpeaker,
  waitEstablished,
} from "../fixtures/bgp-lab/control.ts";
import { isRoot } from "./helpers.ts";

const LONG = process.env.VIPMUX_LONG === "1";
const DURATION_MS = LONG ? 60_000 : 10_000;

describe.skipIf(!isRoot)(`churn: 1,000 ops/s for ${DURATION_MS / 1000} s on 10k prefixes`, () => {
  let lab: TestLab;
  let mux1: SpeakerHandle;

  beforeAll(async () => {
    lab = await startLab(bgpFixture("edge.clab.yml"), "bgpchurn");
    mux1 = await startSpeaker(lab, "mux1", {
      asn: 65101,
      routerId: "192.0.2.2",
      holdTimeSec: 9,
      peers: [{ address: "192.0.2.1", asn: 65000, localAddress: "192.0.2.2" }],
    });
    await waitEstablished(mux1);
  });
  afterAll(async () => {
    await lab?.down();
  });

  it("FRR ends with exactly the expected set", { timeout: DURATION_MS + 180_000 }, async () => {
    const r = await mux1.call<{ ops: number; elapsedMs: number; expected: string[] }>(
      "churn",
      { pool: 10_000, opsPerSec: 1000, durationMs: DURATION_MS, seed: 42 },
      DURATION_MS + 60_000,
    );
    expect(r.ops).toBeGreaterThanOrEqual((DURATION_MS / 1000) * 1000 - 20);
    const expected = [...r.expected].sort();
    expect(expected.length).toBeGreaterThan(3000);
    const rib = await pollUntil(
      async () => {
        const j = await lab.vtyshJson<{ routes: Record<string, unknown> }>(
          "edge",
          "show bgp ipv4 unicast json",
        );
        const got = Object.keys(j.routes).sort();
        return got.length === expected.length ? got : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 1000, what: `${expected.length} routes in FRR's BGP table` },
    );
    expect(rib).toEqual(expected);
    const fib = await pollUntil(
      async () => {
        const out = await lab.must("edge", ["ip", "-4", "route", "show", "proto", "bgp"]);
        const got = out
          .split("\n")
          .map((l) => l.split(" ")[0] ?? "")
          .filter(Boolean)
          .map((p) => (p.includes("/") ? p : `${p}/32`))
          .sort();
        return got.length === expected.length ? got : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 1000, what: "the same set in the edge kernel FIB" },
    );
    expect(fib).toEqual(expected);
    const st = await mux1.call<{ peers: { state: string; counters: { established: number } }[] }>(
      "status",
    );
    expect(st.peers[0]?.state).toBe("Established");
    expect(st.peers[0]?.counters.established).toBe(1);
    console.log(`churn: ${r.ops} ops in ${r.elapsedMs} ms, final set ${expected.length} prefixes`);
  });
});
