// `node bench/bgp.ts` (`npm run bench:bgp`): vipmux vs BIRD 2 vs ExaBGP feeding a real FRR
// 8.4 edge router 100,000 /32s in the lab (network namespaces, needs root). For each
// speaker, in turn and in the same node: time from session Established (as FRR reports
// it) until FRR's BGP table, zebra's RIB and the edge kernel FIB hold all
// prefixes, and the speaker's peak RSS (VmHWM). Prints vipmux/BIRD and vipmux/ExaBGP.
// Bounded: each speaker gets --timeout-s (default 240 s); the lab always comes down.
// Each speaker runs --runs times (default 3, interleaved); times are medians, RSS the max.
//   node bench/bgp.ts [--count 100000] [--runs 3] [--timeout-s 240] [--only vipmux,bird,exabgp]
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { pollUntil, startLab, type TestLab } from "../src/lab/testing.ts";

const { values } = parseArgs({
  options: {
    count: { type: "string", default: "100000" },
    "timeout-s": { type: "string", default: "240" },
    only: { type: "string", default: "vipmux,bird,exabgp" },
    runs: { type: "string", default: "3" },
  },
  strict: false,
});
const COUNT = Number(values.count);
const TIMEOUT_MS = Number(values["timeout-s"]) * 1000;
const ONLY = String(values.only).split(",");
const RUNS = Math.max(1, Number(values.runs));
const BASE = (10 << 24) | (64 << 16); // 10.64.0.0: 100,000 /32s fit in 10.64.0.0/15
const repoRoot = fileURLToPath(new URL("../", import.meta.url));
const topology = fileURLToPath(new URL("../test/fixtures/bgp-lab/edge.clab.yml", import.meta.url));

const ipOf = (i: number) => {
  const v = BASE + i;
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
};

interface Result {
  name: string;
  bgpMs: number | null;
  ribMs: number | null;
  fibMs: number | null;
  peakRssKiB: number | null;
  note: string;
}

interface NeighborJson {
  bgpState?: string;
  bgpTimerUpMsec?: number;
}
interface RouteSummary {
  routes?: { type: string; rib: number; fib: number }[];
}

async function frrState(lab: TestLab) {
  const n = await lab.vtyshJson<Record<string, NeighborJson>>(
    "edge",
    "show bgp neighbors 192.0.2.2 json",
  );
  return n["192.0.2.2"] ?? {};
}

async function bgpCount(lab: TestLab): Promise<number> {
  const s = await lab.vtyshJson<{ peers?: Record<string, { pfxRcd?: number }> }>(
    "edge",
    "show bgp ipv4 unicast summary json",
  );
  return s.peers?.["192.0.2.2"]?.pfxRcd ?? 0;
}

async function ribCount(lab: TestLab): Promise<{ rib: number; fib: number }> {
  const s = await lab.vtyshJson<RouteSummary>("edge", "show ip route summary json");
  const bgp = s.routes?.find((r) => r.type === "ebgp" || r.type === "bgp");
  return { rib: bgp?.rib ?? 0, fib: bgp?.fib ?? 0 };
}

async function kernelCount(lab: TestLab): Promise<number> {
  const out = await lab.must("edge", ["sh", "-c", "ip -4 route show proto bgp | wc -l"]);
  return Number(out.trim());
}

function vmHwmKiB(pid: number | undefined): number | null {
  if (!pid) return null;
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Starts one speaker; returns its pid (the process whose RSS counts). */
async function startOne(lab: TestLab, name: string): Promise<number | undefined> {
  const dir = lab.plan.dir;
  if (name === "vipmux") {
    // vipmux as shipped: the speaker compiled to JavaScript (what `npm run build` puts in
    // dist/), not type-stripped at load, which alone costs ~35 MiB of RSS.
    const js = join(dir, "vipmux-js");
    const tsc = spawnSync(
      process.execPath,
      [
        join(repoRoot, "node_modules/typescript/bin/tsc"),
        "--ignoreConfig",
        "--outDir",
        js,
        "--rootDir",
        join(repoRoot, "src"),
        "--module",
        "nodenext",
        "--moduleResolution",
        "nodenext",
        "--target",
        "es2023",
        "--allowImportingTsExtensions",
        "--rewriteRelativeImportExtensions",
        "--skipLibCheck",
        "--types",
        "node",
        "--noCheck",
        join(repoRoot, "src/bgp/speaker.ts"),
      ],
      { encoding: "utf8" },
    );
    if (tsc.status !== 0)
      throw new Error(`compiling the speaker failed: ${tsc.stdout}${tsc.stderr}`);
    writeFileSync(join(js, "package.json"), '{"type":"module"}\n');
    const runner = join(js, "bench-speaker.js");
    writeFileSync(
      runner,
      `import { Speaker } from "./bgp/speaker.js";
const s = new Speaker({
  asn: 65101, routerId: "192.0.2.2", holdTimeSec: 9,
  peers: [{ address: "192.0.2.1", asn: 65000, localAddress: "192.0.2.2", families: ["ipv4"] }],
  log: (level, msg) => { if (level !== "debug") console.log(level, msg); },
});
for (let i = 0; i < ${COUNT}; i++) {
  const v = ${BASE} + i;
  s.announce(\`\${v >>> 24}.\${(v >>> 16) & 255}.\${(v >>> 8) & 255}.\${v & 255}/32\`);
}
await s.start();
`,
    );
    return lab.spawn("mux1", [process.execPath, runner], "bench-vipmux").pid;
  }
  if (name === "bird") {
    const routes: string[] = [];
    for (let i = 0; i < COUNT; i++) routes.push(`  route ${ipOf(i)}/32 blackhole;`);
    const conf = join(dir, "bench-bird.conf");
    writeFileSync(
      conf,
      `router id 192.0.2.2;
protocol device {}
protocol static vips {
  ipv4;
${routes.join("\n")}
}
protocol bgp edge {
  local 192.0.2.2 as 65101;
  neighbor 192.0.2.1 as 65000;
  hold time 9;
  ipv4 { import none; export all; next hop self; };
}
`,
    );
    return lab.spawn(
      "mux1",
      ["bird", "-f", "-c", conf, "-s", join(dir, "bench-bird.ctl")],
      "bench-bird",
    ).pid;
  }
  const routes: string[] = [];
  for (let i = 0; i < COUNT; i++) routes.push(`    route ${ipOf(i)}/32 next-hop self;`);
  const conf = join(dir, "bench-exabgp.conf");
  writeFileSync(
    conf,
    `neighbor 192.0.2.1 {
  router-id 192.0.2.2;
  local-address 192.0.2.2;
  local-as 65101;
  peer-as 65000;
  hold-time 9;
  family { ipv4 unicast; }
  static {
${routes.join("\n")}
  }
}
`,
  );
  return lab.spawn(
    "mux1",
    [
      "env",
      "exabgp.daemon.user=root",
      "exabgp.daemon.daemonize=false",
      "exabgp.api.cli=false",
      "exabgp.log.destination=stdout",
      "exabgp.log.level=WARNING",
      "exabgp",
      conf,
    ],
    "bench-exabgp",
  ).pid;
}

async function runOne(lab: TestLab, name: string): Promise<Result> {
  const r: Result = { name, bgpMs: null, ribMs: null, fibMs: null, peakRssKiB: null, note: "" };
  const pid = await startOne(lab, name);
  const deadline = Date.now() + TIMEOUT_MS;
  const left = () => Math.max(1000, deadline - Date.now());
  try {
    // Established as FRR reports it, polled every ~10 ms (FRR's own uptime counter has a
    // resolution of one second, too coarse here): the error is one vtysh round trip.
    const establishedAt = await pollUntil(
      async () => ((await frrState(lab)).bgpState === "Established" ? Date.now() : undefined),
      { timeoutMs: left(), intervalMs: 10, what: `${name} Established` },
    );
    console.log(`  ${name}: Established`);
    const bgpAt = await pollUntil(
      async () => ((await bgpCount(lab)) >= COUNT ? Date.now() : undefined),
      {
        timeoutMs: left(),
        intervalMs: 50,
        what: `${COUNT} prefixes in FRR's BGP table`,
      },
    );
    r.bgpMs = bgpAt - establishedAt;
    console.log(`  ${name}: BGP table full after ${(r.bgpMs / 1000).toFixed(2)} s`);
    const ribAt = await pollUntil(
      async () => ((await ribCount(lab)).rib >= COUNT ? Date.now() : undefined),
      {
        timeoutMs: left(),
        intervalMs: 50,
        what: `${COUNT} routes in zebra's RIB`,
      },
    );
    r.ribMs = ribAt - establishedAt;
    const fibAt = await pollUntil(
      async () => ((await kernelCount(lab)) >= COUNT ? Date.now() : undefined),
      {
        timeoutMs: left(),
        intervalMs: 100,
        what: `${COUNT} routes in the edge kernel FIB`,
      },
    );
    r.fibMs = fibAt - establishedAt;
  } catch (e) {
    r.note = (e as Error).message;
  }
  r.peakRssKiB = vmHwmKiB(pid);
  if (pid) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  // Back to an empty edge before the next speaker.
  await pollUntil(async () => (await frrState(lab)).bgpState !== "Established", {
    timeoutMs: 30_000,
    what: "session down",
  });
  await pollUntil(async () => (await kernelCount(lab)) === 0 && (await bgpCount(lab)) === 0, {
    timeoutMs: 120_000,
    intervalMs: 500,
    what: "the edge to drop every route",
  });
  return r;
}

const s = (ms: number | null) => (ms === null ? "—" : `${(ms / 1000).toFixed(2)} s`);
const mb = (k: number | null) => (k === null ? "—" : `${(k / 1024).toFixed(1)} MiB`);
const ratio = (a: number | null, b: number | null) =>
  a === null || b === null || b === 0 ? "—" : (a / b).toFixed(2);

async function main(): Promise<number> {
  console.log(`BGP bench: ${COUNT} /32s into FRR 8.4 (lab ${topology})`);
  const lab = await startLab(topology, "bgpbench");
  const stop = () => {
    lab.down().finally(() => process.exit(130));
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  const runs: Result[] = [];
  try {
    for (let run = 1; run <= RUNS; run++) {
      for (const name of ["vipmux", "bird", "exabgp"].filter((n) => ONLY.includes(n))) {
        console.log(`- ${name} (run ${run}/${RUNS})`);
        const r = await runOne(lab, name);
        console.log(
          `  ${name}: RIB ${s(r.ribMs)}, FIB ${s(r.fibMs)}, peak RSS ${mb(r.peakRssKiB)}`,
        );
        runs.push(r);
      }
    }
  } finally {
    await lab.down();
  }
  const median = (xs: (number | null)[]): number | null => {
    const v = xs.filter((x): x is number => x !== null).sort((a, b) => a - b);
    return v.length === 0 ? null : v[Math.floor(v.length / 2)]!;
  };
  const results: Result[] = [];
  for (const name of ["vipmux", "bird", "exabgp"]) {
    const rs = runs.filter((r) => r.name === name);
    if (rs.length === 0) continue;
    results.push({
      name,
      bgpMs: median(rs.map((r) => r.bgpMs)),
      ribMs: median(rs.map((r) => r.ribMs)),
      fibMs: median(rs.map((r) => r.fibMs)),
      peakRssKiB: Math.max(...rs.map((r) => r.peakRssKiB ?? 0)) || null,
      note: rs
        .map((r) => r.note)
        .filter(Boolean)
        .join("; "),
    });
  }
  console.log(
    `\nmedian of ${RUNS} run(s), ${COUNT} /32s, time from Established\n${"speaker".padEnd(8)} ${"BGP table".padStart(10)} ${"zebra RIB".padStart(10)} ${"kernel FIB".padStart(11)} ${"peak RSS".padStart(11)}`,
  );
  for (const r of results) {
    console.log(
      `${r.name.padEnd(8)} ${s(r.bgpMs).padStart(10)} ${s(r.ribMs).padStart(10)} ${s(r.fibMs).padStart(11)} ${mb(r.peakRssKiB).padStart(11)}${r.note ? `  (${r.note})` : ""}`,
    );
  }
  const by = (n: string) => results.find((r) => r.name === n);
  const v = by("vipmux");
  for (const other of ["bird", "exabgp"]) {
    const o = by(other);
    if (!v || !o) continue;
    console.log(
      `vipmux/${other}: time to BGP table ${ratio(v.bgpMs, o.bgpMs)}, to RIB ${ratio(v.ribMs, o.ribMs)}, to FIB ${ratio(v.fibMs, o.fibMs)}, peak RSS ${ratio(v.peakRssKiB, o.peakRssKiB)}`,
    );
  }
  return results.every((r) => r.note === "") ? 0 : 1;
}

process.exit(await main());
