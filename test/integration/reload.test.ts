// Hot reload in the whole system (SIGHUP, or `vipmux reload`): a reload that adds a service,
// removes another and changes a backend weight applies with zero BGP session resets (FRR's
// counters) and zero broken connections of untouched services; an invalid reload changes
// nothing.
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fibNextHops, pollUntil, startLab, type TestLab } from "../../src/lab/testing.ts";
import { sleep } from "../../src/util/proc.ts";
import { canonicalTopology, fixture, isRoot, openStreams, repoRoot } from "./helpers.ts";

const node = process.execPath;
const cli = `${repoRoot}src/cli/main.ts`;
const BOTH = ["192.0.2.2", "192.0.2.6"];
const NEW_SERVICE = `  - name: api
    vip: 20.20.20.103
    ports:
      - { protocol: tcp, port: 80, backend-port: 8080 }
    vni: 100
    health: { type: tcp, port: 8080 }
    backends:
      - { dip: 10.10.1.11, host: 198.51.100.2 }
      - { dip: 10.10.2.21, host: 198.51.100.6 }

`;

/** web's DIP 10.10.2.22 (vm22): absent at the start, added by the reload. */
const WEB_VM22 = "      - { dip: 10.10.2.22, host: 198.51.100.6 }\n";

/** The starting config: the lab's, without vm22 in the web service. */
function initial(text: string): string {
  const web = text.indexOf("  - name: web\n");
  const at = text.indexOf(WEB_VM22, web);
  expect(at).toBeGreaterThan(web);
  return text.slice(0, at) + text.slice(at + WEB_VM22.length);
}

/** The reloaded config: + api, − sticky, web6's 10.10.2.22 weight 1 → 3, web + vm22. */
function edited(text: string): string {
  const start = text.indexOf("  - name: sticky");
  const end = text.indexOf("  - name: web6");
  expect(start).toBeGreaterThan(0);
  const withoutSticky = text.slice(0, start) + NEW_SERVICE + text.slice(end);
  const changed = withoutSticky.replace(
    '      - { dip: "fd00:10:2::22", host: 198.51.100.6 }',
    '      - { dip: "fd00:10:2::22", host: 198.51.100.6, weight: 3 }',
  );
  expect(changed).not.toBe(withoutSticky);
  const web = changed.indexOf("  - name: web\n");
  const lastWebBackend = changed.indexOf("      - { dip: 10.10.2.21, host: 198.51.100.6 }\n", web);
  const insertAt = changed.indexOf("\n", lastWebBackend) + 1;
  return changed.slice(0, insertAt) + WEB_VM22 + changed.slice(insertAt);
}

describe.skipIf(!isRoot)("hot reload", () => {
  let lab: TestLab;
  const file = (name: string) => join(lab.plan.dir, name);
  const sock = (mux: string) => `/run/vipmux/${mux}.sock`;
  const hops = (p: string) => fibNextHops(lab, "edge", p);
  const frrCounters = async () => {
    const n = await lab.vtyshJson<
      Record<string, { connectionsEstablished: number; connectionsDropped: number }>
    >("edge", "show bgp neighbors json");
    return ["192.0.2.2", "192.0.2.6"].map((p) => [
      n[p]?.connectionsEstablished,
      n[p]?.connectionsDropped,
    ]);
  };
  const agents = new Map<string, ReturnType<TestLab["spawn"]>>();

  beforeAll(async () => {
    // The VMs keep their backends; MUXes and agents run from copies this test can edit.
    lab = await startLab(canonicalTopology, "rl", { skipCmd: ["mux1", "mux2", "host1", "host2"] });
    copyFileSync(`${repoRoot}containerlab/health-token`, file("health-token"));
    for (const n of ["mux1", "mux2", "host1", "host2"])
      writeFileSync(
        file(`${n}.yml`),
        initial(readFileSync(`${repoRoot}containerlab/${n}.yml`, "utf8")),
      );
    for (const h of ["host1", "host2"])
      agents.set(
        h,
        lab.spawn(h, [node, cli, "host-agent", "--config", file(`${h}.yml`)], `agent-${h}`),
      );
    for (const m of ["mux1", "mux2"])
      lab.spawn(m, [node, cli, "run", "--config", file(`${m}.yml`)], `vipmux-${m}`);
    await pollUntil(
      async () => JSON.stringify(await hops("20.20.20.102/32")) === JSON.stringify(BOTH),
      {
        timeoutMs: 40_000,
        what: "the sticky VIP via both MUXes",
      },
    );
    await pollUntil(
      async () => JSON.stringify(await hops("20.20.20.100/32")) === JSON.stringify(BOTH),
      {
        timeoutMs: 20_000,
        what: "the web VIP via both MUXes",
      },
    );
  });
  afterAll(async () => {
    await lab?.down();
  });

  it("an invalid reload is refused with the validate errors and changes nothing", async () => {
    const good = readFileSync(file("mux1.yml"), "utf8");
    writeFileSync(file("mux1.yml"), good.replace("vip: 20.20.20.100", "vip: 20.20.20.300"));
    try {
      const r = await lab.exec("mux1", [node, cli, "reload", "-s", sock("mux1")]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(
        /mux1\.yml:\d+:\d+: services\.0\.vip: must be an IPv4 or IPv6 address/,
      );
    } finally {
      writeFileSync(file("mux1.yml"), good);
    }
    expect(await hops("20.20.20.100/32")).toEqual(BOTH);
    const metrics = await lab.must("mux1", ["curl", "-s", "http://192.0.2.2:9273/metrics"]);
    expect(metrics).toContain('vipmux_config_reloads_total{result="invalid"} 1');
  });

  it("adds a service, removes another, changes a weight, adds a DIP: no session reset, no broken connection", async () => {
    const { before, snapshot, stop } = await openStreams(lab, "streams", "20.20.20.100", 7, 100);
    try {
      const sessions = await frrCounters();

      for (const n of ["mux1", "mux2", "host1", "host2"])
        writeFileSync(file(`${n}.yml`), edited(readFileSync(file(`${n}.yml`), "utf8")));
      for (const h of ["host1", "host2"]) agents.get(h)!.kill("SIGHUP");
      for (const m of ["mux1", "mux2"])
        expect(await lab.must(m, [node, cli, "reload", "-s", sock(m)])).toBe("config reloaded\n");

      await pollUntil(
        async () => JSON.stringify(await hops("20.20.20.103/32")) === JSON.stringify(BOTH),
        {
          timeoutMs: 20_000,
          what: "the new api VIP via both MUXes",
        },
      );
      await pollUntil(async () => (await hops("20.20.20.102/32")).length === 0, {
        timeoutMs: 10_000,
        what: "the removed sticky VIP withdrawn",
      });
      expect(await lab.must("client", ["curl", "-s", "-m", "3", "http://20.20.20.103/"])).toMatch(
        /^vm(11|21) /,
      );
      const status = JSON.parse(
        await lab.must("mux1", [node, cli, "status", "--json", "-s", sock("mux1")]),
      ) as {
        backends: { service: string; dip: string; weight: number }[];
      };
      expect(
        status.backends.find((b) => b.service === "web6" && b.dip === "fd00:10:2::22")?.weight,
      ).toBe(3);
      // The DIP added to web takes new connections once its host agent reports it healthy
      // (the streams, established before, stay where they are).
      await pollUntil(
        async () => {
          for (const m of ["mux1", "mux2"]) {
            const st = JSON.parse(
              await lab.must(m, [node, cli, "status", "--json", "-s", sock(m)]),
            ) as {
              backends: { service: string; dip: string; healthy: boolean | null }[];
            };
            if (
              !st.backends.some((b) => b.service === "web" && b.dip === "10.10.2.22" && b.healthy)
            )
              return false;
          }
          return true;
        },
        { timeoutMs: 15_000, intervalMs: 300, what: "web/10.10.2.22 healthy on both MUXes" },
      );
      const spread = JSON.parse(
        await lab.must("client", [
          node,
          fixture("system/spread.ts"),
          "http://20.20.20.100/",
          "200",
          "10",
        ]),
      ) as { counts: Record<string, number> };
      expect(spread.counts.vm22).toBeGreaterThan(0);

      await sleep(2_000);
      const after = await snapshot();
      expect(after.errors).toEqual([]);
      expect(after.open).toBe(100);
      expect(after.vms).toEqual(before.vms);
      after.replies.forEach((r, i) => {
        expect(r).toBeGreaterThan(before.replies[i]!);
      });
      // Zero BGP session resets: FRR counted no new connection and no drop.
      expect(await frrCounters()).toEqual(sessions);
    } finally {
      stop();
    }
  });
});
