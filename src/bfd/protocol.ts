// Messages between the BfdManager (main thread) and the BFD worker. Plain structured-clone
// data: the worker owns sockets, timers and sessions; the main thread only sees these.
import type { BfdStateName, DropReason } from "./packet.ts";

export interface PeerConfig {
  peer: string;
  local?: string;
  intervalMs: number;
  multiplier: number;
  passive: boolean;
}

export interface WorkerOptions {
  /** UDP port to receive on (RFC 5881: 3784). */
  listenPort: number;
  /** UDP port to send to (RFC 5881: 3784). */
  peerPort: number;
  /** TX floor while not Up (RFC 5880 §6.8.3: ≥ 1000 ms). */
  slowIntervalMs: number;
  /** Nice value for the worker thread (undefined: leave it). */
  threadNice?: number;
}

export type ToWorker =
  | { type: "add"; id: number; config: PeerConfig }
  | { type: "remove"; id: number; peer: string }
  | { type: "admin"; id: number; peer: string; down: boolean }
  | { type: "stats"; id: number }
  | { type: "shutdown"; id: number };

export interface PeerStats {
  peer: string;
  local: string;
  state: BfdStateName;
  remoteState: BfdStateName;
  localDiscriminator: number;
  remoteDiscriminator: number;
  localDiag: string;
  remoteDiag: string;
  /** Negotiated, in force: our TX interval and the detection time for the peer. */
  txIntervalMs: number;
  detectTimeMs: number;
  remoteMultiplier: number;
  rxPackets: number;
  txPackets: number;
  txErrors: number;
  upSince?: number;
}

export interface BfdStats {
  peers: PeerStats[];
  /** Received packets dropped, by reason; never acted on. */
  drops: Record<DropReason, number>;
  rxPackets: number;
  txPackets: number;
  txErrors: number;
  /** Worst lateness of a timer callback in the worker, ms (timing integrity). */
  maxTimerLatenessMs: number;
  /** The worker thread's nice value when it could set it, else null. */
  threadNice: number | null;
  /** Histogram of timer lateness: counts[i] < boundsMs[i] (and ≥ the previous bound); the
   * last count is ≥ the last bound. */
  timerLateness: { boundsMs: number[]; counts: number[] };
}

export interface StateMessage {
  type: "state";
  peer: string;
  from: BfdStateName;
  to: BfdStateName;
  diag: string;
  remoteState: BfdStateName;
  remoteDiag: string;
  /** Wall clock (ms since epoch) when the worker decided it. */
  at: number;
}

export type FromWorker =
  | { type: "ready" }
  | StateMessage
  | { type: "reply"; id: number; ok: true; stats?: BfdStats }
  | { type: "reply"; id: number; ok: false; error: string; code?: string }
  | { type: "log"; level: "info" | "warn"; message: string };
