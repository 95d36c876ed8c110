// The BFD engine's thread: UDP sockets (through the native addon, for the received TTL),
// timers and the session cores all live here, so TX/RX timing depends on this thread's event
// loop alone, never on the main thread's packet or config work
// (docs/architecture.md#control-plane-survives-the-data-plane).
import { randomInt } from "node:crypto";
import { isIP } from "node:net";
import { performance } from "node:perf_hooks";
import { parentPort, workerData } from "node:worker_threads";
import { setThreadNice, TtlUdpSocket } from "../native/index.ts";
import { err, ok, type Result } from "../util/result.ts";
import {
  BfdState,
  type DropReason,
  decodeControl,
  diagName,
  dropReasons,
  encodeControl,
  stateNames,
} from "./packet.ts";
import type {
  BfdStats,
  FromWorker,
  PeerConfig,
  ToWorker,
  WorkerError,
  WorkerOptions,
} from "./protocol.ts";
import {
  currentPacket,
  detectionTimeUs,
  newSession,
  nextWakeMs,
  type SessionEvent,
  type SessionState,
  step,
  txIntervalUs,
} from "./session.ts";

const port = parentPort;
if (!port) throw new Error("bfd/worker.ts runs in a worker_thread (use BfdManager)");
const opts = workerData as WorkerOptions;

interface Session {
  config: PeerConfig;
  family: 4 | 6;
  core: SessionState;
  tx: TtlUdpSocket;
  timer: NodeJS.Timeout | undefined;
  wakeAt: number;
  /** When the armed timer should fire (wakeAt, or the arming time if that was past). */
  fireAt: number;
  rxPackets: number;
  txPackets: number;
  txErrors: number;
  upSince: number | undefined;
  removing: boolean;
  closed: boolean;
}

// Timing integrity on a busy host: run this thread ahead of ordinary work (packet I/O,
// config, other processes) when allowed (root / CAP_SYS_NICE); stay at the default otherwise.
let threadNice: number | undefined;
if (opts.threadNice !== undefined) {
  try {
    threadNice = setThreadNice(opts.threadNice);
  } catch {
    threadNice = undefined;
  }
}

const byPeer = new Map<string, Session>();
const byDiscr = new Map<number, Session>();
const rx = new Map<4 | 6, TtlUdpSocket>();
const drops = Object.fromEntries(dropReasons.map((r) => [r, 0])) as Record<DropReason, number>;
const totals = { rxPackets: 0, txPackets: 0, txErrors: 0, maxTimerLatenessMs: 0 };
/** Upper bounds (ms) of the timer-lateness histogram buckets; the last bucket is open. */
const LATENESS_BOUNDS_MS = [1, 2, 5, 10, 20, 50, 100, 150];
const lateness = new Array<number>(LATENESS_BOUNDS_MS.length + 1).fill(0);
const txBuf = new Uint8Array(24);
let shuttingDown = false;

function post(m: FromWorker): void {
  port!.postMessage(m);
}

const now = () => performance.now();

function onPacket(data: Buffer, src: string, _srcPort: number, ttl: number): void {
  totals.rxPackets++;
  const reason = receive(data, src, ttl);
  if (reason) drops[reason]++;
}

// Returns why the packet was dropped, or undefined when the session took it.
function receive(data: Buffer, src: string, ttl: number): DropReason | undefined {
  // RFC 5881 §5 (GTSM): single-hop packets MUST arrive with TTL / hop limit 255.
  if (ttl !== 255) return "ttl";
  const r = decodeControl(data);
  if (!r.ok) return r.error;
  const p = r.value;
  // RFC 5880 §6.8.6: demultiplex by Your Discriminator, or by source when it is zero.
  const s = p.yourDiscriminator !== 0 ? byDiscr.get(p.yourDiscriminator) : byPeer.get(src);
  if (!s || s.config.peer !== src || s.removing) return "no-session";
  if (s.core.state === BfdState.AdminDown) return "admin-down";
  s.rxPackets++;
  advance(s, { type: "rx", packet: p });
  return undefined;
}

function advance(s: Session, event: SessionEvent): void {
  const t = now();
  const r = step(s.core, event, t);
  s.core = r.state;
  for (const a of r.actions) {
    if (a.type === "send") {
      transmit(s, encodeControl(a.packet, txBuf));
    } else if (a.type === "state") {
      if (a.to === BfdState.Up) s.upSince = Date.now();
      else s.upSince = undefined;
      post({
        type: "state",
        peer: s.config.peer,
        from: stateNames[a.from],
        to: stateNames[a.to],
        diag: diagName(a.diag),
        remoteState: stateNames[s.core.remoteState],
        remoteDiag: diagName(a.remoteDiag),
        at: Date.now(),
      });
    }
  }
  arm(s, t);
}

function transmit(s: Session, bytes: Uint8Array): void {
  try {
    s.tx.send(bytes, s.config.peer, opts.peerPort);
    s.txPackets++;
    totals.txPackets++;
  } catch {
    // e.g. ENETUNREACH while the link is down: the detection timer handles the rest.
    s.txErrors++;
    totals.txErrors++;
  }
}

function arm(s: Session, t: number): void {
  const wake = nextWakeMs(s.core);
  if (wake === s.wakeAt && s.timer) return;
  if (s.timer) clearTimeout(s.timer);
  s.timer = undefined;
  s.wakeAt = wake;
  if (wake === Number.POSITIVE_INFINITY || s.removing) return;
  s.fireAt = Math.max(wake, t);
  s.timer = setTimeout(() => onTimer(s), s.fireAt - t);
}

function onTimer(s: Session): void {
  s.timer = undefined;
  const late = now() - s.fireAt;
  if (late > totals.maxTimerLatenessMs) totals.maxTimerLatenessMs = late;
  let i = 0;
  while (i < LATENESS_BOUNDS_MS.length && late >= LATENESS_BOUNDS_MS[i]!) i++;
  lateness[i]!++;
  advance(s, { type: "timer" });
}

function rxSocket(family: 4 | 6): void {
  if (rx.has(family)) return;
  rx.set(
    family,
    new TtlUdpSocket({
      address: family === 4 ? "0.0.0.0" : "::",
      port: opts.listenPort,
      ttl: 255,
      onMessage: onPacket,
    }),
  );
}

// RFC 5881 §4: source port 49152-65535, one per session. Bind tries a few random ports.
function txSocket(family: 4 | 6, local: string | undefined): TtlUdpSocket {
  const address = local ?? (family === 4 ? "0.0.0.0" : "::");
  let lastError: unknown;
  for (let i = 0; i < 64; i++) {
    try {
      return new TtlUdpSocket({ address, port: randomInt(49152, 65536), ttl: 255 });
    } catch (e) {
      lastError = e;
      if ((e as { code?: string }).code !== "EADDRINUSE") throw e;
    }
  }
  throw lastError;
}

function newDiscriminator(): number {
  for (;;) {
    const d = randomInt(1, 0x100000000);
    if (!byDiscr.has(d)) return d;
  }
}

function add(config: PeerConfig): void {
  const family = isIP(config.peer);
  if (family !== 4 && family !== 6) throw new Error(`BFD peer ${config.peer}: not an IP address`);
  if (config.local && isIP(config.local) !== family)
    throw new Error(`BFD peer ${config.peer}: local ${config.local} is not the same family`);
  let existing = byPeer.get(config.peer);
  if (existing?.removing) {
    // Re-added while its AdminDown goodbye is still going: end that now, start afresh.
    close(existing);
    existing = undefined;
  }
  if (existing) {
    existing.config = config;
    advance(existing, {
      type: "set-config",
      config: { ...config, slowIntervalMs: opts.slowIntervalMs },
    });
    return;
  }
  rxSocket(family);
  const tx = txSocket(family, config.local);
  const discr = newDiscriminator();
  const s: Session = {
    config,
    family,
    core: newSession(
      { ...config, slowIntervalMs: opts.slowIntervalMs },
      discr,
      randomInt(1, 2 ** 31),
    ),
    tx,
    timer: undefined,
    wakeAt: Number.NaN,
    fireAt: Number.NaN,
    rxPackets: 0,
    txPackets: 0,
    txErrors: 0,
    upSince: undefined,
    removing: false,
    closed: false,
  };
  byPeer.set(config.peer, s);
  byDiscr.set(discr, s);
  post({
    type: "log",
    level: "info",
    message: `bfd: session ${config.peer} (local ${tx.address}:${tx.port}, discriminator ${discr}) ${config.intervalMs} ms × ${config.multiplier}${config.passive ? " passive" : ""}`,
  });
  arm(s, now());
}

function close(s: Session): void {
  if (s.closed) return;
  s.closed = true;
  if (s.timer) clearTimeout(s.timer);
  s.timer = undefined;
  s.tx.close();
  if (byPeer.get(s.config.peer) === s) byPeer.delete(s.config.peer);
  if (byDiscr.get(s.core.localDiscr) === s) byDiscr.delete(s.core.localDiscr);
}

// AdminDown now, twice more one interval apart (the first one normally suffices), then close.
function retire(s: Session): Promise<void> {
  advance(s, { type: "admin-down" });
  s.removing = true;
  if (s.timer) clearTimeout(s.timer);
  s.timer = undefined;
  const gap = Math.min(s.config.intervalMs, 200);
  return new Promise((resolve) => {
    let left = 2;
    const again = () => {
      if (s.closed || left-- <= 0) {
        close(s);
        resolve();
        return;
      }
      transmit(s, encodeControl(currentPacket(s.core), txBuf));
      setTimeout(again, gap);
    };
    setTimeout(again, gap);
  });
}

function stats(): BfdStats {
  return {
    peers: [...byPeer.values()].map((s) => ({
      peer: s.config.peer,
      local: `${s.tx.address}:${s.tx.port}`,
      state: stateNames[s.core.state],
      remoteState: stateNames[s.core.remoteState],
      localDiscriminator: s.core.localDiscr,
      remoteDiscriminator: s.core.remoteDiscr,
      localDiag: diagName(s.core.localDiag),
      remoteDiag: diagName(s.core.remoteDiag),
      txIntervalMs: txIntervalUs(s.core) / 1000,
      detectTimeMs: detectionTimeUs(s.core) / 1000,
      remoteMultiplier: s.core.remoteDetectMult,
      rxPackets: s.rxPackets,
      txPackets: s.txPackets,
      txErrors: s.txErrors,
      ...(s.upSince !== undefined ? { upSince: s.upSince } : {}),
    })),
    drops: { ...drops },
    ...totals,
    threadNice: threadNice ?? null,
    timerLateness: { boundsMs: LATENESS_BOUNDS_MS, counts: [...lateness] },
  };
}

const reply = (id: number, result: Result<BfdStats | undefined, WorkerError>): void =>
  post({ type: "reply", id, ...result });

async function handle(m: ToWorker): Promise<void> {
  switch (m.type) {
    case "add":
      if (shuttingDown) throw new Error("BFD is shutting down");
      add(m.config);
      return reply(m.id, ok(undefined));
    case "remove": {
      const s = byPeer.get(m.peer);
      if (s && !s.removing) await retire(s);
      return reply(m.id, ok(undefined));
    }
    case "admin": {
      const s = byPeer.get(m.peer);
      if (!s) throw new Error(`no BFD session for ${m.peer}`);
      advance(s, { type: m.down ? "admin-down" : "admin-up" });
      return reply(m.id, ok(undefined));
    }
    case "stats":
      return reply(m.id, ok(stats()));
    case "shutdown":
      shuttingDown = true;
      await Promise.all([...byPeer.values()].filter((s) => !s.removing).map(retire));
      for (const s of rx.values()) s.close();
      rx.clear();
      reply(m.id, ok(undefined));
      port!.close();
      return;
  }
}

port.on("message", (m: ToWorker) => {
  handle(m).catch((e: unknown) => {
    const failure = e as { message?: string; code?: string };
    reply(
      m.id,
      err({
        message: failure.message ?? String(e),
        ...(failure.code ? { code: failure.code } : {}),
      }),
    );
  });
});
post({ type: "ready" });
