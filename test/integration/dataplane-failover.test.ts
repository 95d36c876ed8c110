// Consistent hashing across MUXes: both MUX engines carry long-lived TCP connections
// (edge ECMP over mux1 and mux2), mux1's engine is killed, the edge reroutes, and every
// connection keeps exchanging data through mux2, with no reset: mux2 has no connection
// entry for mux1's flows and forwards their non-SYN packets by the same Maglev hash.
//
// The edge's ECMP route is STATIC here, and the reroute is done by hand (what a BGP session
// close or BFD does in the whole system): the engines run alone, without BGP, so only the
// hashing across MUXes is under test. system.test.ts kills and hangs a `vipmux run` MUX.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fibNextHops, pollUntil, startLab, type TestLab } from "../../src/lab/testing.ts";
import { sleep } from "../../src/util/proc.ts";
import { addonBuilt, type RunningEngine, startEngine } from "../fixtures/dataplane-lab/helpers.ts";
import { canonicalTopology, isRoot, repoRoot } from "./helpers.ts";

const CONNECTIONS = 200;

interface Snapshot {
  open: number;
  errors: string[];
  replies: number[];
  vms: string[];
}

describe.skipIf(!isRoot || !addonBuilt)("dataplane: connections survive a MUX failure", () => {
  let lab: TestLab;
  const engines: RunningEngine[] = [];
  const log = (name: string) => {
    const f = join(lab.plan.dir, `${name}.log`);
    return existsSync(f) ? readFileSync(f, "utf8") : "";
  };
  const stopFiles: string[] = [];
  const snapshots = (name: string) =>
    log(name)
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Snapshot);

  beforeAll(async () => {
    lab = await startLab(canonicalTopology, "dpf", { skipCmd: true });
    for (const vm of ["vm11", "vm12", "vm21", "vm22"])
      lab.spawn(
        vm,
        [process.execPath, `${repoRoot}test/fixtures/hostagent-lab/backend.ts`, vm, "tcp:8080"],
        `backend-${vm}`,
      );
    for (const h of ["host1", "host2"])
      lab.spawn(
        h,
        ["vipmux", "host-agent", "--config", `${repoRoot}containerlab/${h}.yml`],
        `agent-${h}`,
      );
    engines.push(await startEngine(lab, "mux1", `${repoRoot}containerlab/mux1.yml`));
    engines.push(await startEngine(lab, "mux2", `${repoRoot}containerlab/mux2.yml`));
    await lab.must("edge", [
      "ip",
      "route",
      "add",
      "20.20.20.100/32",
      "nexthop",
      "via",
      "192.0.2.2",
      "nexthop",
      "via",
      "192.0.2.6",
    ]);
    await pollUntil(
      async () =>
        (await lab.exec("client", ["curl", "-s", "-m", "2", "http://20.20.20.100/"])).code === 0,
      { timeoutMs: 30_000, what: "HTTP through the VIP" },
    );
  });

  afterAll(async () => {
    for (const f of stopFiles) writeFileSync(f, "");
    for (const e of engines) await e.stop();
    await lab?.down();
  });

  /**
   * Starts CONNECTIONS streams over both MUXes, takes mux1 away with `fail`, reroutes the
   * edge to mux2 and checks every stream goes on with the same backend and no reset.
   */
  async function failover(name: string, fail: () => Promise<void>): Promise<void> {
    const [mux1, mux2] = engines as [RunningEngine, RunningEngine];
    await lab.must("edge", [
      "ip",
      "route",
      "replace",
      "20.20.20.100/32",
      "nexthop",
      "via",
      "192.0.2.2",
      "nexthop",
      "via",
      "192.0.2.6",
    ]);
    const stop = join(lab.plan.dir, `${name}.stop`);
    const streams = lab.spawn(
      "client",
      [
        process.execPath,
        `${repoRoot}test/fixtures/dataplane-lab/streams.ts`,
        "20.20.20.100",
        "80",
        String(CONNECTIONS),
        "100",
        stop,
      ],
      name,
    );
    stopFiles.push(stop);
    const snaps = () => snapshots(name);
    const snapshot = async () => {
      const n = snaps().length;
      streams.kill("SIGUSR1");
      return pollUntil(async () => snaps()[n], { timeoutMs: 5_000, what: `snapshot ${n}` });
    };
    // SIGUSR1 kills a process that has no handler yet: wait for the fixture to start.
    await pollUntil(async () => log(name).includes("started"), {
      timeoutMs: 10_000,
      what: "the streams client",
    });
    await pollUntil(
      async () => {
        const s = await snapshot();
        return s.open === CONNECTIONS && s.replies.every((r) => r > 2);
      },
      { timeoutMs: 30_000, what: "all streams answering" },
    );
    // Both MUXes carry some of them (edge ECMP, L4 hash).
    const mux1Before = mux1.status().counters.conn.size;
    expect(mux1Before).toBeGreaterThan(0);
    const mux2Before = mux2.status().counters.conn.size;
    expect(mux2Before).toBeGreaterThan(0);
    const before = await snapshot();

    await fail();
    await lab.must("edge", ["ip", "route", "replace", "20.20.20.100/32", "via", "192.0.2.6"]);
    expect(await fibNextHops(lab, "edge", "20.20.20.100")).toEqual(["192.0.2.6"]);
    await sleep(3_000);

    const after = await snapshot();
    expect(after.errors).toEqual([]);
    expect(after.open).toBe(CONNECTIONS);
    for (let i = 0; i < CONNECTIONS; i++) {
      // Still exchanging data, with the same backend.
      expect(after.replies[i]!).toBeGreaterThan(before.replies[i]! + 5);
      expect(after.vms[i]).toBe(before.vms[i]);
    }
    // mux2 took mux1's flows without a handshake: forwarded by the hash, and not given
    // entries (docs/security.md#connection-table-trust): its table holds only its own.
    const mux2After = mux2.status().counters.conn;
    expect(mux2After.size).toBeLessThanOrEqual(mux2Before);
    expect(mux2After.noHandshake).toBeGreaterThan(0);
    writeFileSync(stop, "");
    const n = snaps().length;
    const final = await pollUntil(async () => snaps()[n], {
      timeoutMs: 5_000,
      what: "final report",
    });
    expect(final.errors).toEqual([]);
  }

  it(`${CONNECTIONS} streams over both MUXes survive SIGKILL of mux1's engine`, async () => {
    await failover("streams-kill", async () => {
      const mux1 = engines[0]!;
      mux1.child.kill("SIGKILL");
      await new Promise((r) => mux1.child.once("exit", r));
    });
  });

  it(`${CONNECTIONS} streams survive mux1 hanging (all its packets dropped)`, async () => {
    // A fresh engine in mux1 for this round.
    await engines[0]!.stop();
    engines[0] = await startEngine(lab, "mux1", `${repoRoot}containerlab/mux1.yml`);
    await failover("streams-hang", async () => {
      await lab.must("mux1", ["nft", "-f", "-"], {
        input: [
          "table inet vmx-hang {",
          "  chain in { type filter hook prerouting priority -500; policy drop; }",
          "  chain out { type filter hook output priority -500; policy drop; }",
          "}",
        ].join("\n"),
      });
    });
  });
});
