// `npm run bench:health`: from the last backend of a VIP failing to the VIP leaving the
// edge router's kernel FIB, over N trials, for vipmux and (same run, same lab, equal
// settings: interval 1 s, rise 2, fall 2, withdraw on down) ExaBGP's healthcheck program;
// then vipmux at 100 ms / fall 2. The backend is an HTTP server in the speaker's own
// namespace; it is SIGKILLed at t0, and `ip monitor route` on the edge stamps t1.
// Everything runs in lab namespaces and is torn down at the end.
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { fibNextHops, pollUntil, startLab, type TestLab } from "../src/lab/testing.ts";
import { sleep } from "../src/util/proc.ts";

const root = fileURLToPath(new URL("../", import.meta.url));
const TRIALS = Number(process.env.BENCH_TRIALS ?? 20);
const node = process.execPath;

interface RunSpec {
  name: string;
  speakerNode: "mux1" | "mux2";
  vip: string;
  start: (lab: TestLab) => ChildProcess;
}

function fill(template: string, vars: Record<string, string>): string {
  let t = readFileSync(`${root}test/fixtures/health-bench/${template}`, "utf8");
  for (const [k, v] of Object.entries(vars)) t = t.replaceAll(`@${k}@`, v);
  return t;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const idx = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, idx)]!;
}

/** Streams `ip monitor route` in the edge and resolves when `vip` is deleted. */
class RouteWatch {
  private readonly proc: ChildProcess;
  private waiters: { vip: string; resolve: (t: number) => void }[] = [];
  constructor(netns: string) {
    this.proc = spawn("ip", ["netns", "exec", netns, "ip", "monitor", "route"], {
      stdio: ["ignore", "pipe", "ignore"],
    });
    let buf = "";
    this.proc.stdout!.setEncoding("utf8");
    this.proc.stdout!.on("data", (chunk: string) => {
      const t = performance.now();
      buf += chunk;
      const lines = buf.split("\n");
      buf = lines.pop() ?? "";
      for (const line of lines) {
        if (!line.startsWith("Deleted ")) continue;
        for (const w of [...this.waiters])
          if (line.startsWith(`Deleted ${w.vip} `)) {
            this.waiters = this.waiters.filter((x) => x !== w);
            w.resolve(t);
          }
      }
    });
  }
  deleted(vip: string, timeoutMs: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${vip} not withdrawn within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.waiters.push({
        vip,
        resolve: (t) => {
          clearTimeout(timer);
          resolve(t);
        },
      });
    });
  }
  stop() {
    this.proc.kill();
  }
}

async function trials(lab: TestLab, watch: RouteWatch, spec: RunSpec): Promise<number[]> {
  const speaker = spec.start(lab);
  const out: number[] = [];
  try {
    for (let i = 0; i < TRIALS; i++) {
      const server = lab.spawn(
        spec.speakerNode,
        [node, `${root}test/fixtures/servers/http.ts`, "bench", "8080", "127.0.0.1"],
        `${spec.name}-backend`,
      );
      await pollUntil(async () => (await fibNextHops(lab, "edge", spec.vip)).length > 0, {
        timeoutMs: 30_000,
        intervalMs: 50,
        what: `${spec.vip} in the edge FIB (${spec.name}, trial ${i + 1})`,
      });
      // Fail at a random point of the probe cycle, as a real failure would.
      await sleep(300 + Math.random() * 1000);
      const deleted = watch.deleted(spec.vip, 30_000);
      const t0 = performance.now();
      server.kill("SIGKILL");
      const t1 = await deleted;
      out.push(t1 - t0);
      process.stdout.write(`  ${spec.name} trial ${i + 1}/${TRIALS}: ${(t1 - t0).toFixed(0)} ms\n`);
    }
  } finally {
    speaker.kill("SIGTERM");
    await sleep(500);
  }
  return out;
}

async function main() {
  console.log(
    `bench/health: ${TRIALS} trials each; backend SIGKILLed -> VIP gone from the edge kernel FIB`,
  );
  const lab = await startLab(`${root}containerlab/vipmux.clab.yml`, "hbench", { skipCmd: true });
  const watch = new RouteWatch(lab.node("edge").netns);
  const results: { name: string; ms: number[] }[] = [];
  try {
    const vipmuxRun = (name: string, interval: string, timeout: string): RunSpec => ({
      name,
      speakerNode: "mux1",
      vip: "20.20.20.100",
      start: (l) => {
        const file = `${l.plan.dir}/${name}.yml`;
        writeFileSync(
          file,
          fill("vipmux.yml.in", { INTERVAL: interval, TIMEOUT: timeout, RISE: "2", FALL: "2" }),
        );
        return l.spawn("mux1", [node, `${root}src/cli/main.ts`, "run", "--config", file], name);
      },
    });
    const exabgp: RunSpec = {
      name: "exabgp-1s",
      speakerNode: "mux2",
      vip: "20.20.20.101",
      start: (l) => {
        const file = `${l.plan.dir}/exabgp.conf`;
        writeFileSync(file, fill("exabgp.conf.in", { INTERVAL: "1", RISE: "2", FALL: "2" }));
        return l.spawn(
          "mux2",
          [
            "env",
            "exabgp.daemon.user=root",
            "exabgp.daemon.daemonize=false",
            "exabgp.api.cli=false",
            "exabgp.log.destination=stdout",
            "exabgp",
            file,
          ],
          "exabgp",
        );
      },
    };
    for (const spec of [
      vipmuxRun("vipmux-1s", "1s", "500ms"),
      exabgp,
      vipmuxRun("vipmux-100ms", "100ms", "50ms"),
    ])
      results.push({ name: spec.name, ms: await trials(lab, watch, spec) });
  } finally {
    watch.stop();
    await lab.down();
  }
  console.log("\nrun            p50 ms   p99 ms   max ms   trials");
  const stats = new Map<string, { p50: number; p99: number }>();
  for (const r of results) {
    const s = [...r.ms].sort((a, b) => a - b);
    const p50 = percentile(s, 50);
    const p99 = percentile(s, 99);
    stats.set(r.name, { p50, p99 });
    console.log(
      `${r.name.padEnd(14)} ${p50.toFixed(0).padStart(6)}   ${p99.toFixed(0).padStart(6)}   ${s.at(-1)!.toFixed(0).padStart(6)}   ${s.length}`,
    );
  }
  const v = stats.get("vipmux-1s");
  const e = stats.get("exabgp-1s");
  const f = stats.get("vipmux-100ms");
  if (v && e)
    console.log(
      `\nvipmux/ExaBGP at equal settings: p50 ${(v.p50 / e.p50).toFixed(2)}x, p99 ${(v.p99 / e.p99).toFixed(2)}x (target <= 1)`,
    );
  if (f) console.log(`vipmux at 100 ms / fall 2: p99 ${f.p99.toFixed(0)} ms (target < 500 ms)`);
}

await main();
