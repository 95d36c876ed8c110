// The one place health becomes action (docs/architecture.md#one-source-of-truth-for-health):
// a pure function from (config, health, admin state, MUX health, damping history, time) to
// what the MUX should do — the backend states the forwarder uses, the VIPs BGP announces,
// and the damping and hold-down state to carry to the next step. The same inputs always
// give the same answer, on every MUX.
import { isIPv6 } from "node:net";
import type { Config, ServiceConfig } from "../config/schema.ts";
import { backendKey } from "../health/targets.ts";
import type { BackendState, ServiceModel, ServicePort } from "../lb/service.ts";
import { type DampingConfig, type DampingState, noDamping, stepDamping } from "./damping.ts";
import {
  holdDownLeftMs,
  initialMuxHealth,
  type MuxHealthState,
  stepMuxHealth,
} from "./mux-health.ts";
/** RFC 8326 GRACEFUL_SHUTDOWN well-known community. */
export const GRACEFUL_SHUTDOWN = "65535:0";

export interface AdminState {
  /** MUX drain started at this time (ms); undefined when not draining. */
  muxDrainSinceMs?: number;
  /** Service name -> drain start (ms). */
  serviceDrains: ReadonlyMap<string, number>;
  /** Backend keys ("service/dip") drained by an operator: no new flows. */
  drainedBackends: ReadonlySet<string>;
}

export const noAdmin = (): AdminState => ({ serviceDrains: new Map(), drainedBackends: new Set() });

/** What the controller carries from one decision to the next. */
export interface DecisionState {
  mux: MuxHealthState;
  damping: DampingState;
}

export const initialDecisionState = (): DecisionState => ({
  mux: initialMuxHealth(),
  damping: noDamping(),
});

export interface DesiredInput {
  config: Config;
  /** Health of a backend; undefined (never reported) counts as down. */
  backendUp: (key: string) => boolean | undefined;
  admin: AdminState;
  /** Raw MUX self-health now (forwarder heartbeat fresh, ...); hold-down is applied here. */
  muxHealthy: boolean;
  nowMs: number;
  /** The previous decision's state (default: a fresh, healthy MUX with no flap history). */
  state?: DecisionState;
}

export interface DesiredRoute {
  prefix: string;
  /** Extra communities (graceful shutdown while draining). */
  communities: string[];
  services: string[];
}

/** Why a service's VIP is (or is not) announced. Routes are decided on `kind`, never on text. */
export type VipReason =
  | { kind: "healthy" }
  | { kind: "draining" }
  | { kind: "disabled" }
  | { kind: "mux-unhealthy" }
  | { kind: "mux-hold-down"; leftMs: number }
  | { kind: "below-min-healthy"; healthy: number; minHealthy: number }
  | { kind: "mux-drained" }
  | { kind: "service-drained" }
  | { kind: "suppressed"; penalty: number };

/** The text `vipmux status` shows for a reason. */
export function describeVipReason(r: VipReason): string {
  switch (r.kind) {
    case "healthy":
      return "healthy";
    case "draining":
      return "draining";
    case "disabled":
      return "disabled in config";
    case "mux-unhealthy":
      return "MUX unhealthy";
    case "mux-hold-down":
      return `MUX recovered, hold-down ${Math.ceil(r.leftMs / 1000)} s left`;
    case "below-min-healthy":
      return `${r.healthy} healthy < min-healthy ${r.minHealthy}`;
    case "mux-drained":
      return "MUX drained";
    case "service-drained":
      return "service drained";
    case "suppressed":
      return `suppressed by flap damping (penalty ${r.penalty})`;
  }
}

export interface ServiceStatus {
  name: string;
  vip: string;
  healthy: number;
  total: number;
  announced: boolean;
  reason: VipReason;
}

export interface Desired {
  model: ServiceModel;
  routes: Map<string, DesiredRoute>;
  services: ServiceStatus[];
  /** The state to pass to the next decision. */
  state: DecisionState;
}

export const vipPrefix = (vip: string) => (isIPv6(vip) ? `${vip}/128` : `${vip}/32`);

/** Listener ports of a service; a range becomes one entry per port (the VIP map is exact). */
export function servicePorts(s: ServiceConfig): ServicePort[] {
  const out: ServicePort[] = [];
  for (const p of s.ports) {
    if (p.port !== undefined) out.push({ protocol: p.protocol, port: p.port });
    else {
      const [a, b] = (p.portRange ?? "").split("-").map(Number);
      for (let port = a ?? 0; port <= (b ?? -1); port++) out.push({ protocol: p.protocol, port });
    }
  }
  return out;
}

export function dampingConfig(config: Config): DampingConfig {
  const d = config.bgp.damping;
  return {
    enabled: d.enabled,
    penalty: d.penalty,
    suppress: d.suppress,
    reuse: d.reuse,
    halfLifeMs: d.halfLife,
    maxSuppressMs: d.maxSuppress,
  };
}

export function computeDesired(input: DesiredInput): Desired {
  const { config, admin, nowMs } = input;
  const prev = input.state ?? initialDecisionState();
  const holdDownMs = config.health.holdDown;
  const mux = stepMuxHealth(prev.mux, input.muxHealthy, nowMs, holdDownMs);
  const drainWait = config.bgp.drain.wait;

  // Backend states, and whether each service is announceable on health alone.
  const healthyCount: number[] = [];
  const model: ServiceModel = {
    services: config.services.map((s) => {
      let healthy = 0;
      const backends = s.backends.map((b) => {
        const key = backendKey(s.name, b.dip);
        const up = s.health.type === "none" ? true : input.backendUp(key) === true;
        let state: BackendState = up ? "up" : "down";
        // An operator drain (or weight 0) keeps existing flows but takes no new ones.
        if (up && (admin.drainedBackends.has(key) || b.weight === 0)) state = "draining";
        if (state === "up") healthy++;
        return { dip: b.dip, host: b.host, weight: b.weight, state };
      });
      healthyCount.push(healthy);
      return {
        name: s.name,
        vip: s.vip,
        ports: servicePorts(s),
        distribution: s.distribution,
        vni: s.vni,
        maglevSize: config.dataplane.maglevTableSize,
        backends,
      };
    }),
  };

  // Flap damping counts health-driven changes only: operator drains and MUX health are
  // not flaps (the latter has its own hold-down). A VIP shared by several services is
  // announceable when any of them is.
  const eligible = new Map<string, boolean>();
  config.services.forEach((s, i) => {
    const prefix = vipPrefix(s.vip);
    const ok = s.enabled && healthyCount[i]! >= s.minHealthy;
    eligible.set(prefix, (eligible.get(prefix) ?? false) || ok);
  });
  const damping = stepDamping(prev.damping, eligible, nowMs, dampingConfig(config));

  const routes = new Map<string, DesiredRoute>();
  const services = config.services.map((s, i): ServiceStatus => {
    const healthy = healthyCount[i]!;
    const prefix = vipPrefix(s.vip);
    const serviceDrain = admin.serviceDrains.get(s.name);
    const suppressedPenalty = damping.suppressed.get(prefix);
    let reason: VipReason;
    if (!s.enabled) reason = { kind: "disabled" };
    else if (!mux.healthy)
      reason =
        mux.recoveredAtMs === undefined
          ? { kind: "mux-unhealthy" }
          : { kind: "mux-hold-down", leftMs: holdDownLeftMs(mux, nowMs, holdDownMs) };
    else if (healthy < s.minHealthy)
      reason = { kind: "below-min-healthy", healthy, minHealthy: s.minHealthy };
    else if (admin.muxDrainSinceMs !== undefined && nowMs - admin.muxDrainSinceMs >= drainWait)
      reason = { kind: "mux-drained" };
    else if (serviceDrain !== undefined && nowMs - serviceDrain >= drainWait)
      reason = { kind: "service-drained" };
    else if (suppressedPenalty !== undefined)
      reason = { kind: "suppressed", penalty: suppressedPenalty };
    else
      reason = {
        kind:
          admin.muxDrainSinceMs !== undefined || serviceDrain !== undefined
            ? "draining"
            : "healthy",
      };
    const announced = reason.kind === "healthy" || reason.kind === "draining";
    if (announced) {
      const draining = reason.kind === "draining";
      const r = routes.get(prefix);
      if (r) {
        r.services.push(s.name);
        // A VIP shared by several services drains only when all of them do.
        if (!draining) r.communities = [];
      } else {
        routes.set(prefix, {
          prefix,
          services: [s.name],
          communities: draining ? [GRACEFUL_SHUTDOWN] : [],
        });
      }
    }
    return { name: s.name, vip: s.vip, healthy, total: s.backends.length, announced, reason };
  });
  return { model, routes, services, state: { mux, damping: damping.state } };
}

/** What to change in BGP to go from `prev` to `next`: nothing when nothing changed. */
export function diffRoutes(
  prev: ReadonlyMap<string, DesiredRoute>,
  next: ReadonlyMap<string, DesiredRoute>,
): { announce: DesiredRoute[]; withdraw: string[] } {
  const announce: DesiredRoute[] = [];
  const withdraw: string[] = [];
  for (const [prefix, r] of next) {
    const p = prev.get(prefix);
    if (!p || p.communities.join(",") !== r.communities.join(",")) announce.push(r);
  }
  for (const prefix of prev.keys()) if (!next.has(prefix)) withdraw.push(prefix);
  return { announce, withdraw };
}
