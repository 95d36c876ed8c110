// The heart of rule 2: one pure function from (config, health, admin state, MUX health,
// time) to what the MUX should do — the backend states the forwarder uses and the VIPs
// BGP announces. The same inputs always give the same answer, on every MUX.
import { isIPv6 } from "node:net";
import type { Config, ServiceConfig } from "../config/schema.ts";
import { backendKey } from "../health/targets.ts";
import type { BackendState, ServiceModel, ServicePort } from "../lb/service.ts";

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

export interface DesiredInput {
  config: Config;
  /** Health of a backend; undefined (never reported) counts as down. */
  backendUp: (key: string) => boolean | undefined;
  admin: AdminState;
  muxHealthy: boolean;
  nowMs: number;
}

export interface DesiredRoute {
  prefix: string;
  /** Extra communities (graceful shutdown while draining). */
  communities: string[];
  services: string[];
}

export interface ServiceStatus {
  name: string;
  vip: string;
  healthy: number;
  total: number;
  announced: boolean;
  reason: string;
}

export interface Desired {
  model: ServiceModel;
  routes: Map<string, DesiredRoute>;
  services: ServiceStatus[];
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

export function computeDesired(input: DesiredInput): Desired {
  const { config, admin, nowMs } = input;
  const drainWait = config.bgp.drain.wait;
  const routes = new Map<string, DesiredRoute>();
  const statuses: ServiceStatus[] = [];
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

      let announced = false;
      let reason: string;
      const serviceDrain = admin.serviceDrains.get(s.name);
      if (!s.enabled) reason = "disabled in config";
      else if (!input.muxHealthy) reason = "MUX unhealthy";
      else if (healthy < s.minHealthy)
        reason = `${healthy} healthy < min-healthy ${s.minHealthy}`;
      else if (admin.muxDrainSinceMs !== undefined && nowMs - admin.muxDrainSinceMs >= drainWait)
        reason = "MUX drained";
      else if (serviceDrain !== undefined && nowMs - serviceDrain >= drainWait)
        reason = "service drained";
      else {
        announced = true;
        reason =
          admin.muxDrainSinceMs !== undefined || serviceDrain !== undefined
            ? "draining"
            : "healthy";
      }
      if (announced) {
        const prefix = vipPrefix(s.vip);
        const draining = reason === "draining";
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
      statuses.push({
        name: s.name,
        vip: s.vip,
        healthy,
        total: s.backends.length,
        announced,
        reason,
      });
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
  return { model, routes, services: statuses };
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
