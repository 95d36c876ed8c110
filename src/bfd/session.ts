// One BFD session as a sans-IO state machine (RFC 5880 asynchronous mode, RFC 5881 single
// hop): `step(state, event, nowMs) -> { state, actions }`. The worker owns sockets and
// timers and only executes the actions; time is passed in, randomness (TX jitter) comes from a
// seeded generator kept in the state, so tests are deterministic.
import { BfdDiag, BfdState, type ControlPacket, controlPacket } from "./packet.ts";

export interface SessionConfig {
  /** Desired min TX and required min RX once Up (the "100" of 100 ms × 3). */
  intervalMs: number;
  /** Detect multiplier we advertise. */
  multiplier: number;
  /** Passive role (RFC 5880 §6.1): transmit nothing until the peer has spoken. */
  passive: boolean;
  /** TX interval floor while not Up (RFC 5880 §6.8.3: at least one second). */
  slowIntervalMs?: number;
}

export interface SessionState {
  config: SessionConfig;
  state: BfdState;
  remoteState: BfdState;
  localDiscr: number;
  remoteDiscr: number;
  localDiag: number;
  remoteDiag: number;
  /** What we advertise (µs). */
  desiredMinTxUs: number;
  requiredMinRxUs: number;
  /** Values in force until a Poll Sequence confirms a change (RFC 5880 §6.8.3). */
  txBaseUs: number;
  detectRxUs: number;
  remoteMinRxUs: number;
  remoteDesiredMinTxUs: number;
  remoteDetectMult: number;
  pollActive: boolean;
  /** Monotonic ms; Infinity when not scheduled. */
  nextTxAtMs: number;
  detectAtMs: number;
  /** xorshift32 state for the TX jitter. */
  rng: number;
}

export type SessionEvent =
  | { type: "rx"; packet: ControlPacket }
  | { type: "timer" }
  | { type: "admin-down" }
  | { type: "admin-up" }
  | { type: "set-config"; config: SessionConfig };

export type SessionAction =
  | { type: "send"; packet: ControlPacket }
  | { type: "state"; from: BfdState; to: BfdState; diag: number; remoteDiag: number }
  | { type: "poll-done"; txIntervalUs: number; detectTimeUs: number };

export interface StepResult {
  state: SessionState;
  actions: SessionAction[];
}

const US = 1000;

function slowUs(c: SessionConfig): number {
  return Math.max(c.intervalMs, c.slowIntervalMs ?? 1000) * US;
}

function desiredFor(c: SessionConfig, state: BfdState): number {
  // RFC 5880 §6.8.3: while not Up, DesiredMinTxInterval MUST be at least one second.
  return state === BfdState.Up ? c.intervalMs * US : slowUs(c);
}

export function newSession(
  config: SessionConfig,
  localDiscr: number,
  seed = localDiscr,
): SessionState {
  if (!(config.intervalMs >= 1) || !Number.isInteger(config.multiplier) || config.multiplier < 1)
    throw new RangeError(`bad BFD timers: interval ${config.intervalMs} ms × ${config.multiplier}`);
  if (localDiscr <= 0 || localDiscr > 0xffffffff)
    throw new RangeError(`bad local discriminator ${localDiscr}`);
  const desired = desiredFor(config, BfdState.Down);
  return {
    config,
    state: BfdState.Down,
    remoteState: BfdState.Down,
    localDiscr,
    remoteDiscr: 0,
    localDiag: BfdDiag.None,
    remoteDiag: BfdDiag.None,
    desiredMinTxUs: desired,
    requiredMinRxUs: config.intervalMs * US,
    txBaseUs: desired,
    detectRxUs: config.intervalMs * US,
    remoteMinRxUs: 1, // RFC 5880 §6.8.1: initialized to 1
    remoteDesiredMinTxUs: 0,
    remoteDetectMult: 0,
    pollActive: false,
    nextTxAtMs: config.passive ? Number.POSITIVE_INFINITY : 0,
    detectAtMs: Number.POSITIVE_INFINITY,
    rng: seed >>> 0 || 0x9e3779b9,
  };
}

/** Detection time for the remote system, µs (RFC 5880 §6.8.4, asynchronous mode). */
export function detectionTimeUs(s: SessionState): number {
  return s.remoteDetectMult * Math.max(s.detectRxUs, s.remoteDesiredMinTxUs);
}

/** Interval between our periodic packets before jitter, µs (0 = do not transmit). */
export function txIntervalUs(s: SessionState): number {
  if (s.remoteMinRxUs === 0) return 0; // §6.8.7: the peer asked for no packets
  return Math.max(s.txBaseUs, s.remoteMinRxUs);
}

/** When the owner must call step(..., { type: "timer" }) next (Infinity: no timer). */
export function nextWakeMs(s: SessionState): number {
  return Math.min(s.nextTxAtMs, s.detectAtMs);
}

function random01(s: SessionState): number {
  let x = s.rng;
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  s.rng = x >>> 0;
  return s.rng / 0x100000000;
}

// §6.8.7: 75-100% of the interval (75-90% when our detect multiplier is 1).
function jittered(s: SessionState, intervalUs: number): number {
  const span = s.config.multiplier === 1 ? 0.15 : 0.25;
  return (intervalUs * (0.75 + span * random01(s))) / US;
}

function mayTransmit(s: SessionState): boolean {
  // §6.8.7: a passive system stays silent until it knows the peer's discriminator.
  if (s.config.passive && s.remoteDiscr === 0) return false;
  return txIntervalUs(s) > 0;
}

function schedule(s: SessionState, now: number): void {
  const interval = txIntervalUs(s);
  s.nextTxAtMs = mayTransmit(s) ? now + jittered(s, interval) : Number.POSITIVE_INFINITY;
}

function packetOf(s: SessionState, final: boolean): ControlPacket {
  return controlPacket({
    diag: s.localDiag,
    state: s.state,
    poll: s.pollActive && !final, // §6.8.7: never P and F together
    final,
    detectMult: s.config.multiplier,
    myDiscriminator: s.localDiscr,
    yourDiscriminator: s.remoteDiscr,
    desiredMinTxUs: s.desiredMinTxUs,
    requiredMinRxUs: s.requiredMinRxUs,
    requiredMinEchoRxUs: 0, // no Echo function
  });
}

/** The packet the session would send now (periodic, no Final). */
export function currentPacket(s: SessionState): ControlPacket {
  return packetOf(s, false);
}

function sendNow(s: SessionState, now: number, actions: SessionAction[], final = false): void {
  if (!final && !mayTransmit(s)) {
    s.nextTxAtMs = Number.POSITIVE_INFINITY;
    return;
  }
  actions.push({ type: "send", packet: packetOf(s, final) });
  schedule(s, now);
}

// New advertised timers; while Up a change starts a Poll Sequence and the values in force
// follow the rules of §6.8.3 (a faster TX at once, a slower one after the Final; a shorter
// detection basis after the Final, a longer one at once).
function applyTimers(s: SessionState, actions: SessionAction[], now: number): void {
  const desired = desiredFor(s.config, s.state);
  const required = s.config.intervalMs * US;
  const changed = desired !== s.desiredMinTxUs || required !== s.requiredMinRxUs;
  s.desiredMinTxUs = desired;
  s.requiredMinRxUs = required;
  if (s.state !== BfdState.Up) {
    s.txBaseUs = desired;
    s.detectRxUs = required;
    s.pollActive = false;
    return;
  }
  if (desired < s.txBaseUs) s.txBaseUs = desired;
  if (required > s.detectRxUs) s.detectRxUs = required;
  if (changed) {
    s.pollActive = true;
    sendNow(s, now, actions);
  }
}

function setState(
  s: SessionState,
  to: BfdState,
  diag: number,
  now: number,
  actions: SessionAction[],
): void {
  const from = s.state;
  s.state = to;
  s.localDiag = diag;
  actions.push({ type: "state", from, to, diag, remoteDiag: s.remoteDiag });
  applyTimers(s, actions, now);
  // Tell the peer at once rather than at the next (possibly one-second) tick.
  if (!s.pollActive) sendNow(s, now, actions);
}

function onReceive(s: SessionState, p: ControlPacket, now: number, actions: SessionAction[]): void {
  // §6.8.6, after the session-independent checks of decodeControl().
  s.remoteDiscr = p.myDiscriminator;
  s.remoteState = p.state;
  s.remoteDiag = p.diag;
  const remoteMinRxChanged = p.requiredMinRxUs !== s.remoteMinRxUs;
  s.remoteMinRxUs = p.requiredMinRxUs;
  s.remoteDesiredMinTxUs = p.desiredMinTxUs;
  s.remoteDetectMult = p.detectMult;
  if (p.final && s.pollActive) {
    s.pollActive = false;
    s.txBaseUs = s.desiredMinTxUs;
    s.detectRxUs = s.requiredMinRxUs;
    actions.push({
      type: "poll-done",
      txIntervalUs: txIntervalUs(s),
      detectTimeUs: detectionTimeUs(s),
    });
  }
  s.detectAtMs = now + detectionTimeUs(s) / US;

  const before = s.state;
  if (p.state === BfdState.AdminDown) {
    if (s.state !== BfdState.Down)
      setState(s, BfdState.Down, BfdDiag.NeighborSignaledSessionDown, now, actions);
  } else if (s.state === BfdState.Down) {
    if (p.state === BfdState.Down) setState(s, BfdState.Init, BfdDiag.None, now, actions);
    else if (p.state === BfdState.Init) setState(s, BfdState.Up, BfdDiag.None, now, actions);
  } else if (s.state === BfdState.Init) {
    if (p.state === BfdState.Init || p.state === BfdState.Up)
      setState(s, BfdState.Up, BfdDiag.None, now, actions);
  } else if (p.state === BfdState.Down) {
    setState(s, BfdState.Down, BfdDiag.NeighborSignaledSessionDown, now, actions);
  }

  if (p.poll) {
    // §6.8.6: answer a Poll with a Final as soon as practicable, outside the TX schedule.
    sendNow(s, now, actions, true);
  } else if (s.state === before && (remoteMinRxChanged || s.nextTxAtMs === Infinity)) {
    // A passive session just learnt the peer, or the peer changed its RX rate: reschedule.
    const next = mayTransmit(s) ? now + jittered(s, txIntervalUs(s)) : Number.POSITIVE_INFINITY;
    if (next < s.nextTxAtMs || !mayTransmit(s)) s.nextTxAtMs = next;
  }
}

function onTimer(s: SessionState, now: number, actions: SessionAction[]): void {
  if (now >= s.detectAtMs) {
    s.detectAtMs = Number.POSITIVE_INFINITY;
    // §6.8.1: a Detection Time without packets clears the remote discriminator.
    s.remoteDiscr = 0;
    s.remoteState = BfdState.Down;
    s.remoteMinRxUs = 1;
    if (s.state === BfdState.Init || s.state === BfdState.Up)
      setState(s, BfdState.Down, BfdDiag.ControlDetectionTimeExpired, now, actions);
    else if (!mayTransmit(s)) s.nextTxAtMs = Number.POSITIVE_INFINITY;
  }
  if (now >= s.nextTxAtMs) sendNow(s, now, actions);
}

/** Advances one session by one event. Does not mutate its input. */
export function step(prev: SessionState, event: SessionEvent, nowMs: number): StepResult {
  const s: SessionState = { ...prev };
  const actions: SessionAction[] = [];
  switch (event.type) {
    case "rx":
      // §6.8.6: in AdminDown every received packet is discarded (the edge counts it).
      if (s.state !== BfdState.AdminDown) onReceive(s, event.packet, nowMs, actions);
      break;
    case "timer":
      onTimer(s, nowMs, actions);
      break;
    case "admin-down":
      if (s.state !== BfdState.AdminDown) {
        s.detectAtMs = Number.POSITIVE_INFINITY;
        // §6.8.16: keep sending AdminDown (even passive) so the peer learns at once.
        setState(s, BfdState.AdminDown, BfdDiag.AdministrativelyDown, nowMs, actions);
        if (!actions.some((a) => a.type === "send"))
          actions.push({ type: "send", packet: packetOf(s, false) });
      }
      break;
    case "admin-up":
      if (s.state === BfdState.AdminDown) setState(s, BfdState.Down, BfdDiag.None, nowMs, actions);
      break;
    case "set-config": {
      if (!(event.config.intervalMs >= 1) || event.config.multiplier < 1)
        throw new RangeError("bad BFD timers");
      s.config = event.config;
      applyTimers(s, actions, nowMs);
      if (!mayTransmit(s)) s.nextTxAtMs = Number.POSITIVE_INFINITY;
      else if (s.nextTxAtMs === Number.POSITIVE_INFINITY) schedule(s, nowMs);
      break;
    }
  }
  return { state: s, actions };
}
