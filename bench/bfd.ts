// `node bench/bfd.ts [trials=20] [no-bfd-trials=3] [--no-daemon]` (root): how fast the edge
// router stops sending to a MUX that hangs, with vipmux BFD, with BIRD 2's BFD (the
// reference), with no BFD at all (BGP hold timer), and with the whole vipmux daemon.
//
// Phase 1, test/fixtures/bfd-lab/bfd-bgp.clab.yml: the FRR edge learns the VIP
// 20.20.20.100/32 from three MUXes (ECMP): mux1 = vipmux BFD (bfd-peer.ts) + ExaBGP as the
// BGP speaker (FRR `neighbor bfd`, 100 ms × 3), mux2 = BIRD 2 (BGP + BFD, same timers),
// mux3 = ExaBGP without BFD. Targets alternate trial by trial.
// Phase 2, containerlab/vipmux.clab.yml (the canonical lab): mux1 runs `vipmux run` (its own
// BGP speaker with the BFD tie-in, BFD 100 ms × 3 to the edge), mux2 the same: ECMP over 2.
//
// Each trial blackholes one MUX (an nftables drop-all table in its namespace: a hung host,
// not a dead process) and measures from just before nft starts:
//   - BFD Down: FRR's first packet to that MUX with State Down / diag 1, timestamped on the
//     wire (tcpdump pcap on the edge; bfdd transmits at once on a state change);
//   - FIB: until the MUX's next hop is gone from the edge kernel's route (polling
//     `ip -j route show` in the edge namespace, ~5-10 ms per sample).
// After each trial the blackhole is lifted and the next waits for full ECMP and BFD Up.
import { type ChildProcess, spawn } from "node:child_process";
import { BfdDiag, BfdState, decodeControl } from "../src/bfd/packet.ts";
import { pollUntil, startLab, type TestLab } from "../src/lab/testing.ts";
import { run } from "../src/util/proc.ts";

const TRIALS = Number(process.argv[2] ?? 20);
const repo = new URL("../", import.meta.url).pathname;
const fixture = (f: string) => `${repo}test/fixtures/bfd-lab/${f}`;

interface Target {
  name: string;
  node: string;
  addr: string; // the MUX's address: FRR's BGP / BFD peer and the VIP's next hop
  bfd: boolean;
}
const targets: Target[] = [
  { name: "vipmux", node: "mux1", addr: "192.0.2.2", bfd: true },
  { name: "BIRD 2", node: "mux2", addr: "192.0.2.6", bfd: true },
  { name: "no BFD", node: "mux3", addr: "192.0.2.10", bfd: false },
];
const VIP = "20.20.20.100/32";
const NO_BFD_TRIALS = Number(process.argv[3] ?? 3);

interface FrrPeer {
  peer: string;
  status: string;
  uptime?: number;
  "remote-transmit-interval": number;
  "remote-receive-interval": number;
  "remote-detect-multiplier": number;
}

/**
 * Timestamps (ms, wall clock) of the edge's State Down / diag 1 packets, by destination.
 * tcpdump writes pcap to a pipe (its text decoder takes source port 49152 for a Broadcom LI
 * shim); the BFD payload is decoded with vipmux's own codec.
 */
class DownWatcher {
  private readonly events: { dst: string; atMs: number }[] = [];
  private readonly child: ChildProcess;
  packets = 0;
  constructor(netns: string) {
    this.child = spawn(
      "ip",
      [
        "netns",
        "exec",
        netns,
        "tcpdump",
        "-i",
        "any",
        "-n",
        "-U",
        "--immediate-mode",
        "-w",
        "-",
        "udp",
        "dst",
        "port",
        "3784",
      ],
      { stdio: ["ignore", "pipe", "ignore"] },
    );
    let buf = Buffer.alloc(0);
    let linkType = -1;
    this.child.stdout!.on("data", (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (linkType < 0) {
        if (buf.length < 24) return;
        linkType = buf.readUInt32LE(20);
        buf = buf.subarray(24);
      }
      while (buf.length >= 16) {
        const len = buf.readUInt32LE(8);
        if (buf.length < 16 + len) break;
        const atMs = buf.readUInt32LE(0) * 1000 + buf.readUInt32LE(4) / 1000;
        this.onPacket(linkType, buf.subarray(16, 16 + len), atMs);
        buf = buf.subarray(16 + len);
      }
    });
  }
  private onPacket(linkType: number, frame: Buffer, atMs: number): void {
    // LINUX_SLL (113): 16-byte header, protocol at 14; LINUX_SLL2 (276): 20 bytes, protocol at 0.
    const [hdr, proto] =
      linkType === 276 ? [20, frame.readUInt16BE(0)] : [16, frame.readUInt16BE(14)];
    const ip = frame.subarray(hdr);
    let dst: string;
    let udp: Buffer;
    if (proto === 0x0800) {
      dst = [...ip.subarray(16, 20)].join(".");
      udp = ip.subarray((ip[0]! & 0x0f) * 4);
    } else if (proto === 0x86dd) {
      const words: string[] = [];
      for (let i = 24; i < 40; i += 2) words.push(ip.readUInt16BE(i).toString(16));
      dst = words.join(":").replace(/(^|:)0(:0)+(:|$)/, "::");
      udp = ip.subarray(40);
    } else return;
    this.packets++;
    const r = decodeControl(udp.subarray(8));
    if (
      r.ok &&
      r.value.state === BfdState.Down &&
      r.value.diag === BfdDiag.ControlDetectionTimeExpired
    )
      this.events.push({ dst, atMs });
  }
  get count(): number {
    return this.events.length;
  }
  firstDownAfter(dst: string, t0: number): number | undefined {
    return this.events.find((e) => e.dst === dst && e.atMs >= t0)?.atMs;
  }
  stop(): void {
    this.child.kill();
  }
}

async function frrPeer(lab: TestLab, addr: string): Promise<FrrPeer | undefined> {
  const peers = await lab.vtyshJson<FrrPeer[]>("edge", "show bfd peers json");
  return peers.find((p) => p.peer === addr);
}

async function fibHops(lab: TestLab): Promise<string[]> {
  const out = await lab.must("edge", ["ip", "-j", "route", "show", VIP]);
  const routes = JSON.parse(out || "[]") as {
    gateway?: string;
    nexthops?: { gateway?: string }[];
  }[];
  const hops: string[] = [];
  for (const r of routes) {
    if (r.gateway) hops.push(r.gateway);
    for (const nh of r.nexthops ?? []) if (nh.gateway) hops.push(nh.gateway);
  }
  return hops;
}

/** Every MUX's next hop in the FIB and, for a BFD target, its session Up at 100 ms. */
async function steadyUp(lab: TestLab, t: Target, hops: number): Promise<void> {
  await pollUntil(
    async () => {
      if ((await fibHops(lab)).length !== hops) return false;
      if (!t.bfd) return true;
      const p = await frrPeer(lab, t.addr);
      return (
        p?.status === "up" &&
        p["remote-transmit-interval"] === 100 &&
        p["remote-receive-interval"] === 100 &&
        (p.uptime ?? 0) >= 1
      );
    },
    { timeoutMs: 120_000, intervalMs: 100, what: `${t.name}: VIP ECMP over ${hops} MUXes, BFD up` },
  );
}

const BLACKHOLE =
  "add table inet vmx_blackhole; add chain inet vmx_blackhole in { type filter hook input priority -300; policy drop; }; add chain inet vmx_blackhole out { type filter hook output priority -300; policy drop; }";

interface TrialResult {
  /** ms from just before nft started to FRR's BFD Down packet (BFD targets). */
  bfdDown?: number;
  /** ms from just before nft started to the next hop gone from the edge FIB. */
  fib: number;
  /** how long the nft call took (the blackhole lands somewhere inside it). */
  nft: number;
}

async function trial(
  lab: TestLab,
  watcher: DownWatcher,
  t: Target,
  hops: number,
): Promise<TrialResult> {
  const w0 = Date.now();
  await steadyUp(lab, t, hops);
  if (process.env.BFD_BENCH_DEBUG) console.log(`  (steady after ${Date.now() - w0} ms)`);
  await new Promise((r) => setTimeout(r, Math.random() * 100)); // random phase vs TX timers
  const t0 = Date.now();
  await lab.must(t.node, ["nft", BLACKHOLE]);
  const nft = Date.now() - t0;
  try {
    const fibAt = await pollUntil(
      async () => ((await fibHops(lab)).includes(t.addr) ? undefined : Date.now()),
      { timeoutMs: 30_000, intervalMs: 0, what: `${t.name} next hop gone from the edge FIB` },
    );
    const r: TrialResult = { fib: fibAt - t0, nft };
    if (t.bfd) {
      const at = await pollUntil(async () => watcher.firstDownAfter(t.addr, t0), {
        timeoutMs: 5000,
        intervalMs: 10,
        what: `FRR Down packet to ${t.name} (${watcher.count} Down of ${watcher.packets} packets seen)`,
      });
      r.bfdDown = at - t0;
    }
    return r;
  } finally {
    await lab.must(t.node, ["nft", "delete table inet vmx_blackhole"]);
    // ExaBGP notices its dead session only on its next write and then backs off for up to a
    // minute: restart it so the next trial starts sooner (the figure is already taken).
    restartSpeaker?.(t.node);
  }
}

let restartSpeaker: ((node: string) => void) | undefined;

function quantile(sorted: number[], q: number): number {
  // Nearest rank: with 20 samples, p99 is the largest.
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

if (process.getuid?.() !== 0) {
  console.error("bench/bfd.ts needs root (network namespaces, nftables, tcpdump)");
  process.exit(2);
}
const tcpdump = await run(["tcpdump", "--version"]);
if (tcpdump.code !== 0) {
  console.error("tcpdump is required");
  process.exit(2);
}

function stats(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  return {
    n: s.length,
    p50: quantile(s, 0.5),
    p99: quantile(s, 0.99),
    min: s[0]!,
    max: s.at(-1)!,
    mean: s.reduce((a, b) => a + b, 0) / s.length,
  };
}

const fmt = (x: number) => x.toFixed(1).padStart(9);

const DAEMON = !process.argv.includes("--no-daemon");
let lab: TestLab | undefined;
let watcher: DownWatcher | undefined;
const teardown = async () => {
  watcher?.stop();
  watcher = undefined;
  const l = lab;
  lab = undefined;
  if (l) await l.down();
};
// Ctrl-C or a kill: the lab (namespaces, FRR, BIRD, ExaBGP, vipmux) goes away with the bench.
for (const sig of ["SIGINT", "SIGTERM"] as const)
  process.on(sig, () => {
    console.error(`${sig}: tearing the lab down`);
    void teardown().finally(() => process.exit(130));
  });

const results = new Map<string, TrialResult[]>();

async function runTrials(l: TestLab, w: DownWatcher, plan: Target[], hops: number) {
  const seen = new Map<string, number>();
  for (const t of plan) {
    const i = seen.get(t.name) ?? 0;
    seen.set(t.name, i + 1);
    const r = await trial(l, w, t, hops);
    results.set(t.name, [...(results.get(t.name) ?? []), r]);
    process.stdout.write(
      `  trial ${String(i + 1).padStart(2)} ${t.name.padEnd(10)} BFD Down ${r.bfdDown === undefined ? "    -" : r.bfdDown.toFixed(1)} ms, FIB ${r.fib.toFixed(1)} ms (nft ${r.nft} ms)\n`,
    );
  }
}

/**
 * The whole vipmux MUX daemon (`vipmux run`: BGP speaker + BFD worker, BFD Down takes BGP
 * down at once) in the canonical lab (containerlab/vipmux.clab.yml, edge BFD profile
 * 100 ms × 3): blackhole mux1, time until the edge drops its next hop for the VIP.
 */
async function phaseDaemon(): Promise<void> {
  lab = await startLab(`${repo}containerlab/vipmux.clab.yml`, "bfdbenchd");
  watcher = new DownWatcher(lab.node("edge").netns);
  restartSpeaker = undefined; // the daemon re-establishes BGP by itself once BFD is Up
  const t: Target = { name: "vipmux run", node: "mux1", addr: "192.0.2.2", bfd: true };
  console.log(`The vipmux daemon (canonical lab, BGP + BFD tie-in): ${TRIALS} trials`);
  await runTrials(
    lab,
    watcher,
    Array.from({ length: TRIALS }, () => t),
    2,
  );
  await teardown();
}

/** vipmux BFD + ExaBGP, BIRD 2 and no BFD side by side (bfd-bgp.clab.yml). */
async function phaseReference(): Promise<void> {
  const l = await startLab(fixture("bfd-bgp.clab.yml"), "bfdbench");
  lab = l;
  const exabgp = (node: string, conf: string) =>
    l.spawn(
      node,
      [
        "env",
        "exabgp.daemon.user=root",
        "exabgp.daemon.daemonize=false",
        "exabgp.api.cli=false",
        "exabgp.log.destination=stdout",
        "exabgp",
        fixture(conf),
      ],
      `exabgp-${node}`,
    );
  l.spawn(
    "mux1",
    [
      process.execPath,
      fixture("bfd-peer.ts"),
      JSON.stringify({
        peers: [{ peer: "192.0.2.1", local: "192.0.2.2", intervalMs: 100, multiplier: 3 }],
      }),
    ],
    "vipmux-bfd",
  );
  l.spawn(
    "mux2",
    ["bird", "-f", "-c", fixture("bird-mux2-bgp.conf"), "-s", `${l.plan.dir}/bird.ctl`],
    "bird",
  );
  const speakers = new Map([
    ["mux1", { conf: "exabgp-mux1.conf", child: exabgp("mux1", "exabgp-mux1.conf") }],
    ["mux3", { conf: "exabgp-mux3.conf", child: exabgp("mux3", "exabgp-mux3.conf") }],
  ]);
  restartSpeaker = (node) => {
    const sp = speakers.get(node);
    if (!sp) return; // BIRD reconnects within a second by itself
    sp.child.kill("SIGKILL");
    sp.child = exabgp(node, sp.conf);
  };
  const w = new DownWatcher(l.node("edge").netns);
  watcher = w;
  console.log(
    `Blackholed MUX -> edge reaction at 100 ms × 3: ${TRIALS} trials each with BFD, ${NO_BFD_TRIALS} without`,
  );
  // BFD targets alternate so both see the same machine conditions; the slow no-BFD trials
  // come last.
  const plan: Target[] = [];
  for (let i = 0; i < TRIALS; i++) plan.push(...targets.filter((t) => t.bfd));
  for (let i = 0; i < NO_BFD_TRIALS; i++) plan.push(...targets.filter((t) => !t.bfd));
  await runTrials(l, w, plan, targets.length);
  await teardown();
}

function report(): void {
  console.log("");
  console.log(
    `${"".padEnd(12)}${"BFD Down at FRR (ms)".padStart(28)}${"next hop out of the edge FIB (ms)".padStart(40)}`,
  );
  console.log(
    `${"".padEnd(12)}${"p50".padStart(9)}${"p99".padStart(9)}${"max".padStart(9)}   ${"p50".padStart(9)}${"p99".padStart(9)}${"min".padStart(9)}${"max".padStart(9)}${"n".padStart(5)}`,
  );
  const summary: Record<
    string,
    { bfdDown?: ReturnType<typeof stats>; fib: ReturnType<typeof stats> }
  > = {};
  for (const [name, rs] of results) {
    const fib = stats(rs.map((r) => r.fib));
    const downs = rs.flatMap((r) => (r.bfdDown === undefined ? [] : [r.bfdDown]));
    const bfdDown = downs.length > 0 ? stats(downs) : undefined;
    summary[name] = { fib, ...(bfdDown ? { bfdDown } : {}) };
    console.log(
      `${name.padEnd(12)}${bfdDown ? fmt(bfdDown.p50) + fmt(bfdDown.p99) + fmt(bfdDown.max) : "        -        -        -"}   ${fmt(fib.p50)}${fmt(fib.p99)}${fmt(fib.min)}${fmt(fib.max)}${String(fib.n).padStart(5)}`,
    );
  }
  const b = summary["BIRD 2"];
  for (const name of ["vipmux", "vipmux run"]) {
    const v = summary[name];
    if (v && b)
      console.log(
        `${name}/BIRD FIB p50 ratio ${(v.fib.p50 / b.fib.p50).toFixed(2)}, p99 ratio ${(v.fib.p99 / b.fib.p99).toFixed(2)}; target p99 < 500 ms: ${v.fib.p99 < 500 ? "met" : "NOT met"}`,
      );
  }
  const nfts = [...results.values()].flat().map((r) => r.nft);
  console.log(
    `Times run from just before nft starts (nft itself took p50 ${stats(nfts).p50} ms). FRR's detection time is 300 ms after the last packet it got; the blackhole lands 0-100 ms after that packet.`,
  );
  console.log(JSON.stringify({ trials: TRIALS, noBfdTrials: NO_BFD_TRIALS, summary }));
}

try {
  await phaseReference();
  if (DAEMON) await phaseDaemon();
  report();
} catch (e) {
  console.error(e);
  process.exitCode = 1;
} finally {
  await teardown();
}
