// The one reconcile loop: config + health + admin state -> forwarding tables and BGP
// announcements. It keeps what it last applied and sends only differences, so a health
// check that changes nothing sends no UPDATE, and a flap inside rise/fall sends none.
import { EventEmitter } from "node:events";
import type { Config } from "../config/schema.ts";
import type { ServiceModel } from "../lb/service.ts";
import { type DampingConfig, VipDamping } from "./damping.ts";
import {
  type AdminState,
  computeDesired,
  type Desired,
  type DesiredRoute,
  diffRoutes,
  noAdmin,
  type ServiceStatus,
  vipPrefix,
} from "./desired.ts";

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

/** Where announcements go (the BGP speaker behind an adapter). */
export interface RouteSink {
  announce(route: DesiredRoute): void;
  withdraw(prefix: string): void;
}

/** Where forwarding tables go (the dataplane engine behind an adapter). */
export interface TableSink {
  /** Installs the tables; a returned promise settles once the forwarder uses them. */
  apply(model: ServiceModel): unknown;
}

export interface ControllerOptions {
  config: Config;
  backendUp: (key: string) => boolean | undefined;
  routes: RouteSink;
  tables: TableSink;
  /** Raw MUX self-health (forwarder heartbeat fresh, ...). */
  muxHealthy?: () => boolean;
  now?: () => number;
  /** How long the forwarder may take to install tables before it counts as failed. */
  tableTimeoutMs?: number;
}

export interface ControllerEvents {
  reconciled: [
    desired: Desired,
    changes: { announced: number; withdrawn: number; tables: boolean },
  ];
  muxHealth: [healthy: boolean];
  /** The forwarder refused the tables: routes were left as they were. */
  tablesFailed: [error: Error];
}

export class Controller extends EventEmitter<ControllerEvents> {
  private config: Config;
  private readonly opts: ControllerOptions;
  private readonly now: () => number;
  private admin: AdminState = noAdmin();
  private applied = new Map<string, DesiredRoute>();
  private appliedModel = "";
  private last?: Desired;
  private scheduled = false;
  private timer?: NodeJS.Timeout;
  /** Effective MUX health, with hold-down after recovery. */
  private healthy = true;
  private recoveredAt?: number;
  private stopped = false;
  private chain: Promise<unknown> = Promise.resolve();
  private inFlight = 0;
  private damping: VipDamping;

  constructor(opts: ControllerOptions) {
    super();
    this.opts = opts;
    this.config = opts.config;
    this.now = opts.now ?? Date.now;
    this.damping = new VipDamping(dampingConfig(opts.config));
  }

  start(): void {
    void this.reconcile();
    // Timers drive what no event announces: drain waits ending, hold-down expiring,
    // MUX self-health changes.
    this.timer = setInterval(() => {
      if (this.inFlight === 0) void this.reconcile();
    }, 100);
    this.timer.unref?.();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
  }

  /** Something changed (health, admin): reconcile once, soon, however many changes come. */
  poke(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      void this.reconcile();
    });
  }

  reload(config: Config): void {
    if (JSON.stringify(config.bgp.damping) !== JSON.stringify(this.config.bgp.damping))
      this.damping = new VipDamping(dampingConfig(config));
    this.config = config;
    // Admin state of things that no longer exist is dropped with them.
    const names = new Set(config.services.map((s) => s.name));
    const serviceDrains = new Map([...this.admin.serviceDrains].filter(([n]) => names.has(n)));
    const drainedBackends = new Set(
      [...this.admin.drainedBackends].filter((k) => names.has(k.split("/")[0]!)),
    );
    this.admin = { ...this.admin, serviceDrains, drainedBackends };
    void this.reconcile();
  }

  drainMux(): void {
    if (this.admin.muxDrainSinceMs === undefined)
      this.admin = { ...this.admin, muxDrainSinceMs: this.now() };
    this.poke();
  }

  undrainMux(): void {
    const { muxDrainSinceMs: _, ...rest } = this.admin;
    this.admin = rest;
    this.poke();
  }

  drainService(name: string): boolean {
    if (!this.config.services.some((s) => s.name === name)) return false;
    if (!this.admin.serviceDrains.has(name))
      this.admin = {
        ...this.admin,
        serviceDrains: new Map([...this.admin.serviceDrains, [name, this.now()]]),
      };
    this.poke();
    return true;
  }

  undrainService(name: string): boolean {
    const m = new Map(this.admin.serviceDrains);
    const had = m.delete(name);
    this.admin = { ...this.admin, serviceDrains: m };
    this.poke();
    return had;
  }

  drainBackend(key: string, drain = true): boolean {
    const [service, dip] = key.split("/");
    if (
      !this.config.services.some((s) => s.name === service && s.backends.some((b) => b.dip === dip))
    )
      return false;
    const set = new Set(this.admin.drainedBackends);
    if (drain) set.add(key);
    else set.delete(key);
    this.admin = { ...this.admin, drainedBackends: set };
    this.poke();
    return true;
  }

  adminState(): AdminState {
    return this.admin;
  }

  status(): { services: ServiceStatus[]; announced: string[]; muxHealthy: boolean } {
    return {
      services: this.last?.services ?? [],
      announced: [...this.applied.keys()].sort(),
      muxHealthy: this.healthy,
    };
  }

  private muxHealthy(): boolean {
    const raw = this.opts.muxHealthy?.() ?? true;
    const now = this.now();
    if (!raw) {
      this.recoveredAt = undefined;
      if (this.healthy) {
        this.healthy = false;
        this.emit("muxHealth", false);
      }
      return false;
    }
    if (!this.healthy) {
      this.recoveredAt ??= now;
      // Hold-down: a MUX that just recovered waits before attracting traffic again.
      if (now - this.recoveredAt < this.config.health.holdDown) return false;
      this.healthy = true;
      this.recoveredAt = undefined;
      this.emit("muxHealth", true);
    }
    return true;
  }

  /**
   * Flap damping on health-driven changes only: a VIP whose backends keep failing and
   * recovering stays withdrawn until it is stable; operator drains and MUX health are not
   * flaps (the latter has its own hold-down).
   */
  private applyDamping(desired: Desired): void {
    const now = this.now();
    const eligible = new Map<string, boolean>();
    for (const s of desired.services) {
      const prefix = vipPrefix(s.vip);
      const svc = this.config.services.find((c) => c.name === s.name);
      const ok = !!svc && svc.enabled && s.healthy >= svc.minHealthy;
      eligible.set(prefix, (eligible.get(prefix) ?? false) || ok);
    }
    this.damping.retain(new Set(eligible.keys()));
    for (const [prefix, ok] of eligible) {
      if (this.damping.update(prefix, ok, now)) continue;
      if (!ok) continue;
      const { penalty } = this.damping.state(prefix, now);
      desired.routes.delete(prefix);
      for (const s of desired.services)
        if (vipPrefix(s.vip) === prefix && s.announced) {
          s.announced = false;
          s.reason = `suppressed by flap damping (penalty ${penalty})`;
        }
    }
  }

  /**
   * Reconciles once; calls are serialized, so tables and routes are always applied in the
   * order the decisions were made.
   */
  reconcile(): Promise<Desired> {
    this.inFlight++;
    const run = this.chain.then(() => this.reconcileOnce());
    this.chain = run.catch(() => {});
    return run.finally(() => {
      this.inFlight--;
    });
  }

  private async reconcileOnce(): Promise<Desired> {
    const desired = computeDesired({
      config: this.config,
      backendUp: this.opts.backendUp,
      admin: this.admin,
      muxHealthy: this.muxHealthy(),
      nowMs: this.now(),
    });
    this.applyDamping(desired);
    // Tables first: a VIP is announced only once the forwarder serves it. A forwarder
    // that does not take its tables in time (stalled, dead) must not hold the control plane
    // up: withdrawals are always safe and go out anyway; announcements wait for the tables.
    const modelKey = JSON.stringify(desired.model);
    const tablesChanged = modelKey !== this.appliedModel;
    let tablesOk = true;
    if (tablesChanged) {
      try {
        await withTimeout(this.opts.tables.apply(desired.model), this.opts.tableTimeoutMs ?? 2_000);
        this.appliedModel = modelKey;
      } catch (e) {
        this.emit("tablesFailed", e as Error);
        tablesOk = false;
      }
    }
    const { announce, withdraw } = diffRoutes(this.applied, desired.routes);
    for (const prefix of withdraw) {
      this.opts.routes.withdraw(prefix);
      this.applied.delete(prefix);
    }
    if (!tablesOk) return desired;
    for (const r of announce) this.opts.routes.announce(r);
    this.applied = new Map(desired.routes);
    this.last = desired;
    if (tablesChanged || announce.length > 0 || withdraw.length > 0)
      this.emit("reconciled", desired, {
        announced: announce.length,
        withdrawn: withdraw.length,
        tables: tablesChanged,
      });
    return desired;
  }
}

/** Resolves as `value` does, or rejects after `ms` (the value may be a plain non-promise). */
function withTimeout(value: unknown, ms: number): Promise<unknown> {
  if (!(value instanceof Promise)) return Promise.resolve(value);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`the forwarder did not install its tables within ${ms} ms`)),
      ms,
    );
  });
  return Promise.race([value, timeout]).finally(() => clearTimeout(timer));
}
