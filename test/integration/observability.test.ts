// Observability in the canonical lab (`vipmux run` MUXes, real host agents, real FRR): a
// real Prometheus scrapes both MUXes (api.metrics) and both host agents (their `metrics`),
// sees the host agents' series and one `peer` label for a peer's BGP and BFD sessions, and
// runs every expression of the Grafana dashboard (docs/grafana/vipmux-dashboard.json)
// with a result, after some traffic, a dropped packet and a rejected health report.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fibNextHops, pollUntil, startLab, type TestLab } from "../../src/lab/testing.ts";
import { sleep } from "../../src/util/proc.ts";
import { dashboardTargets, metricNames, runnable } from "../dashboard.ts";
import { canonicalTopology, fixture, isRoot } from "./helpers.ts";

const V4 = "20.20.20.100";
const V6 = "2001:db8:f::100";
const MUXES = ["192.0.2.2:9273", "192.0.2.6:9273"];
const AGENTS = ["198.51.100.2:9274", "198.51.100.6:9274"];

type Sample = { metric: Record<string, string>; value: [number, string] };
type Answer = { status: string; error?: string; data: { result: Sample[] } };

describe.skipIf(!isRoot)("observability: Prometheus, MUXes, host agents, the dashboard", () => {
  let lab: TestLab;
  const prom = async (path: string, params: Record<string, string> = {}) =>
    JSON.parse(
      await lab.must("client", [
        "curl",
        "-s",
        "--get",
        ...Object.entries(params).flatMap(([k, v]) => ["--data-urlencode", `${k}=${v}`]),
        `http://127.0.0.1:9090${path}`,
      ]),
    ) as unknown;
  const query = async (q: string) => (await prom("/api/v1/query", { query: q })) as Answer;
  const rows = (a: Answer, ...labels: string[]) =>
    a.data.result.map((r) => [...labels.map((l) => r.metric[l] ?? ""), r.value[1]]).sort();

  beforeAll(async () => {
    lab = await startLab(canonicalTopology, "obs");
    lab.spawn(
      "client",
      [
        "prometheus",
        `--config.file=${fixture("observability/prometheus.yml")}`,
        `--storage.tsdb.path=${lab.plan.dir}/prometheus-data`,
        "--web.listen-address=127.0.0.1:9090",
      ],
      "prometheus",
    );
    await pollUntil(
      async () => {
        const h = await fibNextHops(lab, "edge", `${V4}/32`);
        return h.length === 2 ? h : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 200, what: "the IPv4 VIP via both MUXes" },
    );
  });
  afterAll(async () => {
    await lab?.down();
  });

  it("scrapes both MUXes and both host agents", async () => {
    const up = await pollUntil(
      async () => {
        const a = await query("up");
        return a.data.result.length === 4 && a.data.result.every((r) => r.value[1] === "1")
          ? a
          : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 500, what: "4 targets up in Prometheus" },
    );
    expect(rows(up, "job", "instance")).toEqual([
      ...AGENTS.map((i) => ["host-agent", i, "1"]),
      ...MUXES.map((i) => ["mux", i, "1"]),
    ]);
    const build = await query("vipmux_build_info");
    expect(build.data.result.map((r) => r.metric.instance).sort()).toEqual(
      [...AGENTS, ...MUXES].sort(),
    );
  });

  it("host agents: programmed services and DIPs, probes, health streams to both MUXes", async () => {
    // web, sticky and web6: three services with two local DIPs each on every host.
    const programmed = await pollUntil(
      async () => {
        const a = await query("vipmux_hostagent_services_programmed");
        return a.data.result.length === 2 ? a : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 500, what: "programmed services of both host agents" },
    );
    expect(rows(programmed, "instance")).toEqual(AGENTS.map((i) => [i, "3"]));
    expect(rows(await query("vipmux_hostagent_vxlan_devices"), "instance")).toEqual(
      AGENTS.map((i) => [i, "2"]),
    );
    const dips = await query("vipmux_hostagent_dip_programmed");
    expect(dips.data.result).toHaveLength(12);
    expect(dips.data.result.every((r) => r.value[1] === "1")).toBe(true);
    expect(
      rows(await query('vipmux_hostagent_dip_programmed{service="web"}'), "instance", "dip"),
    ).toEqual([
      ["198.51.100.2:9274", "10.10.1.11", "1"],
      ["198.51.100.2:9274", "10.10.1.12", "1"],
      ["198.51.100.6:9274", "10.10.2.21", "1"],
      ["198.51.100.6:9274", "10.10.2.22", "1"],
    ]);
    const streams = await pollUntil(
      async () => {
        const a = await query("vipmux_hostagent_health_stream_up == 1");
        return a.data.result.length === 4 ? a : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 500, what: "4 health streams up" },
    );
    expect(rows(streams, "instance", "mux")).toEqual(
      AGENTS.flatMap((i) => ["192.0.2.2:7946", "192.0.2.6:7946"].map((m) => [i, m, "1"])),
    );
    // Every local DIP up by the agents' probes (rise: 2 probes after the agent started).
    await pollUntil(
      async () => {
        const a = await query("vipmux_hostagent_backend_up == 1");
        return a.data.result.length === 12 ? a : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 500, what: "12 local DIPs up on their host agents" },
    );
    const probes = await query('sum by (instance) (vipmux_hostagent_probes_total{result="ok"})');
    expect(probes.data.result.map((r) => Number(r.value[1]) > 0)).toEqual([true, true]);
    const reconciles = await query('vipmux_hostagent_reconciles_total{result="ok"}');
    expect(reconciles.data.result.map((r) => Number(r.value[1]) >= 1)).toEqual([true, true]);
  });

  it("a peer's BGP and BFD series carry the same peer label", async () => {
    const joined = await pollUntil(
      async () => {
        const a = await query(
          "vipmux_bgp_session_up * on (instance, peer) group_left vipmux_bfd_session_up",
        );
        return a.data.result.length === 2 && a.data.result.every((r) => r.value[1] === "1")
          ? a
          : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 500, what: "BGP and BFD up, joined on peer" },
    );
    expect(rows(joined, "instance", "peer")).toEqual([
      ["192.0.2.2:9273", "192.0.2.1", "1"],
      ["192.0.2.6:9273", "192.0.2.5", "1"],
    ]);
    expect(rows(await query("vipmux_bgp_peer_info"), "instance", "peer", "name", "asn")).toEqual([
      ["192.0.2.2:9273", "192.0.2.1", "edge", "65000", "1"],
      ["192.0.2.6:9273", "192.0.2.5", "edge", "65000", "1"],
    ]);
  });

  it("every dashboard expression runs here, names exported metrics, and has data when they do", async () => {
    // Traffic through both VIPs (forwarding, connection table, batch latency), a packet to
    // a port no service serves (a drop), and a health-stream line that is no hello (a
    // rejected report): the events the dashboard's counters count.
    for (let i = 0; i < 20; i++) {
      await lab.must("client", ["curl", "-s", "-m", "3", `http://${V4}/`]);
      await lab.must("client", ["curl", "-s", "-m", "3", `http://[${V6}]/`]);
    }
    await lab.exec("client", ["curl", "-s", "-m", "1", `http://${V4}:81/`]);
    await lab.must("client", [
      process.execPath,
      "-e",
      `const s = require("node:net").connect(7946, "192.0.2.2", () => s.end("not a hello\\n")); s.on("error", () => {}); s.on("close", () => {});`,
    ]);
    // Rates need two samples inside the window after the events.
    await sleep(6_000);
    const targets = dashboardTargets();
    expect(targets.length).toBeGreaterThan(40);
    // What the scraped processes export (their # TYPE lines), with or without samples now.
    const exported = new Set(
      Object.keys(((await prom("/api/v1/metadata")) as { data: object }).data),
    );
    const known = (name: string) =>
      exported.has(name) || exported.has(name.replace(/_(bucket|sum|count)$/, ""));
    const hasSamples = async (name: string) => (await query(`count(${name})`)).data.result.length;
    let last: string[] = [];
    const problems = await pollUntil(
      async () => {
        const out: string[] = [];
        last = out;
        for (const t of targets) {
          const a = await query(runnable(t.expr, "15s"));
          if (a.status !== "success") {
            out.push(`${t.panel}: ${t.expr}: ${a.error}`);
            continue;
          }
          const names = metricNames(t.expr);
          const unknown = names.filter((n) => !known(n));
          if (unknown.length > 0) out.push(`${t.panel}: no target exports ${unknown.join(", ")}`);
          // Empty only while none of its metrics has a sample (a labelled gauge with
          // nothing to count now, e.g. libuv requests by type).
          else if (a.data.result.length === 0) {
            const withSamples = [];
            for (const n of names) if (await hasSamples(n)) withSamples.push(n);
            if (withSamples.length > 0)
              out.push(`${t.panel}: no data although ${withSamples.join(", ")} has: ${t.expr}`);
          }
        }
        return out.length === 0 ? out : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 2_000, what: "every dashboard expression answered" },
    ).catch(() => last);
    expect(problems).toEqual([]);
    // The events above made the counters behind these panels count.
    for (const q of [
      `sum(rate(vipmux_vip_packets_total{vip="${V4}"}[15s])) > 0`,
      `sum(vipmux_dataplane_drops_total) > 0`,
      `sum(vipmux_health_reports_rejected_total{instance="192.0.2.2:9273"}) > 0`,
      "sum(vipmux_conntrack_entries) > 0",
    ])
      expect((await query(q)).data.result, q).toHaveLength(1);
  });
});
