// The host-agent side of health: probe this host's DIPs and stream every change to every
// MUX at once (well under 100 ms), with a full snapshot after each (re)connect.
import type { ServiceConfig } from "../config/schema.ts";
import { ProbeScheduler } from "./scheduler.ts";
import { type BackendReport, HealthStreamClient } from "./stream.ts";
import { probeTargets } from "./targets.ts";

export interface AgentHealthOptions {
  /** This host's PA: the agent probes the backends whose `host` is this address. */
  host: string;
  /** This host's health-stream key (src/health/keys.ts). */
  key: string;
  muxes: { address: string; port: number }[];
  heartbeatMs?: number;
  onChange?: (key: string, up: boolean, detail: string) => void;
}

export class AgentHealth {
  private readonly scheduler: ProbeScheduler;
  private readonly clients: HealthStreamClient[];
  private readonly opts: AgentHealthOptions;

  constructor(opts: AgentHealthOptions) {
    this.opts = opts;
    this.scheduler = new ProbeScheduler({
      onChange: (key, up, r) => {
        opts.onChange?.(key, up, r.detail);
        for (const c of this.clients) c.send([[key, up]]);
      },
    });
    this.clients = opts.muxes.map(
      (mux) =>
        new HealthStreamClient({
          key: opts.key,
          host: opts.host,
          mux,
          ...(opts.heartbeatMs !== undefined ? { heartbeatMs: opts.heartbeatMs } : {}),
          snapshot: () => this.snapshot(),
        }),
    );
  }

  /** Starts (or re-targets after a reload) the probes of this host's DIPs. */
  sync(services: readonly ServiceConfig[]): void {
    this.scheduler.sync(
      probeTargets(
        services,
        (s, _dip, host) => s.health.from === "host-agent" && host === this.opts.host,
      ),
    );
    // A reload may add or remove DIPs: resend the whole picture.
    for (const c of this.clients) c.send(this.snapshot(), true);
  }

  start(): void {
    for (const c of this.clients) c.start();
  }

  snapshot(): BackendReport {
    return this.scheduler.status().map((t) => [t.id, t.up]);
  }

  connectedMuxes(): number {
    return this.clients.filter((c) => c.connected).length;
  }

  stop(): void {
    this.scheduler.stop();
    for (const c of this.clients) c.stop();
  }
}
