// The Grafana dashboard charts what vipmux exports, all of it: every expression names only
// metrics a MUX or a host agent exports, every exported metric is on a panel, and every
// selector follows the dashboard's instance variable and rate interval. docs/metrics.md
// describes the same metrics, with their types and labels.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { Metrics, type MetricsSources } from "../../../src/api/metrics.ts";
import { HostAgentMetrics } from "../../../src/hostagent/metrics.ts";
import { dashboardTargets, exportedSeries, metricNames, readDashboard } from "../../dashboard.ts";

const muxSources: MetricsSources = {
  bgpPeers: () => [],
  vips: () => [],
  backends: () => [],
  muxHealthy: () => true,
  healthRejects: () => [],
};
const registries = () => [
  new Metrics(muxSources).registry,
  new HostAgentMetrics({ programmed: () => undefined, targets: () => [], streams: () => [] })
    .registry,
];

describe("the Grafana dashboard", () => {
  it("reads names out of PromQL", () => {
    expect(
      metricNames(
        'histogram_quantile(0.99, sum by (le, service) (rate(a_bucket{instance=~"$instance", x="b c"}[$__rate_interval]))) / on (instance) group_left (peer) b_total + 8 * c offset 5m',
      ).sort(),
    ).toEqual(["a_bucket", "b_total", "c"]);
    expect(metricNames("time() - vipmux_process_start_time_seconds")).toEqual([
      "vipmux_process_start_time_seconds",
    ]);
  });

  it("every expression names only exported metrics, and every exported metric is charted", () => {
    const exported = exportedSeries(...registries());
    const targets = dashboardTargets();
    const unknown = targets.flatMap((t) =>
      metricNames(t.expr)
        .filter((n) => !exported.has(n))
        .map((n) => `${t.panel}: ${n}`),
    );
    expect(unknown).toEqual([]);
    const charted = new Set(
      targets.flatMap((t) => metricNames(t.expr).map((n) => exported.get(n)!)),
    );
    const uncharted = [...new Set(exported.values())].filter((m) => !charted.has(m)).sort();
    expect(uncharted).toEqual([]);
  });

  it("follows the instance variable and Grafana's rate interval", () => {
    const d = readDashboard();
    const instance = d.templating.list.find((v) => v.name === "instance");
    expect(instance).toMatchObject({ type: "query" });
    const vars = metricNames(instance!.definition!.replace(/^label_values\((.*), *\w+\)$/, "$1"));
    expect(vars).toEqual(["vipmux_build_info"]);
    for (const t of dashboardTargets(d)) {
      // Every selector has the instance matcher; every range is the rate interval.
      const selectors = [...t.expr.matchAll(/\b(vipmux_\w+)(\{[^}]*\})?/g)];
      for (const [sel, , matchers] of selectors)
        expect(matchers ?? "", `${t.panel}: ${sel}`).toContain(`instance=~"$instance"`);
      for (const [range] of t.expr.matchAll(/\[[^\]]*\]/g))
        expect(range, t.panel).toBe("[$__rate_interval]");
    }
  });
});

describe("docs/metrics.md", () => {
  it("has one row per exported metric, with its type and labels, and no others", () => {
    const doc = readFileSync(new URL("../../../docs/metrics.md", import.meta.url), "utf8");
    const rows = new Map(
      [...doc.matchAll(/^\| `(vipmux_\w+)` \| (\w+) \|([\w, ]*)\|/gm)].map((m) => [
        m[1]!,
        { type: m[2]!, labels: m[3]!.trim() },
      ]),
    );
    const exported = new Map<string, { type: string; labels: string }>();
    for (const r of registries())
      for (const m of r.getMetricsAsArray()) {
        const { name, type, labelNames } = m as unknown as {
          name: string;
          type: string;
          labelNames?: string[];
        };
        exported.set(name, { type, labels: (labelNames ?? []).join(", ") });
      }
    expect(Object.fromEntries(rows)).toEqual(Object.fromEntries(exported));
  });
});
