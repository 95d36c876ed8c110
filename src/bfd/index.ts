// BFD for vipmux: RFC 5880 asynchronous mode, single hop over IPv4 and IPv6 (RFC 5881).
//
//   packet.ts   Control packet codec + drop reasons (pure)
//   session.ts  one session's state machine: step(state, event, nowMs) -> { state, actions }
//   worker.ts   the engine thread: sockets (native addon, for the received TTL), timers, demux
//   manager.ts  BfdManager, the only surface the rest of vipmux uses (main thread)
//
// ## Using it
//
//   const bfd = await BfdManager.start();                  // one per process; port 3784
//   await bfd.addPeer({ peer: "10.0.1.1", local: "10.0.1.2", intervalMs: 100, multiplier: 3 });
//   bfd.on("up", (e) => ...); bfd.on("down", (e) => ...);  // e.peer, e.diag, e.remoteDiag
//   await bfd.stats();                                     // timers in force, drops by reason
//   await bfd.shutdown();                                  // AdminDown to every peer, then stop
//
// ## Tying it to the BGP speaker: a BFD Down brings the BGP session down at once, and it
// comes back only after BFD is Up again
//
// The MUX daemon wires it (`syncBfd` in src/controller/mux.ts); the BGP FSM needs no BFD
// code of its own beyond an "administrative stop/start" input it already has:
//
// 1. For each BGP peer with `bfd: { interval-ms, multiplier, passive? }` in the config call
//    `bfd.addPeer({ peer: address, local: the session's local address, intervalMs,
//    multiplier, passive })` when the peer is configured (not when it is Established: BFD
//    must be Up before BGP relies on it). Config reload: call addPeer again with new timers
//    (a Poll Sequence re-times a live session), removePeer when BFD is removed from the peer.
// 2. `bfd.on("down", (e) => speaker.peerDown(e.peer, "bfd:" + e.diag))`: on that event
//    (it fires only on Up -> Down / AdminDown), stop the BGP session to that peer at once: no
//    NOTIFICATION (the path is presumed dead; a NOTIFICATION would wait on TCP
//    retransmissions), destroy the socket, withdraw nothing locally beyond what session loss
//    implies, and keep the peer in Idle (RFC 4271 ManualStop/AutomaticStop semantics with
//    "start" inhibited). Exception, RFC 5882 §3.2: `e.remoteState === "AdminDown"` means the
//    peer turned BFD off on purpose (FRR sends AdminDown with diag 0 on `shutdown`, vipmux
//    with diag 7): that is not a path failure, and FRR keeps BGP up in that case; so should
//    we. Only `e.to === "Down" && e.remoteState !== "AdminDown"` tears BGP down.
// 3. `bfd.on("up", (e) => speaker.peerStart(e.peer))`: allow the FSM to connect / accept
//    again. While `bfd.isUp(peer)` is false the speaker must not start the session (RFC 5882
//    §4.3 dampening: BGP back only after BFD is Up again).
// 4. On SIGTERM: `speaker.shutdown()` (Cease) first, then `bfd.shutdown()` (AdminDown), so the
//    edge router sees the BGP Cease and not a BFD failure.
// 5. Metrics: export `stats().drops` (counter per reason), `txErrors`, per-peer state and
//    `maxTimerLatenessMs` (how late the worker's timers fired: the timing-integrity gauge).
//
// FRR side: `neighbor X bfd` (or `neighbor X bfd profile P`) in router bgp, and a `bfd`
// block with `profile P / receive-interval 100 / transmit-interval 100 / detect-multiplier 3`.
export {
  BfdError,
  BfdManager,
  type BfdManagerOptions,
  type BfdPeerEvent,
  type BfdPeerOptions,
  type BfdStats,
  type PeerStats,
} from "./manager.ts";
export {
  BfdDiag,
  BfdState,
  type BfdStateName,
  type ControlPacket,
  controlPacket,
  type DropReason,
  decodeControl,
  diagName,
  dropReasons,
  encodeControl,
} from "./packet.ts";
export {
  detectionTimeUs,
  newSession,
  nextWakeMs,
  type SessionAction,
  type SessionConfig,
  type SessionEvent,
  type SessionState,
  step,
  txIntervalUs,
} from "./session.ts";
