// Health on the host: probe this host's DIPs (the services' health checks with
// `from: host-agent`), stream every change to every MUX (src/health/stream.ts, the same
// authenticated protocol as src/health/agent.ts), and tell the planner which local DIPs
// are failing, so the host's own pick among its DIPs avoids them too.
//
// Built from the scheduler and the stream client rather than AgentHealth because the host
// also needs each target's last probe result: a DIP is left out of the host's jhash map
// only when its last probe failed and it is not up. A healthy DIP is not up for its first
// `rise` probes after an agent restart, yet its probes succeed, so a restart does not
// rewrite any table.

import type { ServiceConfig } from "../config/schema.ts";
import type { ProbeResult } from "../health/probes.ts";
import { ProbeScheduler } from "../health/scheduler.ts";
import { HealthStreamClient } from "../health/stream.ts";
import { probeTargets } from "../health/targets.ts";
import { formatHostPort } from "../util/host-port.ts";

export interface HostHealthOptions {
  /** This host's PA (also its identity towards the MUXes). */
  host: string;
  /** This host's health-stream key (src/health/keys.ts). */
  key: string;
  muxes: { address: string; port: number }[];
  /** A backend's state flipped, or its failing/passing verdict for the host changed. */
  onChange: (key: string, up: boolean, detail: string) => void;
  /** A MUX stream connected (authenticated) or went down. */
  onStream?: (mux: string, up: boolean, reason?: string) => void;
  /** Every probe's result (metrics). */
  onProbe?: (key: string, result: ProbeResult) => void;
}

export class HostHealth {
  private readonly scheduler: ProbeScheduler;
  private readonly clients: HealthStreamClient[];
  private readonly muxNames: string[];
  private readonly host: string;
  private failing = new Set<string>();

  constructor(opts: HostHealthOptions) {
    this.host = opts.host;
    // The host's verdict: failing while the last probe fails and the DIP is not up.
    // onResult runs before rise/fall is applied, onChange after: both re-judge.
    const judge = (key: string, ok: boolean): boolean => {
      const fail = !ok && this.scheduler.isUp(key) !== true;
      if (fail === this.failing.has(key)) return false;
      if (fail) this.failing.add(key);
      else this.failing.delete(key);
      return true;
    };
    this.scheduler = new ProbeScheduler({
      onChange: (key, up, r) => {
        for (const c of this.clients) c.send([[key, up]]);
        judge(key, r.ok);
        opts.onChange(key, up, r.detail);
      },
      onResult: (key, r) => {
        opts.onProbe?.(key, r);
        if (judge(key, r.ok)) opts.onChange(key, this.scheduler.isUp(key) === true, r.detail);
      },
    });
    this.clients = opts.muxes.map((mux) => {
      const c = new HealthStreamClient({
        key: opts.key,
        host: opts.host,
        mux,
        snapshot: () => this.scheduler.status().map((t) => [t.id, t.up]),
      });
      const name = formatHostPort({ host: mux.address, port: mux.port });
      c.on("up", () => opts.onStream?.(name, true));
      c.on("down", (reason) => opts.onStream?.(name, false, reason));
      // A drop while up is reported by "down" with the same reason; before that, here.
      c.on("dropped", (reason) => {
        if (!c.connected) opts.onStream?.(name, false, reason);
      });
      return c;
    });
    this.muxNames = opts.muxes.map((m) => formatHostPort({ host: m.address, port: m.port }));
  }

  /** Probes the backends of `services` on this host; call again after a reload. */
  sync(services: readonly ServiceConfig[]): void {
    const targets = probeTargets(
      services,
      (s, _dip, host) => s.enabled && s.health.from === "host-agent" && host === this.host,
    );
    this.scheduler.sync(targets);
    const ids = new Set(targets.map((t) => t.id));
    for (const k of this.failing) if (!ids.has(k)) this.failing.delete(k);
    for (const c of this.clients)
      c.send(
        this.scheduler.status().map((t) => [t.id, t.up]),
        true,
      );
  }

  start(): void {
    for (const c of this.clients) c.start();
  }

  /** Keys ("service/dip") of local DIPs the host should not pick for new flows. */
  failingKeys(): ReadonlySet<string> {
    return this.failing;
  }

  connectedMuxes(): number {
    return this.clients.filter((c) => c.connected).length;
  }

  /** Each MUX's stream (`address:port`) and whether it is connected and authenticated. */
  streams(): { mux: string; up: boolean }[] {
    return this.clients.map((c, i) => ({ mux: this.muxNames[i]!, up: c.connected }));
  }

  /** Every probed local DIP ("service/dip") and its state after rise/fall. */
  targets(): { key: string; up: boolean }[] {
    return this.scheduler.status().map((t) => ({ key: t.id, up: t.up }));
  }

  stop(): void {
    this.scheduler.stop();
    for (const c of this.clients) c.stop();
  }
}
