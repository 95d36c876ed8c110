// Timing integrity under real load, no false Down
// (docs/architecture.md#control-plane-survives-the-data-plane): at 100 ms x 3 between the
// edge and both MUXes, 30 s of a full-rate 64-byte UDP flood through the MUXes (the whole
// system: vipmux run forwarding to the host agents and backends) causes zero BFD state
// changes, on FRR and on vipmux. BFD runs in its own worker thread, apart from the
// forwarding worker and the main thread.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fibNextHops, pollUntil, startLab, type TestLab } from "../../src/lab/testing.ts";
import { canonicalTopology, fixture, isRoot, repoRoot } from "./helpers.ts";

const node = process.execPath;
const cli = `${repoRoot}src/cli/main.ts`;
const FLOOD_SECONDS = 30;

/** FRR names these session-up/-down for BGP-created sessions, -event for configured peers. */
interface FrrCounters {
  peer: string;
  "session-up"?: number;
  "session-down"?: number;
  "session-up-event"?: number;
  "session-down-event"?: number;
}

describe.skipIf(!isRoot)("BFD under a packet flood through the MUXes", () => {
  let lab: TestLab;
  const counters = async () =>
    (await lab.vtyshJson<FrrCounters[]>("edge", "show bfd peers counters json"))
      .map((c) => ({
        peer: c.peer,
        up: c["session-up"] ?? c["session-up-event"] ?? -1,
        down: c["session-down"] ?? c["session-down-event"] ?? -1,
      }))
      .sort((a, b) => a.peer.localeCompare(b.peer));
  const forwarded = async (mux: string) => {
    const m = await lab.must(mux, [
      "curl",
      "-s",
      `http://${mux === "mux1" ? "192.0.2.2" : "192.0.2.6"}:9273/metrics`,
    ]);
    return Number(/vipmux_vip_packets_total\{vip="20\.20\.20\.100"\} (\d+)/.exec(m)?.[1] ?? 0);
  };

  beforeAll(async () => {
    lab = await startLab(canonicalTopology, "bfdflood");
    await pollUntil(async () => (await fibNextHops(lab, "edge", "20.20.20.100")).length === 2, {
      timeoutMs: 40_000,
      what: "the VIP via both MUXes",
    });
    await pollUntil(async () => (await counters()).every((c) => c.up >= 1), {
      timeoutMs: 20_000,
      what: "BFD up with both MUXes",
    });
  });
  afterAll(async () => {
    await lab?.down();
  });

  it(`${FLOOD_SECONDS} s of 64-byte UDP at full rate through both MUXes: zero BFD state changes`, async () => {
    const before = await counters();
    const fwdBefore = (await forwarded("mux1")) + (await forwarded("mux2"));
    const out = await lab.must(
      "client",
      [node, fixture("system/flood.ts"), "20.20.20.100", "7", String(FLOOD_SECONDS)],
      {
        timeoutMs: (FLOOD_SECONDS + 60) * 1000,
      },
    );
    const flood = JSON.parse(out) as { sent: number; seconds: number };
    const after = await counters();
    const fwd = (await forwarded("mux1")) + (await forwarded("mux2")) - fwdBefore;
    console.log(
      `flood: ${flood.sent} packets in ${flood.seconds.toFixed(1)} s (${Math.round(flood.sent / flood.seconds)} pps offered), ${fwd} forwarded by the MUXes`,
    );
    // The flood really went through the MUXes...
    expect(fwd).toBeGreaterThan(FLOOD_SECONDS * 5_000);
    // ...and no BFD session went down or came up again on the edge.
    expect(after).toEqual(before);
    for (const mux of ["mux1", "mux2"]) {
      const s = JSON.parse(
        await lab.must(mux, [node, cli, "status", "--json", "-s", `/run/vipmux/${mux}.sock`]),
      ) as {
        bfd: { state: string; upSince?: number }[];
        peers: { state: string }[];
      };
      expect(s.bfd.map((b) => b.state)).toEqual(["Up"]);
      expect(s.peers.map((p) => p.state)).toEqual(["Established"]);
    }
  });
});
