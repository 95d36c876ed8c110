// Messages between the BfdManager (main thread) and the BFD worker. Plain structured-clone
// data: the worker owns sockets, timers and sessions; the main thread only sees these.
// The shapes both sides share are declared here once; manager.ts re-exports the public ones.
import type { Result } from "../util/result.ts";
import type { BfdStateName, DropReason } from "./packet.ts";

export interface BfdPeerOptions {
  /** The peer's address (IPv4 or IPv6, directly connected: single hop, RFC 5881). */
  peer: string;
  /** Local address to send from (same family); default: the kernel's choice. */
  local?: string;
  /** Desired min TX = required min RX once Up, ms (e.g. 100). */
  intervalMs: number;
  /** Detect multiplier (e.g. 3). */
  multiplier: number;
  /** Passive role: send nothing until the peer speaks (RFC 5880 §6.1). Default false. */
  passive?: boolean;
}

/** A peer as the worker gets it: the manager's options with the defaults filled in. */
export interface PeerConfig extends BfdPeerOptions {
  passive: boolean;
}

export interface WorkerOptions {
  /** UDP port to listen on; RFC 5881 says 3784 (tests may use another). */
  listenPort: number;
  /** UDP port of the peers; 3784. */
  peerPort: number;
  /** TX interval while not Up; RFC 5880 §6.8.3 wants ≥ 1000 ms. */
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

/** A state change of one peer's session, as the `state`, `up` and `down` events carry it. */
export interface BfdPeerEvent {
  peer: string;
  from: BfdStateName;
  to: BfdStateName;
  /** Our diagnostic for the change (RFC 5880 §4.1), e.g. "control-detection-time-expired". */
  diag: string;
  /** The peer's state in the packet that caused the change ("AdminDown": it turned BFD off). */
  remoteState: BfdStateName;
  /** The peer's last diagnostic, e.g. "administratively-down". */
  remoteDiag: string;
  /** Wall-clock ms (since the epoch) when the BFD worker decided the change. */
  at: number;
}

export interface StateMessage extends BfdPeerEvent {
  type: "state";
}

/** Why the worker refused a request; the manager rejects with it as a BfdError. */
export interface WorkerError {
  message: string;
  code?: string;
}

/** The answer to the request with this id: the stats for "stats", nothing otherwise. */
type Reply = { type: "reply"; id: number } & Result<BfdStats | undefined, WorkerError>;

export type FromWorker =
  | { type: "ready" }
  | StateMessage
  | Reply
  | { type: "log"; level: "info" | "warn"; message: string };
