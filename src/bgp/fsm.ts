// The BGP finite state machine of RFC 4271 §8, sans-IO (RustyBGP `fsm.rs` shape): `step`
// takes a state, an event and the current time and returns the next state and the actions
// the I/O edge (session.ts) must carry out. Timers are deadlines kept in the state; the
// session arms one OS timer at `nextDeadline` and feeds back `expiredTimers`.
//
// Optional attributes of §8.1.1: DelayOpen is off (no OPEN is ever delayed);
// DampPeerOscillations is on when the session restarts automatically (the IdleHoldTimer
// carries the jittered back-off); PassiveTcpEstablishment comes with the start event and
// means what operators mean by a passive peer: never connect. §8.2.2 starts the
// ConnectRetryTimer in Active and connects when it expires even for a passive start; here a
// passive session arms no ConnectRetryTimer and waits in Active for the peer's connection
// for as long as it takes.

import type { Capability } from "./wire/capabilities.ts";
import { CeaseSubcode, ErrorCode, FsmSubcode, OpenSubcode } from "./wire/constants.ts";
import { ByteWriter, encodeCapability, makeOpen, negotiate, openAsn } from "./wire/index.ts";
import type { Notification } from "./wire/notification.ts";
import type { Negotiated, Open } from "./wire/open.ts";
import type { SessionReset } from "./wire/outcome.ts";

export const FsmStateName = {
  Idle: "Idle",
  Connect: "Connect",
  Active: "Active",
  OpenSent: "OpenSent",
  OpenConfirm: "OpenConfirm",
  Established: "Established",
} as const;
export type FsmStateName = (typeof FsmStateName)[keyof typeof FsmStateName];

export type TimerName = "connectRetry" | "hold" | "keepalive" | "idleHold";

/** Per-peer settings the FSM needs (all times in the unit their name says). */
export interface FsmConfig {
  readonly localAs: number;
  readonly peerAs: number;
  /** Local BGP Identifier as an unsigned 32-bit integer. */
  readonly bgpId: number;
  /** Hold time proposed in our OPEN: 0 (no keepalives) or at least 3 (RFC 4271 §4.2). */
  readonly holdTimeSec: number;
  /** Smallest non-zero hold time accepted from the peer (RFC 4271 §6.2 allows refusing). */
  readonly minHoldTimeSec: number;
  /** ConnectRetryTimer base; each retry is jittered (RFC 4271 §10). */
  readonly connectRetryMs: number;
  /** IdleHoldTimer (DampPeerOscillations): base, doubled per consecutive failure, capped. */
  readonly idleHoldMs: number;
  readonly idleHoldMaxMs: number;
  /** Hold timer while waiting for the peer's OPEN: "a large value", 4 minutes (§8.2.2). */
  readonly openSentHoldMs: number;
  /** Capabilities advertised in our OPEN. */
  readonly capabilities: readonly Capability[];
  /** Capabilities the peer must also advertise, or we refuse it with 2/7 (RFC 5492 §5). */
  readonly requiredCapabilities: readonly Capability["kind"][];
  /** A session that stayed up this long resets the back-off counter. */
  readonly stableMs: number;
}

export const defaultFsmConfig = (
  c: Pick<FsmConfig, "localAs" | "peerAs" | "bgpId"> & Partial<FsmConfig>,
): FsmConfig => ({
  holdTimeSec: 90,
  minHoldTimeSec: 3,
  connectRetryMs: 5_000,
  idleHoldMs: 1_000,
  idleHoldMaxMs: 60_000,
  openSentHoldMs: 240_000,
  capabilities: [],
  requiredCapabilities: [],
  stableMs: 60_000,
  ...c,
});

export interface FsmState {
  readonly name: FsmStateName;
  readonly connectRetryCounter: number;
  /** Absolute deadlines (ms, same clock as `nowMs`) of the running timers. */
  readonly timers: Readonly<Partial<Record<TimerName, number>>>;
  /** PassiveTcpEstablishment: wait in Active instead of connecting. */
  readonly passive: boolean;
  /** Restart by itself after a failure (AutomaticStart + IdleHoldTimer). */
  readonly autoRestart: boolean;
  /** Negotiated hold and keepalive intervals; 0 means none (hold time 0). */
  readonly holdTimeMs: number;
  readonly keepaliveMs: number;
  readonly localOpen?: Open;
  readonly peerOpen?: Open;
  readonly negotiated?: Negotiated;
  readonly establishedAtMs?: number;
}

export const initialFsmState = (): FsmState => ({
  name: "Idle",
  connectRetryCounter: 0,
  timers: {},
  passive: false,
  autoRestart: false,
  holdTimeMs: 0,
  keepaliveMs: 0,
});

/** RFC 4271 §8.1 events (numbers in the comments), with the payloads the FSM needs. */
export type FsmEvent =
  | { readonly type: "ManualStart"; readonly passive?: boolean } // 1, 4
  | { readonly type: "ManualStop"; readonly communication?: string } // 2
  | { readonly type: "AutomaticStart"; readonly passive?: boolean } // 3, 5, 6, 7
  | {
      // 8
      readonly type: "AutomaticStop";
      readonly subcode?: number;
      readonly reason?: string;
      /** The Cease NOTIFICATION's data (e.g. RFC 4486 §4: AFI, SAFI and the prefix bound). */
      readonly data?: Uint8Array;
      /** false: stay in Idle until the next start event (no IdleHoldTimer restart). */
      readonly autoRestart?: boolean;
    }
  | { readonly type: "ConnectRetryTimerExpires" } // 9
  | { readonly type: "HoldTimerExpires" } // 10
  | { readonly type: "KeepaliveTimerExpires" } // 11
  | { readonly type: "DelayOpenTimerExpires" } // 12
  | { readonly type: "IdleHoldTimerExpires" } // 13
  | { readonly type: "TcpConnectionValid" } // 14
  | { readonly type: "TcpCrInvalid" } // 15
  | { readonly type: "TcpCrAcked" } // 16: our outgoing connection is up
  | { readonly type: "TcpConnectionConfirmed" } // 17: we accepted the peer's connection
  | { readonly type: "TcpConnectionFails"; readonly reason?: string } // 18
  | { readonly type: "BgpOpen"; readonly open: Open } // 19
  | { readonly type: "BgpOpenWithDelayOpenTimerRunning"; readonly open: Open } // 20
  | { readonly type: "BgpHeaderErr"; readonly error: SessionReset } // 21
  | { readonly type: "BgpOpenMsgErr"; readonly error: SessionReset } // 22
  | { readonly type: "OpenCollisionDump" } // 23
  | { readonly type: "NotifMsgVerErr"; readonly notification: Notification } // 24
  | { readonly type: "NotifMsg"; readonly notification: Notification } // 25
  | { readonly type: "KeepAliveMsg" } // 26
  | { readonly type: "UpdateMsg" } // 27
  | { readonly type: "UpdateMsgErr"; readonly error: SessionReset } // 28
  | { readonly type: "RouteRefreshMsg" } // RFC 2918: valid only in Established
  | { readonly type: "RouteRefreshMsgErr"; readonly error: SessionReset }; // RFC 7313 §5

export type FsmEventType = FsmEvent["type"];

export interface SendNotification {
  readonly type: "send-notification";
  readonly code: number;
  readonly subcode: number;
  readonly data?: Uint8Array;
  readonly communication?: string;
}

export type FsmAction =
  | { readonly type: "connect" }
  | { readonly type: "drop-connection" }
  | { readonly type: "send-open"; readonly open: Open }
  | { readonly type: "send-keepalive" }
  | SendNotification
  | { readonly type: "established"; readonly negotiated: Negotiated; readonly peerOpen: Open }
  /** Entered Idle from a live state: why, and whether routes learned must be dropped. */
  | { readonly type: "down"; readonly reason: string; readonly wasEstablished: boolean };

export interface FsmStep {
  readonly state: FsmState;
  readonly actions: readonly FsmAction[];
}

/** RFC 4271 §10: timers are jittered by a random factor in [0.75, 1]. */
export const jitter = (ms: number, rng: () => number): number =>
  Math.round(ms * (0.75 + 0.25 * rng()));

/** IdleHoldTimer back-off: base × 2^(failures − 1), capped, jittered. */
export function backoffMs(config: FsmConfig, failures: number, rng: () => number): number {
  const exp = Math.min(Math.max(failures - 1, 0), 20);
  return jitter(Math.min(config.idleHoldMaxMs, config.idleHoldMs * 2 ** exp), rng);
}

/** The earliest running timer deadline, or undefined. */
export function nextDeadline(s: FsmState): number | undefined {
  let min: number | undefined;
  for (const v of Object.values(s.timers))
    if (v !== undefined && (min === undefined || v < min)) min = v;
  return min;
}

const TIMER_EVENT: Record<TimerName, FsmEvent> = {
  connectRetry: { type: "ConnectRetryTimerExpires" },
  hold: { type: "HoldTimerExpires" },
  keepalive: { type: "KeepaliveTimerExpires" },
  idleHold: { type: "IdleHoldTimerExpires" },
};

/** Events for every timer whose deadline is at or before `nowMs`, hold first. */
export function expiredTimers(s: FsmState, nowMs: number): FsmEvent[] {
  const out: FsmEvent[] = [];
  for (const t of ["hold", "keepalive", "connectRetry", "idleHold"] as const) {
    const d = s.timers[t];
    if (d !== undefined && d <= nowMs) out.push(TIMER_EVENT[t]);
  }
  return out;
}

/** RFC 4271 §6.8: which connection survives a collision, given both BGP Identifiers. */
export function collisionSurvivor(localId: number, remoteId: number): "incoming" | "outgoing" {
  // "If the value of the local BGP Identifier is less than the remote one, the local system
  // closes the BGP connection that already exists (the one initiated by the local system)".
  return localId >>> 0 < remoteId >>> 0 ? "incoming" : "outgoing";
}

const EMPTY: readonly FsmAction[] = [];

/** Validates the peer's OPEN (RFC 4271 §6.2, RFC 5492 §5); returns the error, or null. */
export function checkOpen(config: FsmConfig, open: Open): SendNotification | null {
  const openError = (subcode: number, data?: Uint8Array): SendNotification => ({
    type: "send-notification",
    code: ErrorCode.Open,
    subcode,
    ...(data ? { data } : {}),
  });
  const asn = openAsn(open);
  if (asn !== config.peerAs) {
    return openError(OpenSubcode.BadPeerAs, Uint8Array.of(open.myAs >> 8, open.myAs & 0xff));
  }
  // RFC 6286 §2.2: the same identifier is only a problem between internal peers.
  if (config.localAs === config.peerAs && open.bgpId >>> 0 === config.bgpId >>> 0) {
    return openError(OpenSubcode.BadBgpIdentifier);
  }
  if (open.holdTime !== 0 && open.holdTime < config.minHoldTimeSec) {
    return openError(OpenSubcode.UnacceptableHoldTime);
  }
  const missing = config.requiredCapabilities.filter(
    (kind) => !open.capabilities.some((c) => c.kind === kind),
  );
  if (missing.length > 0) {
    // The data lists the capabilities that caused the refusal.
    const w = new ByteWriter(64);
    for (const kind of missing) {
      const ours = config.capabilities.find((c) => c.kind === kind);
      if (ours) encodeCapability(w, ours);
    }
    return openError(OpenSubcode.UnsupportedCapability, w.finish());
  }
  return null;
}

/** Our OPEN for this peer. */
export const localOpen = (config: FsmConfig): Open =>
  makeOpen({
    asn: config.localAs,
    holdTime: config.holdTimeSec,
    bgpId: config.bgpId,
    capabilities: config.capabilities,
  });

const cease = (subcode: number, communication?: string, data?: Uint8Array): SendNotification => ({
  type: "send-notification",
  code: ErrorCode.Cease,
  subcode,
  ...(communication !== undefined ? { communication } : {}),
  ...(data !== undefined ? { data } : {}),
});

const fromReset = (e: SessionReset): SendNotification => ({
  type: "send-notification",
  code: e.code,
  subcode: e.subcode,
  data: e.data,
});

const fsmError = (subcode: number): SendNotification => ({
  type: "send-notification",
  code: ErrorCode.Fsm,
  subcode,
});

const FSM_SUBCODE: Partial<Record<FsmStateName, number>> = {
  OpenSent: FsmSubcode.UnexpectedInOpenSent,
  OpenConfirm: FsmSubcode.UnexpectedInOpenConfirm,
  Established: FsmSubcode.UnexpectedInEstablished,
};

function withTimers(s: FsmState, patch: Partial<Record<TimerName, number | undefined>>): FsmState {
  const timers: Partial<Record<TimerName, number>> = { ...s.timers };
  for (const [k, v] of Object.entries(patch) as [TimerName, number | undefined][]) {
    if (v === undefined) delete timers[k];
    else timers[k] = v;
  }
  return { ...s, timers };
}

/**
 * Advances the FSM. Pure: the same inputs give the same outputs; `rng` (for jitter) is the
 * only other input and is injected so tests are deterministic.
 */
export function step(
  config: FsmConfig,
  s: FsmState,
  event: FsmEvent,
  nowMs: number,
  rng: () => number = Math.random,
): FsmStep {
  const connectRetry = () => nowMs + jitter(config.connectRetryMs, rng);
  /** The ConnectRetryTimer of Active: none for a passive session, which never connects. */
  const activeRetry = (passive: boolean) => (passive ? undefined : connectRetry());

  /**
   * Back to Idle: drop the connection, release resources; `counter` is the new
   * ConnectRetryCounter. With automatic restart the IdleHoldTimer is armed with back-off.
   */
  const toIdle = (
    reason: string,
    counter: "reset" | "keep" | "increment",
    before: readonly FsmAction[] = EMPTY,
    autoRestart = s.autoRestart,
  ): FsmStep => {
    let n = s.connectRetryCounter;
    // A session that stayed up long enough forgets earlier failures.
    if (s.establishedAtMs !== undefined && nowMs - s.establishedAtMs >= config.stableMs) n = 0;
    if (counter === "reset") n = 0;
    else if (counter === "increment") n += 1;
    const timers: Partial<Record<TimerName, number>> = {};
    if (autoRestart) timers.idleHold = nowMs + backoffMs(config, Math.max(n, 1), rng);
    const state: FsmState = {
      name: "Idle",
      connectRetryCounter: n,
      timers,
      passive: s.passive,
      autoRestart,
      holdTimeMs: 0,
      keepaliveMs: 0,
    };
    const actions: FsmAction[] = [...before];
    if (s.name !== "Idle") {
      actions.push({ type: "drop-connection" });
      actions.push({ type: "down", reason, wasEstablished: s.name === "Established" });
    }
    return { state, actions };
  };

  /** AutomaticStop (event 8) in a state with a connection: Cease, then Idle. */
  const automaticStop = (e: Extract<FsmEvent, { type: "AutomaticStop" }>): FsmStep =>
    toIdle(
      e.reason ?? "automatic stop",
      "increment",
      [cease(e.subcode ?? CeaseSubcode.AdministrativeReset, undefined, e.data)],
      e.autoRestart ?? s.autoRestart,
    );

  const start = (passive: boolean, autoRestart: boolean, resetCounter: boolean): FsmStep => {
    const base: FsmState = {
      ...s,
      connectRetryCounter: resetCounter ? 0 : s.connectRetryCounter,
      passive,
      autoRestart,
      timers: {},
    };
    if (passive) return { state: { ...base, name: "Active" }, actions: EMPTY };
    return {
      state: { ...base, name: "Connect", timers: { connectRetry: connectRetry() } },
      actions: [{ type: "connect" }],
    };
  };

  /** TCP is up (either direction): send our OPEN, wait for the peer's with a long hold. */
  const openSent = (): FsmStep => {
    const open = localOpen(config);
    const state = withTimers(
      { ...s, name: "OpenSent", localOpen: open },
      { connectRetry: undefined, hold: nowMs + config.openSentHoldMs },
    );
    return { state, actions: [{ type: "send-open", open }] };
  };

  const notification = (e: Extract<FsmEvent, { notification: Notification }>) =>
    `peer sent NOTIFICATION ${e.notification.code}/${e.notification.subcode}${
      e.notification.communication ? ` "${e.notification.communication}"` : ""
    }`;

  switch (s.name) {
    case "Idle":
      switch (event.type) {
        case "ManualStart":
          return start(event.passive ?? false, s.autoRestart, true);
        case "AutomaticStart":
          return start(event.passive ?? s.passive, true, true);
        case "IdleHoldTimerExpires":
          // DampPeerOscillations: the automatic restart after the back-off; keeps the count.
          return start(s.passive, true, false);
        default:
          return { state: s, actions: EMPTY }; // §8.2.2: no change in Idle
      }

    case "Connect":
    case "Active":
      switch (event.type) {
        case "ManualStart":
        case "AutomaticStart":
        case "TcpConnectionValid":
        case "TcpCrInvalid":
          return { state: s, actions: EMPTY };
        case "ManualStop":
          return toIdle("manual stop", "reset", EMPTY, false);
        case "AutomaticStop":
          // No connection to send a NOTIFICATION on: just Idle.
          return toIdle(
            event.reason ?? "automatic stop",
            "increment",
            EMPTY,
            event.autoRestart ?? s.autoRestart,
          );
        case "ConnectRetryTimerExpires":
          // A passive session never connects (see the head of this file).
          if (s.passive)
            return { state: withTimers(s, { connectRetry: undefined }), actions: EMPTY };
          // Connect: drop the attempt and retry; Active: start connecting.
          return {
            state: { ...withTimers(s, { connectRetry: connectRetry() }), name: "Connect" },
            actions:
              s.name === "Connect"
                ? [{ type: "drop-connection" }, { type: "connect" }]
                : [{ type: "connect" }],
          };
        case "TcpCrAcked":
        case "TcpConnectionConfirmed":
          return openSent();
        case "TcpConnectionFails":
          // DelayOpen is never running: back to Idle (the IdleHoldTimer restarts us).
          return toIdle(event.reason ?? "TCP connection failed", "increment");
        default:
          return toIdle(`unexpected ${event.type} in ${s.name}`, "increment");
      }

    case "OpenSent":
      switch (event.type) {
        case "ManualStart":
        case "AutomaticStart":
        case "TcpConnectionValid":
        case "TcpCrInvalid":
        case "TcpCrAcked":
        case "TcpConnectionConfirmed":
          return { state: s, actions: EMPTY }; // collisions are tracked by the session
        case "ManualStop":
          return toIdle(
            "manual stop",
            "reset",
            [cease(CeaseSubcode.AdministrativeShutdown, event.communication)],
            false,
          );
        case "AutomaticStop":
          return automaticStop(event);
        case "HoldTimerExpires":
          return toIdle("hold timer expired in OpenSent", "increment", [
            { type: "send-notification", code: ErrorCode.HoldTimerExpired, subcode: 0 },
          ]);
        case "TcpConnectionFails":
          // §8.2.2: close, restart the ConnectRetryTimer, wait in Active.
          return {
            state: withTimers(
              { ...s, name: "Active" },
              { hold: undefined, connectRetry: activeRetry(s.passive) },
            ),
            actions: [{ type: "drop-connection" }],
          };
        case "BgpOpen": {
          const bad = checkOpen(config, event.open);
          if (bad) return toIdle(`refused the peer's OPEN (2/${bad.subcode})`, "increment", [bad]);
          const local = s.localOpen ?? localOpen(config);
          const ibgp = config.localAs === config.peerAs;
          const negotiated = negotiate(local, event.open, ibgp);
          // RFC 4271 §4.2: the smaller hold time; KEEPALIVE at a third of it; 0 = none.
          const holdTimeMs = negotiated.holdTime * 1000;
          const keepaliveMs = Math.floor(negotiated.holdTime / 3) * 1000;
          const state = withTimers(
            {
              ...s,
              name: "OpenConfirm",
              peerOpen: event.open,
              negotiated,
              holdTimeMs,
              keepaliveMs,
            },
            {
              connectRetry: undefined,
              hold: holdTimeMs > 0 ? nowMs + holdTimeMs : undefined,
              keepalive: keepaliveMs > 0 ? nowMs + keepaliveMs : undefined,
            },
          );
          return { state, actions: [{ type: "send-keepalive" }] };
        }
        case "BgpHeaderErr":
        case "BgpOpenMsgErr":
          return toIdle(event.error.reason, "increment", [fromReset(event.error)]);
        case "OpenCollisionDump":
          return toIdle("connection collision", "increment", [
            cease(CeaseSubcode.ConnectionCollisionResolution),
          ]);
        case "NotifMsgVerErr":
          return toIdle(notification(event), "keep");
        case "NotifMsg":
          return toIdle(notification(event), "increment");
        default:
          return toIdle(`unexpected ${event.type} in OpenSent`, "increment", [
            fsmError(FSM_SUBCODE.OpenSent!),
          ]);
      }

    case "OpenConfirm":
      switch (event.type) {
        case "ManualStart":
        case "AutomaticStart":
        case "TcpConnectionValid":
        case "TcpCrInvalid":
        case "TcpCrAcked":
        case "TcpConnectionConfirmed":
          return { state: s, actions: EMPTY };
        case "ManualStop":
          return toIdle(
            "manual stop",
            "reset",
            [cease(CeaseSubcode.AdministrativeShutdown, event.communication)],
            false,
          );
        case "AutomaticStop":
          return automaticStop(event);
        case "HoldTimerExpires":
          return toIdle("hold timer expired in OpenConfirm", "increment", [
            { type: "send-notification", code: ErrorCode.HoldTimerExpired, subcode: 0 },
          ]);
        case "KeepaliveTimerExpires":
          return {
            state: withTimers(s, { keepalive: nowMs + s.keepaliveMs }),
            actions: [{ type: "send-keepalive" }],
          };
        case "TcpConnectionFails":
          return toIdle(event.reason ?? "TCP connection failed", "increment");
        case "NotifMsgVerErr":
          return toIdle(notification(event), "keep");
        case "NotifMsg":
          return toIdle(notification(event), "increment");
        case "BgpHeaderErr":
        case "BgpOpenMsgErr":
          return toIdle(event.error.reason, "increment", [fromReset(event.error)]);
        case "OpenCollisionDump":
          return toIdle("connection collision", "increment", [
            cease(CeaseSubcode.ConnectionCollisionResolution),
          ]);
        case "KeepAliveMsg": {
          const state = withTimers(
            { ...s, name: "Established", establishedAtMs: nowMs },
            { hold: s.holdTimeMs > 0 ? nowMs + s.holdTimeMs : undefined },
          );
          return {
            state,
            actions: [{ type: "established", negotiated: s.negotiated!, peerOpen: s.peerOpen! }],
          };
        }
        default:
          return toIdle(`unexpected ${event.type} in OpenConfirm`, "increment", [
            fsmError(FSM_SUBCODE.OpenConfirm!),
          ]);
      }

    case "Established":
      switch (event.type) {
        case "ManualStart":
        case "AutomaticStart":
        case "TcpConnectionValid":
        case "TcpCrInvalid":
        case "TcpCrAcked":
        case "TcpConnectionConfirmed":
          return { state: s, actions: EMPTY };
        case "ManualStop":
          return toIdle(
            "manual stop",
            "reset",
            [cease(CeaseSubcode.AdministrativeShutdown, event.communication)],
            false,
          );
        case "AutomaticStop":
          return automaticStop(event);
        case "HoldTimerExpires":
          return toIdle("hold timer expired", "increment", [
            { type: "send-notification", code: ErrorCode.HoldTimerExpired, subcode: 0 },
          ]);
        case "KeepaliveTimerExpires":
          return {
            state: withTimers(s, { keepalive: nowMs + s.keepaliveMs }),
            actions: [{ type: "send-keepalive" }],
          };
        case "OpenCollisionDump":
          return toIdle("connection collision", "increment", [
            cease(CeaseSubcode.ConnectionCollisionResolution),
          ]);
        case "TcpConnectionFails":
          return toIdle(event.reason ?? "TCP connection failed", "increment");
        case "NotifMsgVerErr":
        case "NotifMsg":
          return toIdle(notification(event), "increment");
        case "KeepAliveMsg":
        case "UpdateMsg":
          // §8.2.2: restart the HoldTimer (when the negotiated hold time is non-zero).
          return s.holdTimeMs > 0
            ? { state: withTimers(s, { hold: nowMs + s.holdTimeMs }), actions: EMPTY }
            : { state: s, actions: EMPTY };
        case "RouteRefreshMsg":
          return { state: s, actions: EMPTY };
        case "UpdateMsgErr":
        case "RouteRefreshMsgErr":
        // §8.2.2 lists header errors under "other events" (an FSM error), but §6.1 says a
        // header error is reported as such; the specific code tells the peer more.
        case "BgpHeaderErr":
          return toIdle(event.error.reason, "increment", [fromReset(event.error)]);
        default:
          return toIdle(`unexpected ${event.type} in Established`, "increment", [
            fsmError(FSM_SUBCODE.Established!),
          ]);
      }
  }
}
