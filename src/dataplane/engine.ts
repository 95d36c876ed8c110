// Dataplane: the only surface of the userspace MUX engine the controller sees (undici-style:
// workers, sockets and devices stay behind it).
//
//   const dp = new Dataplane({ io: { kind: "tun" }, localV4: "192.0.2.2" });
//   await dp.start();
//   await dp.apply(serviceModelFromConfig(config, healthStates)); // after every change
//   const c = await dp.counters();     // per VIP / backend, drops by reason, batches
//   dp.heartbeat.ageMs                 // > a few intervals: the MUX cannot forward
//   await dp.stop();
//
// Forwarding runs in a worker_thread; the main thread only builds tables (Maglev included)
// and posts them as versioned snapshots (tables.ts). With the TUN engine the Dataplane
// also routes each VIP of the table into the device and removes the routes of VIPs that
// left, and turns on IP forwarding in its namespace (the kernel hands VIP traffic to the
// TUN only as forwarded traffic).
import { readFileSync, writeFileSync } from "node:fs";
import { Worker } from "node:worker_threads";
import { buildForwardingTable, type ForwardingTable } from "../lb/forwarding-table.ts";
import type { ServiceModel } from "../lb/service.ts";
import { buildFlowPacket, type FlowQuery } from "../packet/build.ts";
import { run } from "../util/proc.ts";
import type { StallSwitch } from "./fault.ts";
import type { FlowLookup, ForwarderOptions } from "./forwarder.ts";
import {
  type EngineCounters,
  type FromWorker,
  type IoOptions,
  STATUS_BYTES,
  StatusTime,
  StatusWord,
  type ToWorker,
  type WorkerOptions,
  WorkerState,
} from "./io/protocol.ts";
import { snapshotTable, tableVips } from "./tables.ts";

export { type FlowQuery, FlowQueryError } from "../packet/build.ts";
/**
 * The hosts' VXLAN device MAC (host agent `inner-mac` default): the inner Ethernet
 * destination with `perDipMac: false`. By default the inner destination is the chosen
 * DIP's own MAC (`dipMac`, src/lb/dip-mac.ts), which the host agent maps back to that DIP.
 */
export { DEFAULT_INNER_DST_MAC, type FlowLookup } from "./forwarder.ts";
/** The MUX's overlay MAC (inner Ethernet source). */
export const DEFAULT_INNER_SRC_MAC = "02:76:6d:78:00:02";
export const DEFAULT_TUN_NAME = "vipmux0";
/** 1500-byte underlay minus the IPv6 VXLAN overhead (70): the encapsulated packet fits. */
export const DEFAULT_TUN_MTU = 1430;

export type DataplaneIo =
  | { readonly kind: "tun"; readonly name?: string; readonly mtu?: number }
  | { readonly kind: "packet"; readonly interface: string; readonly mtu?: number }
  | { readonly kind: "memory"; readonly mtu?: number };

export interface DataplaneOptions {
  readonly io: DataplaneIo;
  /** The MUX's underlay addresses (VXLAN outer source) for IPv4 / IPv6 hosts. */
  readonly localV4?: string;
  readonly localV6?: string;
  /**
   * Inner Ethernet destination = the chosen DIP's MAC (default true: the host honours the
   * MUX's choice). false: every packet carries `innerDstMac`, the hosts' device MAC, and
   * the host picks among its DIPs itself (host agents without per-DIP MACs).
   */
  readonly perDipMac?: boolean;
  readonly innerDstMac?: string;
  readonly innerSrcMac?: string;
  readonly vxlanPort?: number;
  /** Connection table capacity (config `dataplane.flow-table-size`). */
  readonly flowTableSize?: number;
  /** Second-chance grace period in ms (config `dataplane.second-chance`; default 0: off). */
  readonly secondChanceMs?: number;
  /** Packets per batch, 1..256 (default 64). */
  readonly batchSize?: number;
  /** Worker heartbeat period (default 100 ms). */
  readonly heartbeatIntervalMs?: number;
  /** TUN only: route the table's VIPs into the device (default true). */
  readonly routeVips?: boolean;
  /** TUN only: set net.ipv4.ip_forward and net.ipv6.conf.all.forwarding (default true). */
  readonly enableForwarding?: boolean;
  readonly socketBufferBytes?: number;
  /** Log lines (start, stop, table applied); default: none. */
  readonly log?: (line: string) => void;
  /**
   * Called once if the worker dies while running (not after stop()): the MUX cannot
   * forward anymore and should withdraw its VIPs. The heartbeat stops growing too.
   */
  readonly onFailure?: (error: Error) => void;
  /**
   * Failure tests only: a switch that stalls the worker (src/dataplane/fault.ts). Not part
   * of what the controller sees; production engines have none.
   */
  readonly stall?: StallSwitch;
}

export interface ApplyResult {
  readonly version: number;
  /** Maglev tables rebuilt (others were reused), and the build time. */
  readonly maglevBuilt: number;
  readonly buildMs: number;
  readonly vips: readonly string[];
}

export interface Heartbeat {
  /** Last time (epoch ms) the worker's loop ran; 0 before start. */
  readonly aliveAt: number;
  /** Last batch that forwarded a packet (epoch ms; 0: none yet). */
  readonly forwardedAt: number;
  /** now - aliveAt: the MUX self-health signal (a stalled or dead worker grows it). */
  readonly ageMs: number;
  readonly running: boolean;
}

export interface InjectResult {
  readonly verdicts: Uint8Array;
  readonly outputs: Uint8Array[];
  readonly version: number;
}

export class DataplaneError extends Error {
  readonly problems: readonly string[];
  constructor(message: string, problems: readonly string[] = []) {
    super(problems.length > 0 ? `${message}: ${problems.join("; ")}` : message);
    this.name = "DataplaneError";
    this.problems = problems;
  }
}

interface Pending<T> {
  resolve: (v: T) => void;
  reject: (e: Error) => void;
  timer?: NodeJS.Timeout;
}

export class Dataplane {
  private readonly options: DataplaneOptions;
  private readonly status = new SharedArrayBuffer(STATUS_BYTES);
  private readonly words = new Int32Array(this.status);
  private readonly times = new BigInt64Array(this.status);
  private worker: Worker | undefined;
  private table: ForwardingTable | undefined;
  private nextVersion = 1;
  private nextId = 1;
  private routed = new Set<string>();
  private readonly applies = new Map<number, Pending<boolean>>();
  private readonly requests = new Map<number, Pending<FromWorker>>();
  private stopped: Promise<void> | undefined;
  private exitError: Error | undefined;
  private exited = false;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(options: DataplaneOptions) {
    this.options = options;
  }

  get tunName(): string | undefined {
    return this.options.io.kind === "tun" ? (this.options.io.name ?? DEFAULT_TUN_NAME) : undefined;
  }

  /** Version of the table the worker forwards with (0: none). */
  get appliedVersion(): number {
    return Atomics.load(this.words, StatusWord.appliedVersion);
  }

  get heartbeat(): Heartbeat {
    const aliveAt = Number(Atomics.load(this.times, StatusTime.aliveAt));
    const forwardedAt = Number(Atomics.load(this.times, StatusTime.forwardedAt));
    return {
      aliveAt,
      forwardedAt,
      ageMs: aliveAt === 0 ? Number.POSITIVE_INFINITY : Math.max(0, Date.now() - aliveAt),
      running: Atomics.load(this.words, StatusWord.state) === WorkerState.running,
    };
  }

  /** Starts the worker and opens the packet port; resolves when it is forwarding. */
  async start(): Promise<void> {
    if (this.worker) throw new DataplaneError("already started");
    const o = this.options;
    const mtu = o.io.mtu ?? DEFAULT_TUN_MTU;
    let io: IoOptions;
    if (o.io.kind === "tun") io = { kind: "tun", name: this.tunName!, mtu };
    else if (o.io.kind === "packet") io = { kind: "packet", interface: o.io.interface };
    else io = { kind: "memory" };
    const forwarder: ForwarderOptions = {
      ...(o.innerDstMac !== undefined ? { innerDstMac: o.innerDstMac } : {}),
      ...(o.perDipMac !== undefined ? { perDipMac: o.perDipMac } : {}),
      innerSrcMac: o.innerSrcMac ?? DEFAULT_INNER_SRC_MAC,
      ...(o.localV4 !== undefined ? { localV4: o.localV4 } : {}),
      ...(o.localV6 !== undefined ? { localV6: o.localV6 } : {}),
      ...(o.vxlanPort !== undefined ? { vxlanPort: o.vxlanPort } : {}),
      conn: { capacity: o.flowTableSize ?? 1_000_000 },
      ...(o.secondChanceMs ? { secondChanceMs: o.secondChanceMs } : {}),
    };
    const options: WorkerOptions = {
      io,
      forwarder,
      batchSize: o.batchSize ?? 64,
      slotSize: Math.ceil((mtu + 70) / 64) * 64,
      heartbeatIntervalMs: o.heartbeatIntervalMs ?? 100,
      socketBufferBytes: o.socketBufferBytes ?? 4 << 20,
    };
    if (o.io.kind === "tun" && o.enableForwarding !== false) enableForwarding();
    if (o.io.kind === "packet") refuseKernelForwarding();
    const file = new URL(
      import.meta.url.endsWith(".ts") ? "./worker.ts" : "./worker.js",
      import.meta.url,
    );
    const started = performance.now();
    const worker = new Worker(file, {
      workerData: { options, status: this.status, stall: o.stall?.word.buffer },
    });
    this.worker = worker;
    await new Promise<void>((resolve, reject) => {
      const onMessage = (m: FromWorker) => {
        if (m.type === "ready") {
          worker.off("message", onMessage);
          resolve();
        } else if (m.type === "failed") {
          worker.off("message", onMessage);
          reject(new DataplaneError(`dataplane worker failed to start: ${m.message}`));
        }
      };
      worker.on("message", onMessage);
      worker.once("error", (e) =>
        reject(new DataplaneError(`dataplane worker failed to start: ${e.message}`)),
      );
      worker.once("exit", (code) =>
        reject(new DataplaneError(`dataplane worker exited during start (code ${code})`)),
      );
    }).catch(async (e: Error) => {
      await worker.terminate();
      this.worker = undefined;
      throw e;
    });
    worker.on("message", (m: FromWorker) => {
      if (m.type === "failed") {
        this.exitError ??= new DataplaneError(`dataplane worker failed: ${m.message}`);
        o.log?.(`dataplane: worker failed: ${m.message}`);
      } else this.onMessage(m);
    });
    worker.on("error", (e) => {
      this.exitError = e;
      o.log?.(`dataplane: worker error: ${e.message}`);
    });
    worker.on("exit", (code) => this.onExit(code));
    o.log?.(
      `dataplane: started (${io.kind}${io.kind === "tun" ? ` ${io.name} mtu ${mtu}` : ""}${io.kind === "packet" ? ` ${io.interface}` : ""}, batch ${options.batchSize}) in ${(performance.now() - started).toFixed(0)} ms`,
    );
  }

  /**
   * Builds the forwarding table of `model` and installs it in the worker, atomically and
   * versioned. Resolves once the worker forwards with it. An invalid model (or one the
   * forwarder refuses, e.g. an IPv6 host with no localV6) rejects with every problem and
   * changes nothing. Calls are serialized: versions reach the worker in order.
   */
  apply(model: ServiceModel): Promise<ApplyResult> {
    const next = this.chain.then(() => this.applyNow(model));
    this.chain = next.catch(() => {});
    return next;
  }

  private async applyNow(model: ServiceModel): Promise<ApplyResult> {
    const worker = this.requireWorker();
    const built = buildForwardingTable(model, this.table);
    if (!built.ok) throw new DataplaneError("invalid service model", built.error);
    const table = built.value;
    const version = this.nextVersion++;
    const done = new Promise<boolean>((resolve, reject) =>
      this.applies.set(version, { resolve, reject }),
    );
    const msg: ToWorker = { type: "table", snapshot: snapshotTable(version, table) };
    worker.postMessage(msg);
    await done;
    this.table = table;
    const vips = tableVips(table);
    if (this.options.io.kind === "tun" && this.options.routeVips !== false)
      await this.routeVips(vips);
    this.options.log?.(
      `dataplane: table v${version} applied (${table.services.length} services, ${vips.length} VIPs, ${table.maglevBuilt} Maglev tables built in ${table.buildMs.toFixed(1)} ms)`,
    );
    return { version, maglevBuilt: table.maglevBuilt, buildMs: table.buildMs, vips };
  }

  /** Counters from the worker (rejects after `timeoutMs` when the worker does not answer). */
  async counters(timeoutMs = 2_000): Promise<EngineCounters> {
    const m = await this.request({ type: "counters", id: 0 }, timeoutMs);
    if (m.type !== "counters") throw new DataplaneError(`unexpected reply ${m.type}`);
    return m.counters;
  }

  /**
   * Which DIP `flow` maps to now, and whether it is in the connection table: the worker's
   * forwarder answers for a packet of the flow (TCP: an ACK, i.e. a packet of an existing
   * connection; `maglev` in the answer is where a new connection goes). Read-only: no
   * entry or counter changes. Throws FlowQueryError for a bad protocol, address or port.
   */
  async lookup(flow: FlowQuery, timeoutMs = 2_000): Promise<FlowLookup> {
    const packet = buildFlowPacket(flow);
    const m = await this.request({ type: "lookup", id: 0, packet }, timeoutMs);
    if (m.type !== "lookup") throw new DataplaneError(`unexpected reply ${m.type}`);
    return m.result;
  }

  /**
   * Forwards packets given in memory (io kind "memory" only): the same batch path as a
   * device, for tests and offline replay. Resolves with a verdict per packet and the
   * encapsulated output packets in order.
   */
  async inject(packets: readonly Uint8Array[], timeoutMs = 5_000): Promise<InjectResult> {
    if (this.options.io.kind !== "memory") throw new DataplaneError("inject needs io kind memory");
    const lengths = Int32Array.from(packets.map((p) => p.length));
    const all = new Uint8Array(lengths.reduce((a, b) => a + b, 0));
    let off = 0;
    for (const p of packets) {
      all.set(p, off);
      off += p.length;
    }
    const m = await this.request({ type: "inject", id: 0, packets: all, lengths }, timeoutMs, [
      all.buffer as ArrayBuffer,
    ]);
    if (m.type !== "injected") throw new DataplaneError(`unexpected reply ${m.type}`);
    const outputs: Uint8Array[] = [];
    let o = 0;
    for (const len of m.outLengths) {
      outputs.push(m.out.subarray(o, o + len));
      o += len;
    }
    return { verdicts: m.verdicts, outputs, version: m.version };
  }

  /**
   * TEST ONLY (fault injection): ends the worker abruptly, as a crash would, without
   * stop(): onFailure fires, the heartbeat freezes, later calls reject.
   */
  async faultKill(): Promise<void> {
    await this.worker?.terminate();
  }

  /** Stops forwarding, closes the device and sockets, removes the VIP routes. Idempotent. */
  stop(): Promise<void> {
    this.stopped ??= this.stopNow();
    return this.stopped;
  }

  private async stopNow(): Promise<void> {
    const worker = this.worker;
    this.options.stall?.set(false); // a stalled worker could not take the stop message
    if (worker && !this.exited) {
      const exited = new Promise<void>((r) => worker.once("exit", () => r()));
      worker.postMessage({ type: "stop" } satisfies ToWorker);
      const timer = setTimeout(() => void worker.terminate(), 2_000);
      await exited;
      clearTimeout(timer);
    }
    // The TUN device went away with its fd, and its routes with it; clear our record.
    this.routed.clear();
    this.options.log?.("dataplane: stopped");
  }

  private requireWorker(): Worker {
    if (!this.worker || this.stopped) throw new DataplaneError("dataplane not running");
    if (this.exitError)
      throw new DataplaneError(`dataplane worker failed: ${this.exitError.message}`);
    return this.worker;
  }

  private request(
    msg: ToWorker & { id: number },
    timeoutMs: number,
    transfer: ArrayBuffer[] = [],
  ): Promise<FromWorker> {
    const worker = this.requireWorker();
    const id = this.nextId++;
    return new Promise<FromWorker>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.requests.delete(id);
        reject(
          new DataplaneError(`dataplane worker did not answer ${msg.type} in ${timeoutMs} ms`),
        );
      }, timeoutMs);
      this.requests.set(id, { resolve, reject, timer });
      worker.postMessage({ ...msg, id }, transfer);
    });
  }

  private onMessage(m: FromWorker): void {
    if (m.type === "applied") {
      const p = this.applies.get(m.version);
      this.applies.delete(m.version);
      if (m.ok) p?.resolve(true);
      else p?.reject(new DataplaneError(`table v${m.version} refused`, m.problems));
    } else if (m.type === "counters" || m.type === "injected" || m.type === "lookup") {
      const p = this.requests.get(m.id);
      this.requests.delete(m.id);
      if (p?.timer) clearTimeout(p.timer);
      p?.resolve(m);
    }
  }

  private onExit(code: number): void {
    this.exited = true;
    if (Atomics.load(this.words, StatusWord.state) !== WorkerState.failed)
      Atomics.store(this.words, StatusWord.state, WorkerState.stopped);
    const e = new DataplaneError(`dataplane worker exited (code ${code})`);
    for (const p of this.applies.values()) p.reject(e);
    for (const p of this.requests.values()) {
      if (p.timer) clearTimeout(p.timer);
      p.reject(e);
    }
    this.applies.clear();
    this.requests.clear();
    if (!this.stopped) {
      this.exitError ??= e;
      this.options.log?.(`dataplane: ${e.message}`);
      this.options.onFailure?.(this.exitError);
    }
  }

  /** Routes exactly `vips` into the TUN device (adds new ones, removes stale ones). */
  private async routeVips(vips: readonly string[]): Promise<void> {
    const dev = this.tunName!;
    const want = new Set(vips);
    for (const vip of want) {
      if (this.routed.has(vip)) continue;
      const v6 = vip.includes(":");
      const r = await run([
        "ip",
        ...(v6 ? ["-6"] : []),
        "route",
        "replace",
        `${vip}/${v6 ? 128 : 32}`,
        "dev",
        dev,
      ]);
      if (r.code !== 0)
        throw new DataplaneError(`cannot route ${vip} into ${dev}: ${r.stderr.trim()}`);
      this.routed.add(vip);
    }
    for (const vip of [...this.routed]) {
      if (want.has(vip)) continue;
      const v6 = vip.includes(":");
      await run([
        "ip",
        ...(v6 ? ["-6"] : []),
        "route",
        "del",
        `${vip}/${v6 ? 128 : 32}`,
        "dev",
        dev,
      ]);
      this.routed.delete(vip);
    }
  }
}

/**
 * AF_PACKET only taps the uplink: with IP forwarding on, the kernel would forward every VIP
 * packet as well (back to its default route), duplicating or looping the traffic.
 */
function refuseKernelForwarding(): void {
  for (const f of ["/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"]) {
    let on = false;
    try {
      on = readFileSync(f, "utf8").trim() === "1";
    } catch {
      // no such sysctl (IPv6 disabled): nothing to refuse
    }
    if (on)
      throw new DataplaneError(
        `the AF_PACKET input needs ${f} = 0: the kernel would forward the VIP traffic too`,
      );
  }
}

/** The kernel hands VIP traffic (not addressed to this node) to the TUN only when forwarding. */
function enableForwarding(): void {
  writeFileSync("/proc/sys/net/ipv4/ip_forward", "1");
  writeFileSync("/proc/sys/net/ipv6/conf/all/forwarding", "1");
}
