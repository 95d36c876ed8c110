// The MUX's one view of backend health: host-agent reports for services probed from the
// hosts, the MUX's own probes for `health.from: mux`, and host-agent silence (agent-timeout)
// turning all of that host's DIPs down. The controller reads only this
// (docs/architecture.md#one-source-of-truth-for-health).
import { EventEmitter } from "node:events";
import type { Config } from "../config/schema.ts";
import { ProbeScheduler } from "./scheduler.ts";
import type { BackendReport } from "./stream.ts";
import { backendKey, probeTargets } from "./targets.ts";

interface BackendSource {
  key: string;
  host: string;
  fromMux: boolean;
}

export interface HubEvents {
  change: [key: string, up: boolean, why: string];
  /** Every MUX-side probe, for the latency histogram. */
  probe: [key: string, latencyMs: number];
}

export class HealthHub extends EventEmitter<HubEvents> {
  private backends = new Map<string, BackendSource>();
  /** Reported state per key, from host agents. */
  private readonly reported = new Map<string, boolean>();
  /** Hosts currently heard from within agent-timeout. */
  private readonly aliveHosts = new Set<string>();
  private readonly lastHeard = new Map<string, number>();
  private readonly scheduler: ProbeScheduler;
  private agentTimeoutMs = 3000;
  private timer?: NodeJS.Timeout;
  private readonly now: () => number;

  constructor(opts: { now?: () => number; scheduler?: ProbeScheduler } = {}) {
    super();
    this.now = opts.now ?? Date.now;
    this.scheduler =
      opts.scheduler ??
      new ProbeScheduler({
        onChange: (id, up, r) => this.emit("change", id, up, `mux probe: ${r.detail}`),
        onResult: (id, r) => this.emit("probe", id, r.latencyMs),
      });
  }

  /** Applies a (new) config: which backends exist and where their health comes from. */
  sync(config: Config): void {
    this.agentTimeoutMs = config.health.agentTimeout;
    const next = new Map<string, BackendSource>();
    for (const s of config.services) {
      // health: none means always up (computeDesired); nobody reports on it.
      if (s.health.type === "none") continue;
      for (const b of s.backends) {
        const key = backendKey(s.name, b.dip);
        next.set(key, { key, host: b.host, fromMux: s.health.from === "mux" });
      }
    }
    this.backends = next;
    for (const key of [...this.reported.keys()]) if (!next.has(key)) this.reported.delete(key);
    this.scheduler.sync(probeTargets(config.services, (s) => s.health.from === "mux"));
    if (!this.timer) {
      // Checks silence often enough that a dead agent is noticed within ~agent-timeout + 100 ms.
      this.timer = setInterval(() => this.checkSilence(), 100);
      this.timer.unref?.();
    }
  }

  /** Whether a backend is up; undefined when nothing was ever heard of it. */
  backendUp = (key: string): boolean | undefined => {
    const src = this.backends.get(key);
    if (!src) return undefined;
    if (src.fromMux) return this.scheduler.isUp(key);
    if (!this.aliveHosts.has(src.host)) return this.reported.has(key) ? false : undefined;
    return this.reported.get(key);
  };

  /** Host PAs that have backends under host-agent health. */
  agentHosts(): Set<string> {
    return new Set([...this.backends.values()].filter((b) => !b.fromMux).map((b) => b.host));
  }

  ownsKey = (host: string, key: string): boolean => {
    const src = this.backends.get(key);
    return !!src && !src.fromMux && src.host === host;
  };

  knownHost = (host: string): boolean => this.agentHosts().has(host);

  aliveAgents(): string[] {
    return [...this.aliveHosts];
  }

  /** A report from an authenticated host agent. */
  report(host: string, backends: BackendReport, full: boolean): void {
    this.lastHeard.set(host, this.now());
    const wasAlive = this.aliveHosts.has(host);
    const before = new Map<string, boolean | undefined>();
    const touched = new Set<string>();
    for (const [key] of backends) touched.add(key);
    if (full)
      for (const b of this.backends.values()) if (b.host === host && !b.fromMux) touched.add(b.key);
    if (!wasAlive)
      for (const b of this.backends.values()) if (b.host === host && !b.fromMux) touched.add(b.key);
    for (const key of touched) before.set(key, this.backendUp(key));
    this.aliveHosts.add(host);
    if (full) for (const key of touched) this.reported.set(key, false);
    for (const [key, up] of backends) this.reported.set(key, up);
    for (const key of touched) {
      const now = this.backendUp(key);
      // Unknown counts as down: the first "down" report of a new DIP is no change.
      if ((now === true) !== (before.get(key) === true))
        this.emit("change", key, now === true, `host agent ${host}`);
    }
  }

  /** Marks hosts silent for longer than agent-timeout as dead: all their DIPs down. */
  checkSilence(): void {
    const now = this.now();
    for (const host of [...this.aliveHosts]) {
      if (now - (this.lastHeard.get(host) ?? 0) <= this.agentTimeoutMs) continue;
      const keys = [...this.backends.values()]
        .filter((b) => b.host === host && !b.fromMux)
        .map((b) => b.key);
      const before = keys.map((k) => this.backendUp(k));
      this.aliveHosts.delete(host);
      keys.forEach((k, i) => {
        if (before[i] === true)
          this.emit("change", k, false, `host agent ${host} silent > ${this.agentTimeoutMs} ms`);
      });
    }
  }

  probeStatus() {
    return this.scheduler.status();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.scheduler.stop();
  }
}
