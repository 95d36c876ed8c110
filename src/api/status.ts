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
