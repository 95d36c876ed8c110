// The host agent's driver: plan from the config, observe the kernel, apply the diff.
// Runs once at start, on SIGHUP (config reloaded), and every reconcile interval (drift
// repair). On SIGTERM it leaves the kernel state in place so flows survive a restart;
// `cleanup` (or --cleanup on exit) removes everything the agent made.
import type { HostAgentConfig } from "../config/host-agent.ts";
import { resolveSecret } from "../config/load.ts";
import { hostKey } from "../health/keys.ts";
import { type Action, describeAction, diff } from "./diff.ts";
import { HostHealth } from "./health.ts";
import { Kernel } from "./kernel.ts";
import { HostAgentMetrics, type ProgrammedState, programmedState } from "./metrics.ts";
import { type DesiredState, plan, TABLE_PREFIX } from "./plan.ts";

export type Log = (msg: string) => void;

export interface ReconcileReport {
  actions: Action[];
  /** Conntrack entries deleted (removed services or ports only). */
  conntrackDeleted: number;
  durationMs: number;
}

/** Empty desired state: diffing against it yields the cleanup. */
export function emptyState(): DesiredState {
  return { links: [], tables: [], routes: [], rules: [], sysctls: [], required: [], warnings: [] };
}

export async function reconcile(
  kernel: Kernel,
  desired: DesiredState,
  routeTable: number,
  log: Log,
  opts: { dryRun?: boolean } = {},
): Promise<ReconcileReport> {
  const t0 = performance.now();
  const observed = await kernel.observe(desired, routeTable);
  const actions = diff(desired, observed);
  let conntrackDeleted = 0;
  for (const a of actions) {
    log(`${opts.dryRun ? "would " : ""}${describeAction(a)}`);
    if (opts.dryRun) continue;
    const n = await kernel.apply(a);
    if (a.kind === "conntrack-flush") {
      conntrackDeleted += n ?? 0;
      log(`deleted ${n ?? 0} conntrack entries`);
    }
  }
  return { actions, conntrackDeleted, durationMs: performance.now() - t0 };
}

export interface AgentOptions {
  /** Reads the config again (SIGHUP); errors keep the running config. */
  load: () => { ok: true; value: HostAgentConfig } | { ok: false; error: string[] };
  log: Log;
  cleanupOnExit?: boolean;
  /** Told when the agent serves, reloads and stops (systemd, Type=notify: src/systemd/). */
  notify?: { ready(status?: string): void; reloading(): void; stopping(): void };
}

/** Runs until SIGTERM/SIGINT. Resolves with the exit code. */
export async function runAgent(initial: HostAgentConfig, opts: AgentOptions): Promise<number> {
  const { log } = opts;
  let cfg = initial;
  let running: Promise<void> = Promise.resolve();
  let failures = 0;
  let health: HostHealth | undefined;
  let lastWarnings = "";
  let programmed: ProgrammedState | undefined;
  const metrics = new HostAgentMetrics({
    programmed: () => programmed,
    targets: () => health?.targets() ?? [],
    streams: () => health?.streams() ?? [],
  });
  const serveMetrics = async (address: string | undefined) => {
    const port = await metrics.serve(address);
    if (port !== undefined) log(`metrics on ${address} (port ${port})`);
  };
  // Before any kernel change: an address that cannot be bound stops the start.
  await serveMetrics(cfg.metrics);
  const kernel = new Kernel();

  const once = (why: string) => {
    running = running.then(async () => {
      try {
        const desired = plan(cfg, health?.failingKeys());
        const warnings = [
          ...desired.warnings,
          ...kernel
            .unmet(desired.required)
            .map(
              ({ req, value }) =>
                `${req.key.replaceAll("/", ".")} is ${value ?? "missing"} (want ${req.accept.join(" or ")}): ${req.why}`,
            ),
        ];
        // Said once, and again when they change, not on every timer tick.
        if (warnings.join("\n") !== lastWarnings) for (const w of warnings) log(`warning: ${w}`);
        lastWarnings = warnings.join("\n");
        const r = await reconcile(kernel, desired, cfg.host.routeTable, log);
        metrics.reconciles.inc({ result: "ok" });
        metrics.reconcileChanges.inc(r.actions.length);
        metrics.reconcileDuration.observe(r.durationMs / 1000);
        programmed = programmedState(
          cfg.services,
          cfg.host.pa,
          desired.tables,
          desired.links.length,
        );
        if (r.actions.length > 0 || why !== "timer")
          log(
            `reconciled (${why}): ${desired.tables.filter((t) => t.table.startsWith(TABLE_PREFIX)).length} services, ${desired.links.length} VXLAN devices, ${r.actions.length} changes in ${r.durationMs.toFixed(0)} ms`,
          );
      } catch (e) {
        metrics.reconciles.inc({ result: "failed" });
        failures++;
        log(`reconcile failed (${why}, ${failures} so far): ${(e as Error).message}`);
      }
    });
    return running;
  };

  // Health changes re-plan at once; a burst of them (a host losing its VMs) is one pass.
  let healthPending = false;
  const onHealth = (key: string, up: boolean, detail: string) => {
    const failing = health?.failingKeys().has(key) === true;
    log(
      `health: ${key} ${up ? "up" : "down"}${failing ? " (failing: no new flows here)" : ""}: ${detail}`,
    );
    if (healthPending) return;
    healthPending = true;
    setTimeout(() => {
      healthPending = false;
      void once("health");
    }, 50);
  };
  // The key in force: re-read from its file or variable at every reload (rotation).
  let healthKey: string | undefined;
  const startHealth = (c: HostAgentConfig, key: string | undefined) => {
    health?.stop();
    health = undefined;
    healthKey = key;
    if (!c.health || key === undefined) return;
    health = new HostHealth({
      host: c.host.pa,
      key,
      muxes: c.health.muxes,
      onChange: onHealth,
      onStream: (mux, up, reason) =>
        log(`health: stream to MUX ${mux} ${up ? "up" : `down (${reason ?? "closed"})`}`),
      onProbe: (key, r) => metrics.probed(key, r.ok, r.latencyMs),
    });
    health.sync(c.services);
    health.start();
    log(`health: probing local DIPs, reporting to ${c.health.muxes.length} MUX(es)`);
  };

  // Signals are handled from the start: a SIGHUP while starting reloads, never kills.
  const signal = new Promise<NodeJS.Signals>((resolve) => {
    process.once("SIGTERM", () => resolve("SIGTERM"));
    process.once("SIGINT", () => resolve("SIGINT"));
  });
  let timer: NodeJS.Timeout | undefined;
  const onHup = () => {
    const r = opts.load();
    if (!r.ok) {
      for (const e of r.error) log(`config: ${e}`);
      log("config rejected; keeping the running config");
      metrics.configReloads.inc({ result: "invalid" });
      return;
    }
    metrics.configReloads.inc({ result: "applied" });
    const prev = cfg;
    cfg = r.value;
    opts.notify?.reloading();
    const key = agentHealthKey(cfg, log);
    // Same MUXes and key: keep the streams and the probes' state, re-target them.
    if (
      health &&
      key === healthKey &&
      JSON.stringify(prev.health?.muxes) === JSON.stringify(cfg.health?.muxes)
    )
      health.sync(cfg.services);
    else startHealth(cfg, key);
    clearInterval(timer);
    timer = setInterval(() => void once("timer"), cfg.reconcile.interval);
    void once("reload").then(() => opts.notify?.ready());
    serveMetrics(cfg.metrics).catch((e: Error) =>
      log(`metrics: cannot serve on ${cfg.metrics}: ${e.message}; no metrics endpoint`),
    );
  };
  process.on("SIGHUP", onHup);

  startHealth(cfg, agentHealthKey(cfg, log));
  await once("start");
  timer ??= setInterval(() => void once("timer"), cfg.reconcile.interval);
  opts.notify?.ready(
    `${cfg.services.length} services; reconciling every ${cfg.reconcile.interval} ms`,
  );
  const sig = await signal;
  opts.notify?.stopping();
  clearInterval(timer);
  process.off("SIGHUP", onHup);
  health?.stop();
  await running;
  await metrics.close();
  if (opts.cleanupOnExit) {
    log(`${sig}: removing the agent's kernel state`);
    await reconcile(kernel, emptyState(), cfg.host.routeTable, log);
  } else {
    log(`${sig}: leaving the kernel state in place (flows keep going; cleanup removes it)`);
  }
  kernel.close();
  return 0;
}

/**
 * This host's health-stream key: `health.key` as given, or derived from the cluster
 * `health.token` (src/health/keys.ts); undefined (logged) when it cannot be read.
 */
export function agentHealthKey(
  cfg: HostAgentConfig,
  log: (m: string) => void,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  const h = cfg.health;
  if (!h) return undefined;
  const secret = h.key ?? h.token;
  if (secret === undefined) return undefined;
  const r = resolveSecret(secret, env);
  if (!r.ok) {
    log(`health: ${r.error}; not probing`);
    return undefined;
  }
  return h.key !== undefined ? r.value : hostKey(r.value, cfg.host.pa);
}
