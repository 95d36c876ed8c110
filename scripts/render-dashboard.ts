// Renders docs/grafana/vipmux-dashboard.json against a Prometheus (query_range) into a PNG
// with headless Chromium, so the README can show the dashboard as a lab run filled it
// without a Grafana server. Panels: timeseries (lines) and stat (last value).
// Usage: node scripts/render-dashboard.ts DASHBOARD.json PROMETHEUS_URL OUT.png [MINUTES]
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

interface Target {
  expr: string;
  legendFormat?: string;
}
interface Panel {
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  fieldConfig?: { defaults?: { unit?: string } };
  targets?: Target[];
}
interface Series {
  label: string;
  points: [number, number][];
}

const [dashFile, prom, out, minutesArg] = process.argv.slice(2);
if (!dashFile || !prom || !out) {
  console.error("usage: render-dashboard.ts DASHBOARD.json PROMETHEUS_URL OUT.png [MINUTES]");
  process.exit(2);
}
const dash = JSON.parse(readFileSync(dashFile, "utf8")) as { title: string; panels: Panel[] };
const end = Math.floor(Date.now() / 1000);
const start = end - Number(minutesArg ?? 10) * 60;
const step = Math.max(1, Math.floor((end - start) / 200));

function legend(fmt: string | undefined, metric: Record<string, string>): string {
  if (!fmt) return JSON.stringify(metric);
  return fmt.replace(/\{\{\s*(\w+)\s*\}\}/g, (_, k: string) => metric[k] ?? "");
}

async function query(t: Target): Promise<Series[]> {
  const u = new URL("/api/v1/query_range", prom);
  // Grafana's variables: every instance, a rate interval of at least four scrapes.
  const expr = t.expr
    .replaceAll("$__rate_interval", `${Math.max(15, 4 * step)}s`)
    .replaceAll('"$instance"', '".*"');
  u.searchParams.set("query", expr);
  u.searchParams.set("start", String(start));
  u.searchParams.set("end", String(end));
  u.searchParams.set("step", String(step));
  const r = (await (await fetch(u)).json()) as {
    data?: { result: { metric: Record<string, string>; values: [number, string][] }[] };
  };
  return (r.data?.result ?? []).map((s) => ({
    label: legend(t.legendFormat, s.metric),
    points: s.values
      .map(([ts, v]) => [ts, Number(v)] as [number, number])
      .filter(([, v]) => Number.isFinite(v)),
  }));
}

const COLORS = [
  "#7eb26d",
  "#eab839",
  "#6ed0e0",
  "#ef843c",
  "#e24d42",
  "#1f78c1",
  "#ba43a9",
  "#705da0",
  "#508642",
  "#cca300",
];
const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");

function fmt(v: number, unit = "short"): string {
  if (unit === "percentunit") return `${(v * 100).toFixed(0)}%`;
  const suffix = unit === "pps" ? " p/s" : unit === "s" ? " s" : unit === "ops" ? " /s" : "";
  if (unit === "s" && v < 1) return `${(v * 1000).toPrecision(3)} ms`;
  const abs = Math.abs(v);
  const n =
    abs >= 1e6
      ? `${(v / 1e6).toFixed(1)}M`
      : abs >= 1e3
        ? `${(v / 1e3).toFixed(1)}k`
        : `${+v.toFixed(2)}`;
  return n + suffix;
}

function timeseries(series: Series[], w: number, h: number, unit?: string): string {
  const pts = series.flatMap((s) => s.points);
  if (pts.length === 0)
    return `<text x="${w / 2}" y="${h / 2}" fill="#888" text-anchor="middle">no data</text>`;
  let max = Math.max(...pts.map(([, v]) => v));
  const min = Math.min(0, ...pts.map(([, v]) => v));
  if (max === min) max = min + 1;
  const px = (t: number) => 50 + ((t - start) / (end - start)) * (w - 60);
  const py = (v: number) => h - 20 - ((v - min) / (max - min)) * (h - 30);
  const grid = [0, 0.5, 1]
    .map((f) => {
      const v = min + f * (max - min);
      return `<line x1="50" x2="${w - 10}" y1="${py(v)}" y2="${py(v)}" stroke="#333"/><text x="46" y="${py(v) + 4}" fill="#aaa" font-size="10" text-anchor="end">${esc(fmt(v, unit))}</text>`;
    })
    .join("");
  const lines = series
    .map((s, i) => {
      const d = s.points
        .map(([t, v], j) => `${j ? "L" : "M"}${px(t).toFixed(1)},${py(v).toFixed(1)}`)
        .join("");
      return `<path d="${d}" fill="none" stroke="${COLORS[i % COLORS.length]}" stroke-width="1.5"/>`;
    })
    .join("");
  return grid + lines;
}

async function main() {
  const colW = 1560 / 24;
  const rowH = 34;
  let html = `<html><body style="margin:0;background:#111217;font-family:sans-serif;color:#ddd">
<div style="padding:12px 20px;font-size:20px">${esc(dash.title)} <span style="font-size:12px;color:#888">last ${minutesArg ?? 10} min, rendered ${new Date().toISOString()}</span></div>
<div style="position:relative;margin:0 20px">`;
  let bottom = 0;
  for (const p of dash.panels) {
    if (p.type === "row") continue;
    const series = (await Promise.all((p.targets ?? []).map(query))).flat();
    const { x, y, w, h } = p.gridPos;
    const pw = w * colW - 8;
    const ph = h * rowH - 8;
    bottom = Math.max(bottom, (y + h) * rowH);
    const unit = p.fieldConfig?.defaults?.unit;
    let body: string;
    if (p.type === "stat") {
      const last = series
        .map((s) => s.points.at(-1)?.[1])
        .filter((v): v is number => v !== undefined);
      const v = last.reduce((a, b) => a + b, 0);
      body = `<div style="font-size:40px;color:#7eb26d;text-align:center;margin-top:${ph / 2 - 45}px">${last.length ? esc(fmt(v, unit)) : "–"}</div>`;
    } else {
      const legendHtml = series
        .slice(0, 8)
        .map(
          (s, i) =>
            `<span style="color:${COLORS[i % COLORS.length]};margin-right:10px">■ ${esc(s.label)}</span>`,
        )
        .join("");
      body = `<svg width="${pw}" height="${ph - 50}">${timeseries(series, pw, ph - 50, unit)}</svg><div style="font-size:10px;padding:0 8px;white-space:nowrap;overflow:hidden">${legendHtml}</div>`;
    }
    html += `<div style="position:absolute;left:${x * colW}px;top:${y * rowH}px;width:${pw}px;height:${ph}px;background:#181b1f;border:1px solid #2c3235;border-radius:3px">
<div style="font-size:13px;padding:6px 8px">${esc(p.title)}</div>${body}</div>`;
  }
  html += `</div><div style="height:${bottom + 20}px"></div></body></html>`;
  const dir = mkdtempSync(join(tmpdir(), "vipmux-dash-"));
  const page = join(dir, "dashboard.html");
  writeFileSync(page, html);
  const chromium = ["chromium", "chromium-browser"].find(
    (c) => spawnSync("which", [c]).status === 0,
  );
  if (!chromium) throw new Error("needs Debian's chromium (apt-get install chromium)");
  const r = spawnSync(
    chromium,
    [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      `--user-data-dir=${join(dir, "profile")}`,
      `--window-size=1600,${bottom + 80}`,
      `--screenshot=${out}`,
      `file://${page}`,
    ],
    { encoding: "utf8", timeout: 60_000 },
  );
  if (r.status !== 0) throw new Error(`chromium failed: ${r.stderr}`);
  console.log(`wrote ${out} (${dash.panels.length} panels, ${start}..${end})`);
}

await main();
