// From service config to probe targets: which address and port each backend is probed
// on, with the service's timers. Pure.
import type { ServiceConfig } from "../config/schema.ts";
import { type ProbeSpec, parseStatusRange } from "./probes.ts";
import type { ProbeTarget } from "./scheduler.ts";

export const backendKey = (service: string, dip: string) => `${service}/${dip}`;

/** The port a backend is probed on: health.port, else the first backend port. */
export function probePort(s: ServiceConfig): number | undefined {
  if (s.health.port !== undefined) return s.health.port;
  const first = s.ports[0];
  if (!first) return undefined;
  if (first.backendPort !== undefined) return first.backendPort;
  if (first.port !== undefined) return first.port;
  return Number(first.portRange?.split("-")[0]);
}

/** Targets for the backends `select` accepts (a host agent: its own; a MUX: health.from mux). */
export function probeTargets(
  services: readonly ServiceConfig[],
  select: (s: ServiceConfig, dip: string, host: string) => boolean,
): ProbeTarget[] {
  const out: ProbeTarget[] = [];
  for (const s of services) {
    const h = s.health;
    if (h.type === "none") continue;
    const port = probePort(s);
    for (const b of s.backends) {
      if (!select(s, b.dip, b.host)) continue;
      let spec: ProbeSpec;
      switch (h.type) {
        case "tcp":
          spec = { type: "tcp", address: b.dip, port: port ?? 0, timeoutMs: h.timeout };
          break;
        case "http":
        case "https": {
          const [statusMin, statusMax] = parseStatusRange(h.expectStatus);
          spec = {
            type: h.type,
            address: b.dip,
            port: port ?? (h.type === "https" ? 443 : 80),
            path: h.path,
            statusMin,
            statusMax,
            ...(h.expectBody !== undefined ? { expectBody: h.expectBody } : {}),
            timeoutMs: h.timeout,
          };
          break;
        }
        case "udp":
          spec = {
            type: "udp",
            address: b.dip,
            port: port ?? 0,
            send: h.send ?? "vipmux-health",
            timeoutMs: h.timeout,
          };
          break;
        case "exec":
          spec = {
            type: "exec",
            command: h.command ?? ["false"],
            env: {
              VIPMUX_SERVICE: s.name,
              VIPMUX_DIP: b.dip,
              VIPMUX_PORT: String(port ?? ""),
              VIPMUX_VIP: s.vip,
            },
            timeoutMs: h.timeout,
          };
          break;
      }
      out.push({
        id: backendKey(s.name, b.dip),
        spec,
        intervalMs: h.interval,
        jitter: h.jitter,
        rise: h.rise,
        fall: h.fall,
      });
    }
  }
  return out;
}
