// `node bench/dataplane.ts` (also run by `npm run bench`): the userspace MUX engine against
// the kernel, on the same lab path, in one run.
//
//   (a) plain kernel IP forwarding: client → edge → mux1 (kernel forwards) → edge → host1
//   (b) vipmux:                     client → edge → mux1 (TUN → engine → VXLAN) → edge → hosts
//   (b') the same engine with AF_PACKET input instead of TUN (the measured alternative)
//   (c)  the TUN engine alone: its VXLAN output goes into a local veth sink in mux1, so
//        the edge's and hosts' kernel work (which sendmmsg runs on the engine's core in a
//        veth lab) is not counted against it
//
// Load: 64-byte IPv4/UDP packets (20 + 8 + 36 bytes) over 4,096 flows (source ports), from
// a Node generator in the client namespace that sends pre-built packets through a raw
// socket with sendmmsg (the engine's own addon), for a fixed time. Throughput = packets
// that reached the hosts' uplinks per second (interface counters), at the highest rate
// the generator offers. Latency at moderate load: the generator stamps CLOCK_MONOTONIC
// into each packet, a receiver on host1 reads it back (plain UDP for (a), the inner packet
// of the VXLAN datagram for (b)); added latency = (b) - (a), p50 and p99.
//
// Bounded (a few seconds per phase), lab addresses only, namespaces torn down in finally.
// Needs root and the built addon; prints why and exits 0 otherwise.
import { type ChildProcess, spawn } from "node:child_process";
import { createSocket } from "node:dgram";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { histogramQuantileUs } from "../src/dataplane/io/protocol.ts";

const root = fileURLToPath(new URL("../", import.meta.url));
const self = fileURLToPath(import.meta.url);
const FLOWS = 4096;
/** Throughput runs per configuration; the best one counts. */
const ROUNDS = 3;
const PACKET_BYTES = 64;
const PAYLOAD_OFFSET = 28; // IPv4 (20) + UDP (8)
const VXLAN_INNER_PAYLOAD_OFFSET = 8 + 14 + PAYLOAD_OFFSET; // in the VXLAN UDP payload

// ---------------------------------------------------------------------------------------
// Generator (runs in the client namespace): --gen DST PORT SECONDS RATE(0 = max)

async function generator(dst: string, port: number, seconds: number, rate: number) {
  const { packetIo } = await import("../src/dataplane/io/native.ts");
  const io = packetIo();
  const batch = 64;
  const arena = new Uint8Array(FLOWS * PACKET_BYTES);
  const d = dst.split(".").map(Number);
  for (let f = 0; f < FLOWS; f++) {
    const o = f * PACKET_BYTES;
    const sport = 10000 + f;
    arena.set([0x45, 0, 0, PACKET_BYTES, 0, 0, 0, 0, 64, 17, 0, 0, 203, 0, 113, 10, ...d], o);
    arena.set([sport >> 8, sport & 255, port >> 8, port & 255, 0, PACKET_BYTES - 20, 0, 0], o + 20);
  }
  const view = new DataView(arena.buffer);
  const lens = new Int32Array(FLOWS).fill(PACKET_BYTES);
  const fd = io.rawOpen(4, 4 << 20);
  const result = new Int32Array(2);
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  const t0 = process.hrtime.bigint();
  const end = t0 + BigInt(Math.round(seconds * 1e9));
  let sent = 0;
  let next = 0;
  for (;;) {
    const now = process.hrtime.bigint();
    if (now >= end) break;
    let n = batch;
    if (rate > 0) {
      const due = Math.floor((Number(now - t0) / 1e9) * rate) - sent;
      if (due <= 0) {
        Atomics.wait(sleeper, 0, 0, 0.2);
        continue;
      }
      n = Math.min(batch, due);
    }
    if (next + n > FLOWS) next = 0;
    if (rate > 0) {
      const ts = process.hrtime.bigint();
      for (let i = 0; i < n; i++) view.setBigUint64((next + i) * PACKET_BYTES + PAYLOAD_OFFSET, ts);
    }
    io.sendBatch(
      fd,
      -1,
      arena.subarray(next * PACKET_BYTES),
      PACKET_BYTES,
      lens.subarray(next),
      n,
      result,
    );
    sent += result[0]!;
    next += n;
  }
  io.closeFd(fd);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(JSON.stringify({ sent, seconds: secs }));
}

// ---------------------------------------------------------------------------------------
// Receiver (runs in host1): --recv PORT OFFSET SECONDS -> latency quantiles in µs

async function receiver(port: number, offset: number, seconds: number) {
  const lat: number[] = [];
  const sock = createSocket("udp4");
  sock.on("message", (msg) => {
    if (msg.length < offset + 8) return;
    const ts = msg.readBigUInt64BE(offset);
    lat.push(Number(process.hrtime.bigint() - ts) / 1000);
  });
  await new Promise<void>((r) => sock.bind(port, "0.0.0.0", () => r()));
  console.log("ready");
  await new Promise((r) => setTimeout(r, seconds * 1000));
  sock.close();
  lat.sort((a, b) => a - b);
  const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? 0;
  console.log(JSON.stringify({ count: lat.length, p50: q(0.5), p99: q(0.99) }));
}

// ---------------------------------------------------------------------------------------
// Orchestration (root namespace)

interface Lab {
  exec(node: string, argv: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  must(node: string, argv: string[], opts?: { input?: string }): Promise<string>;
  spawn(node: string, argv: string[], log: string): ChildProcess;
  node(name: string): { netns: string };
  plan: { dir: string };
  down(): Promise<unknown>;
}

function inNs(lab: Lab, node: string, argv: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn("ip", ["netns", "exec", lab.node(node).netns, ...argv], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    c.stdout.on("data", (d: Buffer) => {
      out += d;
    });
    c.stderr.on("data", (d: Buffer) => {
      err += d;
    });
    const timer = setTimeout(() => c.kill("SIGKILL"), 60_000);
    c.on("exit", (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${node}: ${argv.join(" ")}: exit ${code}: ${err || out}`));
    });
  });
}

async function rxPackets(lab: Lab, node: string): Promise<number> {
  const j = JSON.parse(await lab.must(node, ["ip", "-j", "-s", "link", "show", "eth1"])) as {
    stats64: { rx: { packets: number } };
  }[];
  return j[0]!.stats64.rx.packets;
}

async function hostsRx(lab: Lab): Promise<number> {
  return (await rxPackets(lab, "host1")) + (await rxPackets(lab, "host2"));
}

async function throughput(
  lab: Lab,
  dst: string,
  port: number,
  seconds: number,
  received: () => Promise<number> = () => hostsRx(lab),
) {
  const before = await received();
  const g = JSON.parse(
    await inNs(lab, "client", [
      process.execPath,
      self,
      "--gen",
      dst,
      String(port),
      String(seconds),
      "0",
    ]),
  ) as { sent: number; seconds: number };
  await new Promise((r) => setTimeout(r, 300));
  const got = (await received()) - before;
  return { offeredPps: g.sent / g.seconds, pps: got / g.seconds, received: got, sent: g.sent };
}

async function latency(lab: Lab, dst: string, port: number, recvPort: number, offset: number) {
  const seconds = 2;
  const rate = 20_000;
  const recv = spawn(
    "ip",
    [
      "netns",
      "exec",
      lab.node("host1").netns,
      process.execPath,
      self,
      "--recv",
      String(recvPort),
      String(offset),
      String(seconds + 2),
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  let out = "";
  recv.stdout!.on("data", (d: Buffer) => {
    out += d;
  });
  const deadline = Date.now() + 10_000;
  while (!out.includes("ready") && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 50));
  await inNs(lab, "client", [
    process.execPath,
    self,
    "--gen",
    dst,
    String(port),
    String(seconds),
    String(rate),
  ]);
  await new Promise<void>((r) => recv.once("exit", () => r()));
  const last = out.trim().split("\n").pop()!;
  return JSON.parse(last) as { count: number; p50: number; p99: number };
}

/** CPU seconds (user + system) a process has used, from /proc/PID/stat (100 ticks/s). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
}

interface EngineRun {
  pps: number;
  offeredPps: number;
  cpuPerSecond: number;
  engineRx: number;
  engineTx: number;
  meanBatch: number;
  tunDropped: number;
}

/** Throughput through an engine, with its CPU use, batches and the TUN queue's drops. */
async function engineThroughput(
  lab: Lab,
  child: ChildProcess,
  statusFile: string,
  seconds: number,
  tun: boolean,
  received?: () => Promise<number>,
): Promise<EngineRun> {
  const io = () =>
    (JSON.parse(readFileSync(statusFile, "utf8")) as { counters: { io: Record<string, number> } })
      .counters.io;
  const tunDrops = async () => {
    if (!tun) return 0;
    const j = JSON.parse(await lab.must("mux1", ["ip", "-j", "-s", "link", "show", "vipmux0"])) as {
      stats64: { tx: { dropped: number } };
    }[];
    return j[0]!.stats64.tx.dropped;
  };
  const io0 = io();
  const d0 = await tunDrops();
  const cpu0 = cpuSeconds(child.pid!);
  const r = await throughput(lab, "20.20.20.100", 7, seconds, received);
  const cpu = cpuSeconds(child.pid!) - cpu0;
  await new Promise((res) => setTimeout(res, 700)); // one more counters write
  const io1 = io();
  const rx = io1.rxPackets! - io0.rxPackets!;
  return {
    ...r,
    cpuPerSecond: cpu / seconds,
    engineRx: rx,
    engineTx: io1.txPackets! - io0.txPackets!,
    meanBatch: rx / Math.max(1, io1.batches! - io0.batches!),
    tunDropped: (await tunDrops()) - d0,
  };
}

async function waitFor(what: string, fn: () => Promise<boolean>, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await fn().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function engine(lab: Lab, io: "tun" | "packet", statusFile: string): Promise<ChildProcess> {
  const child = lab.spawn(
    "mux1",
    [
      process.execPath,
      `${root}src/dataplane/run-engine.ts`,
      "--config",
      `${root}containerlab/mux1.yml`,
      "--io",
      io,
      "--counters",
      statusFile,
    ],
    `engine-${io}`,
  );
  await waitFor(
    `the ${io} engine`,
    async () =>
      existsSync(statusFile) &&
      (JSON.parse(readFileSync(statusFile, "utf8")) as { counters: { tableVersion: number } })
        .counters.tableVersion === 1,
  );
  return child;
}

async function stopChild(c: ChildProcess) {
  if (c.exitCode !== null) return;
  const exited = new Promise<void>((r) => c.once("exit", () => r()));
  c.kill("SIGTERM");
  await Promise.race([exited, new Promise((r) => setTimeout(r, 3_000))]);
}

async function orchestrate(seconds: number) {
  if (process.getuid?.() !== 0) {
    console.log("bench/dataplane: skipped (needs root for lab namespaces)");
    return;
  }
  if (!existsSync(`${root}build/Release/vipmux_native.node`)) {
    console.log("bench/dataplane: skipped (native addon not built: npm exec node-gyp -- rebuild)");
    return;
  }
  const { startLab } = await import("../src/lab/testing.ts");
  const lab = (await startLab(`${root}containerlab/vipmux.clab.yml`, "bdp", {
    skipCmd: true,
  })) as unknown as Lab;
  const children: ChildProcess[] = [];
  try {
    const sysctl = (node: string, kv: string) => lab.must(node, ["sysctl", "-qw", kv]);
    // (a) the kernel: the edge sends client traffic for host1's PA through mux1.
    await lab.must("edge", [
      "ip",
      "rule",
      "add",
      "iif",
      "eth1",
      "to",
      "198.51.100.2/32",
      "lookup",
      "100",
    ]);
    await lab.must("edge", ["ip", "route", "add", "default", "via", "192.0.2.2", "table", "100"]);
    await sysctl("mux1", "net.ipv4.ip_forward=1");
    await lab.must("client", ["ping", "-c", "1", "-W", "2", "198.51.100.2"]);
    // (b) vipmux with TUN input; the edge routes the VIP to mux1 (static, no BGP here).
    // (a) and (b) alternate, best of ROUNDS each: the machine is shared, so a single run
    // measures the neighbours as much as the path.
    await lab.must("edge", ["ip", "route", "add", "20.20.20.100/32", "via", "192.0.2.2"]);
    const tunStatus = `${lab.plan.dir}/engine-tun.json`;
    const tun = await engine(lab, "tun", tunStatus);
    children.push(tun);
    let a: { pps: number; offeredPps: number } | undefined;
    let b: EngineRun | undefined;
    for (let round = 0; round < ROUNDS; round++) {
      const ra = await throughput(lab, "198.51.100.2", 9, seconds);
      if (!a || ra.pps > a.pps) a = ra;
      const rb = await engineThroughput(lab, tun, tunStatus, seconds, true);
      if (!b || rb.pps > b.pps) b = rb;
    }
    const aLat = await latency(lab, "198.51.100.2", 9, 9, 0);
    const hist = () =>
      (
        JSON.parse(readFileSync(tunStatus, "utf8")) as {
          counters: { io: { batchLatencyUs: number[] } };
        }
      ).counters.io.batchLatencyUs;
    const h0 = hist();
    const bLat = await latency(lab, "20.20.20.100", 7, 4789, VXLAN_INNER_PAYLOAD_OFFSET);
    await new Promise((r) => setTimeout(r, 700)); // one more status write
    const batchHist = hist().map((n, i) => n - (h0[i] ?? 0));
    // (c) the engine alone: mux1 sends the VXLAN output into a local veth whose peer drops
    // everything at ingress, so the edge and host kernels' work leaves the engine's core.
    for (const cmd of [
      "ip link add vmxsink0 type veth peer name vmxsink1",
      "ip link set vmxsink0 up",
      "ip link set vmxsink1 up",
      "ip route add 198.51.100.0/24 dev vmxsink0",
      "ip neigh add 198.51.100.2 lladdr 02:00:00:00:00:01 dev vmxsink0",
      "ip neigh add 198.51.100.6 lladdr 02:00:00:00:00:01 dev vmxsink0",
    ])
      await lab.must("mux1", cmd.split(" "));
    await lab.must("mux1", ["nft", "-f", "-"], {
      input:
        "table netdev vmxsink { chain in { type filter hook ingress device vmxsink1 priority 0; policy drop; }; }",
    });
    const alone = await engineThroughput(lab, tun, tunStatus, seconds, true, () =>
      lab
        .must("mux1", ["ip", "-j", "-s", "link", "show", "vmxsink1"])
        .then(
          (o) =>
            (JSON.parse(o) as { stats64: { rx: { packets: number } } }[])[0]!.stats64.rx.packets,
        ),
    );
    await lab.must("mux1", ["ip", "link", "del", "vmxsink0"]);
    await stopChild(tun);

    // (b') AF_PACKET input: the kernel must not forward VIP packets itself.
    await sysctl("mux1", "net.ipv4.ip_forward=0");
    await sysctl("mux1", "net.ipv6.conf.all.forwarding=0");
    const pktStatus = `${lab.plan.dir}/engine-packet.json`;
    const pkt = await engine(lab, "packet", pktStatus);
    children.push(pkt);
    let c: EngineRun | undefined;
    for (let round = 0; round < ROUNDS; round++) {
      const rc = await engineThroughput(lab, pkt, pktStatus, seconds, false);
      if (!c || rc.pps > c.pps) c = rc;
    }
    await stopChild(pkt);
    if (!a || !b || !c) throw new Error("no measurement");

    const k = (x: number) => `${(x / 1000).toFixed(1)} kpps`;
    const row = (label: string, r: { pps: number; offeredPps: number }) =>
      console.log(`${label.padEnd(46)} ${k(r.pps).padStart(12)}   (offered ${k(r.offeredPps)})`);
    console.log(
      `64-byte UDP, ${FLOWS} flows, best of ${ROUNDS} runs of ${seconds} s, 2-core machine shared by generator, kernel and engine`,
    );
    row("(a) kernel IP forwarding via mux1", a);
    row("(b) vipmux engine, TUN in / raw sendmmsg out", b);
    row("(b') vipmux engine, AF_PACKET in / raw sendmmsg out", c);
    row("(c) engine alone (TUN; output into a local sink)", alone);
    console.log(
      `ratio b/a ${(b.pps / a.pps).toFixed(2)} (target >= 0.5); b'/a ${(c.pps / a.pps).toFixed(2)}`,
    );
    for (const [name, e] of [
      ["(b)", b],
      ["(b')", c],
      ["(c)", alone],
    ] as const) {
      console.log(
        `${name} engine: read ${e.engineRx}, sent ${e.engineTx}, ${e.meanBatch.toFixed(1)} packets/batch, ${(e.cpuPerSecond * 100).toFixed(0)}% of a core (${((e.cpuPerSecond * 1e6) / Math.max(1, e.pps)).toFixed(2)} µs CPU per packet, send path included)${e.tunDropped ? `, TUN queue dropped ${e.tunDropped}` : ""}`,
      );
    }
    console.log(
      `latency at 20 kpps: (a) p50 ${aLat.p50.toFixed(0)} µs p99 ${aLat.p99.toFixed(0)} µs (${aLat.count} samples); (b) p50 ${bLat.p50.toFixed(0)} µs p99 ${bLat.p99.toFixed(0)} µs (${bLat.count} samples)`,
    );
    console.log(
      `(b) engine batch processing (read → send) during the latency run: p50 < ${histogramQuantileUs(batchHist, 0.5)} µs, p99 < ${histogramQuantileUs(batchHist, 0.99)} µs, max < ${histogramQuantileUs(batchHist, 1)} µs`,
    );
    console.log(
      `added latency (b - a): p50 ${(bLat.p50 - aLat.p50).toFixed(0)} µs, p99 ${(bLat.p99 - aLat.p99).toFixed(0)} µs`,
    );
  } finally {
    for (const c of children) await stopChild(c);
    await lab.down();
  }
}

const { values, positionals } = parseArgs({
  options: { gen: { type: "boolean" }, recv: { type: "boolean" }, seconds: { type: "string" } },
  allowPositionals: true,
  strict: false, // `npm run bench -- ...` passes the umbrella's arguments to every bench
});
if (values.gen) {
  const [dst, port, seconds, rate] = positionals;
  await generator(dst!, Number(port), Number(seconds), Number(rate));
} else if (values.recv) {
  const [port, offset, seconds] = positionals;
  await receiver(Number(port), Number(offset), Number(seconds));
} else {
  await orchestrate(Number(values.seconds ?? 2));
}
