// The `vipmux/bgp` entry point ("ts-bgp"). For now: the wire codec. The speaker (sessions,
// FSM, Adj-RIB-Out) will be exported from here too.

// The speaker: the embeddable BGP library's main surface (docs/bgp.md).
export type { ReceivedIssue, ReceivedRoute } from "./adj-rib-in.ts";
export type { FsmAction, FsmConfig, FsmEvent, FsmState, FsmStep } from "./fsm.ts";
export {
  backoffMs,
  checkOpen,
  collisionSurvivor,
  defaultFsmConfig,
  expiredTimers,
  FsmStateName,
  initialFsmState,
  nextDeadline,
  step,
} from "./fsm.ts";
export type { ExportPolicy, PrefixRange, RouteAttributes } from "./policy.ts";
export type {
  Family,
  MaxPrefixes,
  PeerDownEvent,
  PeerOptions,
  PeerStatus,
  PeerUpEvent,
  SpeakerOptions,
} from "./speaker.ts";
export { DEFAULT_MAX_PREFIXES_TOTAL, maxPrefixesData, Speaker } from "./speaker.ts";
export * from "./wire/index.ts";
