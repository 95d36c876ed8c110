// The answer of the admin API's `GET /v1/status`: built by the MUX daemon
// (src/controller/mux.ts), read by `vipmux status` (src/cli/run.ts), which prints it as
// tables or, with --json, as it is. One type for both sides, so what the daemon sends and
// what the CLI reads cannot drift apart. Plain JSON: no Maps, no undefined for "unknown"
// (null instead, which survives JSON.stringify).
import type { PeerStats } from "../bfd/manager.ts";
import type { PeerStatus } from "../bgp/speaker.ts";
import type { ServiceStatusView } from "../controller/controller.ts";

export interface MuxStatus {
  /** node.name of the config. */
  node: string;
  uptimeSeconds: number;
  /** False: the MUX cannot forward (or just recovered, in hold-down); every VIP is withdrawn. */
  muxHealthy: boolean;
  /** Milliseconds since the forwarder last proved it is alive; null: no forwarder. */
  forwarderHeartbeatAgeMs: number | null;
  peers: Pick<
    PeerStatus,
    | "name"
    | "address"
    | "asn"
    | "state"
    | "establishedForMs"
    | "prefixesSent"
    | "prefixesReceived"
    | "lastError"
  >[];
  /** BFD sessions, one per peer with `bfd` in the config. */
  bfd: PeerStats[];
  /** Per service: healthy backends, whether its VIP is announced, and why (not). */
  services: ServiceStatusView[];
  /** Prefixes announced to the peers, sorted. */
  announced: string[];
  backends: {
    service: string;
    dip: string;
    host: string;
    weight: number;
    /** null: no health report yet. */
    healthy: boolean | null;
    drained: boolean;
  }[];
  admin: { muxDraining: boolean; servicesDraining: string[] };
  /** Host agents the config expects (their PAs) and those whose health stream is alive. */
  hostAgents: { expected: string[]; connected: string[] };
}

/** `GET /v1/bgp/neighbors`: one row per peer, for `vipmux bgp neighbor`. */
export interface BgpNeighbors {
  neighbors: BgpNeighborSummary[];
}

export interface BgpNeighborSummary {
  /** The peer's description, else its address. */
  name: string;
  address: string;
  asn: number;
  /** RFC 4271 FSM state (Idle, Connect, Active, OpenSent, OpenConfirm, Established). */
  state: string;
  /** Seconds the session has been Established; null when it is not. */
  uptimeSeconds: number | null;
  prefixesSent: number;
  /** Prefixes whose change waits for the next UPDATE to this peer. */
  prefixesPending: number;
  prefixesReceived: number;
  /** The BFD session's state; null when the peer has no BFD. */
  bfd: string | null;
  lastError: string;
}

/** `GET /v1/bgp/neighbor?address=ADDR`: one peer in detail (`vipmux bgp neighbor ADDR`). */
export interface BgpNeighborDetail extends BgpNeighborSummary {
  local: { asn: number; routerId: string; address: string | null };
  remote: { port: number; routerId: string | null };
  config: {
    passive: boolean;
    /** Configured local address, else null (the kernel picks). */
    localAddress: string | null;
    connectRetryMs: number | null;
    multihopTtl: number | null;
    /** GTSM (RFC 5082) hop count, null when off. */
    ttlSecurityHops: number | null;
    md5: boolean;
    families: string[];
  };
  holdTime: { configuredSec: number; negotiatedSec: number | null; keepaliveSec: number | null };
  /** Ours as offered, and the peer's as received (null before an OPEN). */
  capabilities: { advertised: string[]; received: string[] | null };
  /** What both OPENs agreed on; null while not Established. */
  negotiated: {
    families: string[];
    fourOctetAs: boolean;
    routeRefresh: boolean;
    enhancedRouteRefresh: boolean;
    extendedMessages: boolean;
    extendedNextHop: boolean;
    /** Families with ADD-PATH in either direction. */
    addPath: string[];
  } | null;
  /** The peer's max-prefixes (RFC 4486), and the bound on all peers together. */
  maxPrefixes: {
    limit: number;
    warningPercent: number;
    restartAfterSeconds: number;
  } | null;
  maxPrefixesTotal: number | null;
  messages: {
    received: { total: number; updates: number; notifications: number; routeRefresh: number };
    sent: { total: number; updates: number; notifications: number };
  };
  /** What the peer's UPDATEs did (RFC 7606 outcomes included), since its session began. */
  updatesReceived: {
    updates: number;
    announced: number;
    withdrawn: number;
    treatAsWithdraw: number;
    attributeDiscard: number;
    endOfRib: string[];
  };
  sendQueueBytes: number;
  /** The BFD session in detail; null without BFD. */
  bfdSession: PeerStats | null;
}

/** One route as a peer holds it or sent it: its path attributes in plain text. */
export interface BgpRoute {
  prefix: string;
  nextHop: string | null;
  /** AS_PATH as text: sequences space-separated, sets in braces. */
  asPath: string;
  origin: "igp" | "egp" | "incomplete" | null;
  med: number | null;
  localPref: number | null;
  communities: string[];
  largeCommunities: string[];
  /** Extended communities as 16 hex digits each. */
  extendedCommunities: string[];
  /** Any other attribute as `NAME: value` (aggregator, atomic aggregate, unknown ones). */
  other: string[];
}

/** `GET /v1/bgp/neighbor/adj-out?address=ADDR`: what the peer holds from us. */
export interface BgpAdjOut {
  neighbor: string;
  routes: (BgpRoute & {
    /** A change of this prefix waits for the next UPDATE. */
    pending: boolean;
  })[];
}

/** `GET /v1/bgp/neighbor/adj-in?address=ADDR`: what the peer sent us (kept, never installed). */
export interface BgpAdjIn {
  neighbor: string;
  routes: (BgpRoute & { ageSeconds: number })[];
  /** The last RFC 7606 outcomes its UPDATEs caused. */
  issues: { action: string; reason: string; prefixes: string[]; ageSeconds: number }[];
}
