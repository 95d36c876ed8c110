// BfdManager: the main-thread face of BFD. It starts the BFD worker (sockets, timers and
// session cores run there, so a busy main thread cannot delay BFD), forwards configuration
// and admin commands, and turns the worker's state changes into `up` / `down` events.
import { EventEmitter } from "node:events";
import { isIP } from "node:net";
import { Worker } from "node:worker_threads";
import type { BfdStateName } from "./packet.ts";
import type {
  BfdPeerEvent,
  BfdPeerOptions,
  BfdStats,
  FromWorker,
  PeerConfig,
  StateMessage,
  ToWorker,
  WorkerOptions,
} from "./protocol.ts";

export type { BfdPeerEvent, BfdPeerOptions, BfdStats, PeerStats } from "./protocol.ts";

/**
 * The worker's options (protocol.ts), each optional here: both ports default to 3784 and
 * the slow TX interval to 1000 ms.
 */
export interface BfdManagerOptions extends Partial<Omit<WorkerOptions, "threadNice">> {
  /**
   * Nice value for the BFD worker thread; default -10 (ahead of ordinary work when running as
   * root; silently unchanged without CAP_SYS_NICE). null leaves it alone.
   */
  threadNice?: number | null;
  /** Receives the worker's log lines (session created, ...). Default: none. */
  log?: (level: "info" | "warn", message: string) => void;
}

export interface BfdManagerEvents {
  state: [BfdPeerEvent];
  up: [BfdPeerEvent];
  down: [BfdPeerEvent];
}

export class BfdError extends Error {
  readonly code: string | undefined;
  constructor(message: string, code?: string) {
    super(message);
    this.name = "BfdError";
    this.code = code;
  }
}

function workerUrl(): URL {
  // Running from source (.ts) or from the build (dist/**/*.js).
  const ext = import.meta.url.endsWith(".ts") ? "ts" : "js";
  return new URL(`./worker.${ext}`, import.meta.url);
}

export class BfdManager extends EventEmitter<BfdManagerEvents> {
  private readonly worker: Worker;
  private readonly pending = new Map<
    number,
    { resolve: (v: BfdStats | undefined) => void; reject: (e: Error) => void }
  >();
  private readonly states = new Map<string, BfdPeerEvent>();
  private nextId = 1;
  private closed = false;
  private exited = false;

  private constructor(worker: Worker, log: BfdManagerOptions["log"]) {
    super();
    this.worker = worker;
    worker.on("message", (m: FromWorker) => {
      if (m.type === "state") this.onState(m);
      else if (m.type === "reply") {
        const p = this.pending.get(m.id);
        this.pending.delete(m.id);
        if (m.ok) p?.resolve(m.value);
        else p?.reject(new BfdError(m.error.message, m.error.code));
      } else if (m.type === "log") log?.(m.level, m.message);
    });
    worker.on("exit", (code) => {
      this.exited = true;
      for (const p of this.pending.values())
        p.reject(new BfdError(`BFD worker exited (code ${code})`));
      this.pending.clear();
    });
  }

  /** Starts the BFD worker; resolves once it is ready for peers. */
  static async start(opts: BfdManagerOptions = {}): Promise<BfdManager> {
    const workerOptions: WorkerOptions = {
      listenPort: opts.listenPort ?? 3784,
      peerPort: opts.peerPort ?? 3784,
      slowIntervalMs: opts.slowIntervalMs ?? 1000,
    };
    const nice = opts.threadNice === undefined ? -10 : opts.threadNice;
    if (nice !== null) workerOptions.threadNice = nice;
    const worker = new Worker(workerUrl(), { workerData: workerOptions, name: "vipmux-bfd" });
    await new Promise<void>((resolve, reject) => {
      const onMessage = (m: FromWorker) => {
        if (m.type !== "ready") return;
        worker.off("error", reject);
        worker.off("message", onMessage);
        resolve();
      };
      worker.on("message", onMessage);
      worker.once("error", reject);
    });
    return new BfdManager(worker, opts.log);
  }

  private request(m: ToWorker): Promise<BfdStats | undefined> {
    if (this.closed || this.exited) return Promise.reject(new BfdError("BFD manager is shut down"));
    return new Promise((resolve, reject) => {
      this.pending.set(m.id, { resolve, reject });
      this.worker.postMessage(m);
    });
  }

  private onState(m: StateMessage): void {
    const { type: _, ...ev } = m; // the event is the message without its tag
    this.states.set(m.peer, ev);
    this.emit("state", ev);
    if (m.to === "Up") this.emit("up", ev);
    else if (m.from === "Up") this.emit("down", ev);
  }

  /**
   * Creates (or re-times: a Poll Sequence while Up) the session to `peer`. Rejects when the
   * address is bad or a socket cannot be bound (e.g. EADDRINUSE on port 3784).
   */
  async addPeer(opts: BfdPeerOptions): Promise<void> {
    const family = isIP(opts.peer);
    if (family === 0) throw new BfdError(`BFD peer ${opts.peer}: not an IP address`, "EINVAL");
    if (opts.local !== undefined && isIP(opts.local) !== family)
      throw new BfdError(`BFD local ${opts.local}: not an IPv${family} address`, "EINVAL");
    if (!Number.isInteger(opts.intervalMs) || opts.intervalMs < 1 || opts.intervalMs > 60_000)
      throw new BfdError(`BFD interval ${opts.intervalMs} ms: 1..60000`, "EINVAL");
    if (!Number.isInteger(opts.multiplier) || opts.multiplier < 1 || opts.multiplier > 255)
      throw new BfdError(`BFD multiplier ${opts.multiplier}: 1..255`, "EINVAL");
    const config: PeerConfig = {
      peer: opts.peer,
      intervalMs: opts.intervalMs,
      multiplier: opts.multiplier,
      passive: opts.passive ?? false,
      ...(opts.local !== undefined ? { local: opts.local } : {}),
    };
    await this.request({ type: "add", id: this.nextId++, config });
  }

  /** Sends AdminDown to the peer (so it does not count a failure) and deletes the session. */
  async removePeer(peer: string): Promise<void> {
    await this.request({ type: "remove", id: this.nextId++, peer });
    this.states.delete(peer);
  }

  /** Administratively disables (AdminDown) or re-enables one session. */
  async setAdminDown(peer: string, down: boolean): Promise<void> {
    await this.request({ type: "admin", id: this.nextId++, peer, down });
  }

  /** Last known state of a peer's session ("Down" until the worker reports otherwise). */
  peerState(peer: string): BfdStateName | undefined {
    return this.states.get(peer)?.to ?? undefined;
  }

  isUp(peer: string): boolean {
    return this.states.get(peer)?.to === "Up";
  }

  /** Per-peer state and negotiated timers, packet counters and drops by reason. */
  async stats(): Promise<BfdStats> {
    const s = await this.request({ type: "stats", id: this.nextId++ });
    if (!s) throw new BfdError("BFD worker sent no stats");
    return s;
  }

  /** Sends AdminDown on every session, closes the sockets and stops the worker. */
  async shutdown(): Promise<void> {
    if (this.closed) return;
    try {
      if (!this.exited) await this.request({ type: "shutdown", id: this.nextId++ });
    } finally {
      this.closed = true;
      await this.worker.terminate();
    }
  }
}
