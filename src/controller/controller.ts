// The one reconcile loop: config + health + admin state -> forwarding tables and BGP
// announcements. It keeps what it last applied and sends only differences, so a health
// check that changes nothing sends no UPDATE, and a flap inside rise/fall sends none.
import { EventEmitter } from "node:events";
import type { Config } from "../config/schema.ts";
import type { ServiceModel } from "../lb/service.ts";
import {
  type AdminState,
  computeDesired,
  type DecisionState,
  type Desired,
  type DesiredRoute,
  describeVipReason,
  diffRoutes,
  initialDecisionState,
  noAdmin,
  type ServiceStatus,
  type VipReason,
} from "./desired.ts";

/** A service as `vipmux status` shows it: the reason rendered, its kind kept for scripts. */
export interface ServiceStatusView extends Omit<ServiceStatus, "reason"> {
  reason: string;
  state: VipReason["kind"];
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
  /** A reconcile failed as a whole (a bug): the last applied state stays. */
  reconcileFailed: [error: Error];
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
  /** MUX health with hold-down, and damping history: carried from decision to decision. */
  private decision: DecisionState = initialDecisionState();
  private stopped = false;
  private chain: Promise<unknown> = Promise.resolve();
  private inFlight = 0;

  constructor(opts: ControllerOptions) {
    super();
    this.opts = opts;
    this.config = opts.config;
    this.now = opts.now ?? Date.now;
  }

  start(): void {
    this.reconcileInBackground();
    // Timers drive what no event announces: drain waits ending, hold-down expiring,
    // MUX self-health changes.
    this.timer = setInterval(() => {
      if (this.inFlight === 0) this.reconcileInBackground();
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
      this.reconcileInBackground();
    });
  }

  reload(config: Config): void {
    // New damping parameters start from a clean history (old penalties meant other things).
    if (JSON.stringify(config.bgp.damping) !== JSON.stringify(this.config.bgp.damping))
      this.decision = { ...this.decision, damping: initialDecisionState().damping };
    this.config = config;
    // Admin state of things that no longer exist is dropped with them.
    const names = new Set(config.services.map((s) => s.name));
    const serviceDrains = new Map([...this.admin.serviceDrains].filter(([n]) => names.has(n)));
    const drainedBackends = new Set(
      [...this.admin.drainedBackends].filter((k) => names.has(k.split("/")[0]!)),
    );
    this.admin = { ...this.admin, serviceDrains, drainedBackends };
    this.reconcileInBackground();
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

  status(): { services: ServiceStatusView[]; announced: string[]; muxHealthy: boolean } {
    return {
      services: (this.last?.services ?? []).map((s) => ({
        ...s,
        reason: describeVipReason(s.reason),
        state: s.reason.kind,
      })),
      announced: [...this.applied.keys()].sort(),
      muxHealthy: this.decision.mux.healthy,
    };
  }

  /** A reconcile nobody awaits: a failure is reported, never an unhandled rejection. */
  private reconcileInBackground(): void {
    this.reconcile().catch((e: unknown) => this.emit("reconcileFailed", e as Error));
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
      muxHealthy: this.opts.muxHealthy?.() ?? true,
      nowMs: this.now(),
      state: this.decision,
    });
    const wasHealthy = this.decision.mux.healthy;
    this.decision = desired.state;
    if (desired.state.mux.healthy !== wasHealthy) this.emit("muxHealth", desired.state.mux.healthy);
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
