// The forwarding worker: one worker_thread that owns the packet port and the Forwarder.
// Each readiness callback handles one batch (read up to `batchSize` packets, forward each,
// send the VXLAN output with one sendmmsg per family) and returns to the loop, so table
// snapshots, counter requests and the heartbeat timer run between batches and the thread
// never blocks longer than one batch. The main thread (BGP, BFD, health) never forwards.
//
// Per packet nothing is allocated: input and output packets live in two preallocated
// arenas of fixed-size slots, and the forwarder encapsulates straight into the output slot.
import { parentPort, workerData } from "node:worker_threads";
import { Forwarder, Verdict } from "./forwarder.ts";
import { MemoryPort, openPort, type PacketPort } from "./io/ports.ts";
import {
  type EngineCounters,
  type FromWorker,
  type IoCounters,
  LATENCY_BUCKETS,
  latencyBucket,
  StatusTime,
  StatusWord,
  type ToWorker,
  type WorkerOptions,
  WorkerState,
} from "./io/protocol.ts";
import { restoreTable } from "./tables.ts";

const VXLAN_OVERHEAD_V6 = 70;
/** Connection-table slots examined for idle entries per heartbeat tick. */
const EXPIRE_SLOTS_PER_TICK = 8192;

const { options, status, stall } = workerData as {
  options: WorkerOptions;
  status: SharedArrayBuffer;
  /** Failure tests only: the StallSwitch's word (src/dataplane/fault.ts). */
  stall: SharedArrayBuffer | undefined;
};
const words = new Int32Array(status);
const stallWord = stall === undefined ? undefined : new Int32Array(stall);
const times = new BigInt64Array(status);
const port0 = parentPort;
if (!port0) throw new Error("dataplane worker: not in a worker_thread");
const parent = port0;
const post = (m: FromWorker) => parent.postMessage(m);

const slot = options.slotSize;
const batch = Math.max(1, Math.min(256, options.batchSize));
const fwd = new Forwarder({ ...options.forwarder, maxPacket: slot - VXLAN_OVERHEAD_V6 });

const inArena = new Uint8Array(batch * slot);
const outArena = new Uint8Array(batch * slot);
const inLens = new Int32Array(batch);
const outLens = new Int32Array(batch);
const inViews: Uint8Array[] = [];
const outViews: Uint8Array[] = [];
for (let i = 0; i < batch; i++) {
  inViews.push(inArena.subarray(i * slot, (i + 1) * slot));
  outViews.push(outArena.subarray(i * slot, (i + 1) * slot));
}
const sendResult = new Int32Array(2);

let version = 0;
let readErrors = 0;
const MAX_CONSECUTIVE_READ_ERRORS = 1000;
const io: IoCounters = {
  batches: 0,
  rxPackets: 0,
  rxBytes: 0,
  txPackets: 0,
  txBytes: 0,
  txFailed: 0,
  lastTxErrno: 0,
  rxOversize: 0,
  rxErrors: 0,
  batchLatencyUs: new Array<number>(LATENCY_BUCKETS).fill(0),
  maxBatch: 0,
};
const latency = new Float64Array(LATENCY_BUCKETS);

/** Verdicts of the packets of the batches run for an inject (memory port only). */
let collect: { verdicts: number[]; out: Uint8Array[] } | undefined;

let port: PacketPort;
try {
  port = openPort(options.io, options.socketBufferBytes);
} catch (e) {
  Atomics.store(words, StatusWord.state, WorkerState.failed);
  post({ type: "failed", message: (e as Error).message });
  process.exit(1);
}

function alive(now: number): void {
  Atomics.store(times, StatusTime.aliveAt, BigInt(now));
}

/** Failure tests only: blocks the whole thread while the StallSwitch is on. */
function stallIfAsked(): void {
  if (stallWord === undefined) return;
  while (Atomics.load(stallWord, 0) === 1) Atomics.wait(stallWord, 0, 1);
}

function runBatch(): void {
  stallIfAsked();
  const t0 = performance.now();
  let n: number;
  try {
    n = port.read(inArena, slot, inLens, batch);
    readErrors = 0;
  } catch (e) {
    io.rxErrors++;
    // The poll is level-triggered: a device that keeps failing (deleted under us) would
    // spin this thread. Give up loudly; the Dataplane reports it through onFailure.
    if (++readErrors >= MAX_CONSECUTIVE_READ_ERRORS)
      fail(`packet input failed ${readErrors} times in a row: ${(e as Error).message}`);
    return;
  }
  const now = Date.now();
  alive(now);
  if (n === 0) return;
  let k = 0;
  let rxBytes = 0;
  for (let i = 0; i < n; i++) {
    const len = inLens[i]!;
    if (len === 0) continue; // not for us (AF_PACKET: own output, non-IP)
    io.rxPackets++;
    if (len > slot) {
      io.rxOversize++;
      collect?.verdicts.push(Verdict.tooBig);
      continue;
    }
    rxBytes += len;
    fwd.setOutput(outViews[k]!); // encapsulate straight into the send slot
    const v = fwd.forward(inViews[i]!, len, now);
    collect?.verdicts.push(v);
    if (v === Verdict.forward) outLens[k++] = fwd.outLength;
  }
  io.rxBytes += rxBytes;
  if (k > 0) {
    port.send(outArena, slot, outLens, k, sendResult);
    const sent = sendResult[0]!;
    io.txPackets += sent;
    if (sent === k) for (let i = 0; i < k; i++) io.txBytes += outLens[i]!;
    if (sent < k) {
      io.txFailed += k - sent;
      io.lastTxErrno = sendResult[1]!;
    }
    Atomics.store(times, StatusTime.forwardedAt, BigInt(now));
    if (collect && port instanceof MemoryPort) collect.out.push(...port.sent);
  }
  io.batches++;
  if (n > io.maxBatch) io.maxBatch = n;
  latency[latencyBucket((performance.now() - t0) * 1000)]!++;
}

function counters(): EngineCounters {
  return {
    ...fwd.counters(),
    tableVersion: version,
    io: { ...io, batchLatencyUs: Array.from(latency) },
  };
}

function onTable(snapshot: unknown): void {
  const restored = restoreTable(snapshot);
  if (typeof restored === "string") {
    const v = (snapshot as { version?: number })?.version ?? 0;
    post({ type: "applied", version: v, ok: false, problems: [restored] });
    return;
  }
  if (restored.version <= version) {
    post({
      type: "applied",
      version: restored.version,
      ok: false,
      problems: [`version ${restored.version} is not newer than ${version}`],
    });
    return;
  }
  const r = fwd.setTable(restored.table);
  if (!r.ok) {
    post({ type: "applied", version: restored.version, ok: false, problems: r.error });
    return;
  }
  version = restored.version;
  Atomics.store(words, StatusWord.appliedVersion, version);
  post({ type: "applied", version, ok: true, problems: [] });
}

function onInject(id: number, packets: Uint8Array, lengths: Int32Array): void {
  if (!(port instanceof MemoryPort)) {
    post({
      type: "injected",
      id,
      verdicts: new Uint8Array(0),
      out: new Uint8Array(0),
      outLengths: new Int32Array(0),
      version,
    });
    return;
  }
  collect = { verdicts: [], out: [] };
  port.push(packets, lengths);
  while (port.pending) port.kick();
  const c = collect;
  collect = undefined;
  const outLengths = Int32Array.from(c.out.map((p) => p.length));
  const out = new Uint8Array(outLengths.reduce((a, b) => a + b, 0));
  let off = 0;
  for (const p of c.out) {
    out.set(p, off);
    off += p.length;
  }
  post({ type: "injected", id, verdicts: Uint8Array.from(c.verdicts), out, outLengths, version });
}

let heartbeat: NodeJS.Timeout | undefined;

/** The port is unusable: release it and end the worker with a reason (exit code 1). */
function fail(reason: string): void {
  if (heartbeat) clearInterval(heartbeat);
  try {
    port.close();
  } catch {
    // already broken; the reason below is what matters
  }
  Atomics.store(words, StatusWord.state, WorkerState.failed);
  post({ type: "failed", message: reason });
  process.exit(1);
}

function stop(): void {
  Atomics.store(words, StatusWord.state, WorkerState.stopping);
  if (heartbeat) clearInterval(heartbeat);
  port.close();
  Atomics.store(words, StatusWord.state, WorkerState.stopped);
  post({ type: "stopped" });
  parent.close();
}

parent.on("message", (m: ToWorker) => {
  stallIfAsked();
  alive(Date.now());
  switch (m.type) {
    case "table":
      onTable(m.snapshot);
      break;
    case "counters":
      post({ type: "counters", id: m.id, counters: counters() });
      break;
    case "inject":
      onInject(m.id, m.packets, m.lengths);
      break;
    case "lookup":
      post({ type: "lookup", id: m.id, result: fwd.lookup(m.packet, m.packet.length, Date.now()) });
      break;
    case "stop":
      stop();
      break;
  }
});

heartbeat = setInterval(() => {
  stallIfAsked();
  const now = Date.now();
  alive(now);
  // Idle connection-table entries are reclaimed a slice at a time between batches.
  fwd.expire(now, EXPIRE_SLOTS_PER_TICK);
}, options.heartbeatIntervalMs);
port.start((errno) => {
  // libuv stops a poll whose fd reports an error (e.g. the TUN device was deleted): no
  // more packets will come. End the worker so onFailure fires, rather than keep a
  // heartbeat that says "alive" while nothing can be forwarded. Nothing may throw out of
  // this callback (it is called from C): any error ends the worker the same way.
  if (errno !== 0) {
    fail(`packet input failed (poll errno ${errno})`);
    return;
  }
  try {
    runBatch();
  } catch (e) {
    fail(`forwarding failed: ${(e as Error).stack ?? String(e)}`);
  }
});
alive(Date.now());
Atomics.store(words, StatusWord.state, WorkerState.running);
post({ type: "ready" });
