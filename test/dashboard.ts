// The Grafana dashboard (docs/grafana/vipmux-dashboard.json) as the tests read it: its
// PromQL expressions, the metric names each one selects, and the expressions made
// runnable against a plain Prometheus (Grafana's variables replaced). Used by the unit
// test (names against the registries) and the lab test (queries against Prometheus).
import { readFileSync } from "node:fs";
import type { Registry } from "prom-client";

export interface DashboardTarget {
  panel: string;
  expr: string;
}

interface Panel {
  type: string;
  title: string;
  targets?: { expr?: string }[];
  panels?: Panel[];
}

export interface Dashboard {
  panels: Panel[];
  templating: { list: { name: string; type: string; definition?: string }[] };
}

export function readDashboard(): Dashboard {
  return JSON.parse(
    readFileSync(new URL("../docs/grafana/vipmux-dashboard.json", import.meta.url), "utf8"),
  ) as Dashboard;
}

/** Every panel's expressions (rows' nested panels included). */
export function dashboardTargets(d: Dashboard = readDashboard()): DashboardTarget[] {
  const out: DashboardTarget[] = [];
  const walk = (panels: Panel[]) => {
    for (const p of panels) {
      for (const t of p.targets ?? []) if (t.expr) out.push({ panel: p.title, expr: t.expr });
      walk(p.panels ?? []);
    }
  };
  walk(d.panels);
  return out;
}

const KEYWORDS = new Set([
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "bool",
  "and",
  "or",
  "unless",
  "offset",
  "inf",
  "nan",
]);

/**
 * The metric names an expression selects: identifiers that are not functions (followed by
 * `(`), keywords, label names (inside `{}` or grouping clauses), strings or numbers.
 */
export function metricNames(expr: string): string[] {
  const s = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ")
    .replace(/\boffset\s+-?[\d.smhdwy]+|@\s*[\d.]+/gi, " ")
    .replace(/(?<![\w:])\d+(?:\.\d+)?(?:e[+-]?\d+)?/gi, " ");
  const names = new Set<string>();
  for (const m of s.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const rest = s.slice(m.index + m[0].length);
    if (/^\s*\(/.test(rest) || KEYWORDS.has(m[0].toLowerCase())) continue;
    names.add(m[0]);
  }
  return [...names];
}

/** Every series name a registry exports, and the metric each belongs to. */
export function exportedSeries(...registries: Registry[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const r of registries)
    for (const m of r.getMetricsAsArray()) {
      const { name, type } = m as unknown as { name: string; type: string };
      out.set(name, name);
      if (type === "histogram" || type === "summary")
        for (const suffix of ["_bucket", "_sum", "_count"])
          if (type === "histogram" || suffix !== "_bucket") out.set(`${name}${suffix}`, name);
    }
  return out;
}

/**
 * The expression as Grafana would send it with every instance selected and a rate
 * interval of `rateInterval` (Grafana's $__rate_interval: at least four scrape intervals).
 */
export function runnable(expr: string, rateInterval = "15s"): string {
  return expr
    .replaceAll("$__rate_interval", rateInterval)
    .replaceAll("$__range", rateInterval)
    .replaceAll('"$instance"', '".*"');
}
