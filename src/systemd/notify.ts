// systemd's notification protocol (sd_notify(3)) for the two daemons, which run as
// Type=notify units (configs/systemd/*.service):
//
// - READY=1 once the daemon serves (the MUX: admin socket, forwarder, BGP and health up;
//   the host agent: its first reconcile done), so `systemctl start` returns only then;
// - RELOADING=1 (with MONOTONIC_USEC) and READY=1 around a reload;
// - STOPPING=1 when shutdown starts;
// - STATUS= one line of state, shown by `systemctl status`;
// - WATCHDOG=1 while a liveness check passes (WatchdogSec=): for the MUX the forwarder's
//   heartbeat, so a forwarder that stays stalled gets the process restarted.
//
// Without $NOTIFY_SOCKET (not started by systemd, or another Type=) every call does
// nothing and no timer runs. The datagram goes out through the native addon (Node has no
// AF_UNIX datagram sockets): native/sd_notify.c.
import { sdNotify } from "../native/index.ts";
import type { LogFn } from "../util/log.ts";

export type NotifySend = (socket: string, message: string) => void;

export interface NotifierOptions {
  /** $NOTIFY_SOCKET: a path, or an abstract name starting with '@'. */
  socket?: string | undefined;
  /** The watchdog interval in microseconds ($WATCHDOG_USEC, when it is meant for us). */
  watchdogUsec?: number | undefined;
  /** Sends one datagram; the native addon's sdNotify by default. */
  send?: NotifySend;
  log?: LogFn;
  /** CLOCK_MONOTONIC in microseconds, for RELOADING=1's MONOTONIC_USEC. */
  monotonicUsec?: () => bigint;
}

/** What the daemons call; SystemdNotifier implements it, and does nothing when disabled. */
export interface ServiceNotify {
  ready(status?: string): void;
  reloading(status?: string): void;
  stopping(status?: string): void;
}

/** Longest pause between two liveness checks of the watchdog. */
const MAX_CHECK_INTERVAL_MS = 1000;

export class SystemdNotifier implements ServiceNotify {
  /** True when a notification socket was given: the daemon runs under systemd. */
  readonly enabled: boolean;
  /** Watchdog timeout in milliseconds, when systemd asked for a watchdog. */
  readonly watchdogMs: number | undefined;
  private readonly socket: string | undefined;
  private readonly send: NotifySend;
  private readonly log: LogFn;
  private readonly monotonicUsec: () => bigint;
  private lastStatus: string | undefined;
  private lastError: string | undefined;
  private watchdogTimer: NodeJS.Timeout | undefined;
  private sent = 0;

  constructor(opts: NotifierOptions = {}) {
    this.log = opts.log ?? (() => {});
    this.send = opts.send ?? ((socket, message) => void sdNotify(socket, message));
    this.monotonicUsec = opts.monotonicUsec ?? (() => process.hrtime.bigint() / 1000n);
    let socket = opts.socket;
    if (socket !== undefined && socket !== "" && !/^[/@]/.test(socket)) {
      this.log("warn", `systemd: NOTIFY_SOCKET=${socket} is neither a path nor @name; ignored`);
      socket = undefined;
    }
    this.socket = socket || undefined;
    this.enabled = this.socket !== undefined;
    const usec = opts.watchdogUsec;
    this.watchdogMs =
      this.enabled && usec !== undefined && Number.isFinite(usec) && usec > 0
        ? usec / 1000
        : undefined;
  }

  /**
   * From the environment systemd gives a service: NOTIFY_SOCKET, and WATCHDOG_USEC when
   * WATCHDOG_PID is unset or names this process (sd_watchdog_enabled(3)). The variables are
   * removed from `env` (by default process.env), so programs the daemon starts (ip, nft,
   * exec probes) do not inherit them.
   */
  static fromEnv(
    env: NodeJS.ProcessEnv = process.env,
    opts: Omit<NotifierOptions, "socket" | "watchdogUsec"> = {},
  ): SystemdNotifier {
    const socket = env.NOTIFY_SOCKET;
    const pid = env.WATCHDOG_PID;
    const usec =
      env.WATCHDOG_USEC !== undefined && (pid === undefined || pid === String(process.pid))
        ? Number(env.WATCHDOG_USEC)
        : undefined;
    delete env.NOTIFY_SOCKET;
    delete env.WATCHDOG_USEC;
    delete env.WATCHDOG_PID;
    return new SystemdNotifier({ ...opts, socket, watchdogUsec: usec });
  }

  /** Datagrams sent so far (for tests and status). */
  get sentCount(): number {
    return this.sent;
  }

  /**
   * Sends `KEY=value` lines as one datagram. False when disabled or the send failed; a
   * failure is logged once per distinct error, never thrown (the daemon keeps running).
   */
  notify(fields: Record<string, string | number | bigint>): boolean {
    if (!this.socket) return false;
    const lines: string[] = [];
    for (const [k, v] of Object.entries(fields)) {
      // One field per line: a newline inside a value would start another field.
      lines.push(`${k}=${String(v).replace(/[\r\n]+/g, " ")}`);
    }
    try {
      this.send(this.socket, `${lines.join("\n")}\n`);
      this.sent++;
      if (this.lastError !== undefined) {
        this.log("info", `systemd: notifications to ${this.socket} work again`);
        this.lastError = undefined;
      }
      return true;
    } catch (e) {
      const why = (e as { code?: string }).code ?? (e as Error).message;
      if (why !== this.lastError)
        this.log("warn", `systemd: cannot notify ${this.socket}: ${(e as Error).message}`);
      this.lastError = why;
      return false;
    }
  }

  ready(status?: string): void {
    this.notify({ READY: 1, ...this.statusField(status) });
  }

  reloading(status?: string): void {
    this.notify({
      RELOADING: 1,
      MONOTONIC_USEC: this.monotonicUsec(),
      ...this.statusField(status ?? "reloading the config"),
    });
  }

  stopping(status?: string): void {
    this.stopWatchdog();
    this.notify({ STOPPING: 1, ...this.statusField(status ?? "stopping") });
  }

  /** STATUS=text, sent only when it differs from the last one. */
  status(text: string): void {
    if (!this.enabled || text === this.lastStatus) return;
    this.lastStatus = text;
    this.notify({ STATUS: text });
  }

  private statusField(status: string | undefined): Record<string, string> {
    if (status === undefined) return {};
    this.lastStatus = status;
    return { STATUS: status };
  }

  /**
   * Feeds systemd's watchdog: every check interval (a quarter of WatchdogSec, at most one
   * second) `alive()` is asked and WATCHDOG=1 is sent only when it says yes. So the process
   * is restarted once `alive()` has said no for about WatchdogSec (or the event loop is
   * blocked that long). `onTick` runs at every check, whatever the watchdog (STATUS
   * refreshes); with no watchdog configured the checks still run every `idleMs`. Does
   * nothing when disabled. Returns a function that stops it.
   */
  startWatchdog(
    alive: () => boolean,
    opts: { what: string; onTick?: () => void; idleMs?: number } = { what: "liveness check" },
  ): () => void {
    this.stopWatchdog();
    if (!this.enabled) return () => {};
    const wd = this.watchdogMs;
    const every =
      wd === undefined
        ? (opts.idleMs ?? 2000)
        : Math.max(10, Math.min(MAX_CHECK_INTERVAL_MS, Math.floor(wd / 4)));
    let failing = false;
    const tick = () => {
      opts.onTick?.();
      if (wd === undefined) return;
      let ok = false;
      try {
        ok = alive();
      } catch {
        ok = false;
      }
      if (ok) {
        if (failing)
          this.log("info", `systemd watchdog: ${opts.what} passes again; feeding the watchdog`);
        failing = false;
        this.notify({ WATCHDOG: 1 });
      } else if (!failing) {
        failing = true;
        this.log(
          "warn",
          `systemd watchdog: ${opts.what} fails; not feeding the watchdog (systemd restarts this service if it still fails after ${wd / 1000} s)`,
        );
      }
    };
    tick();
    this.watchdogTimer = setInterval(tick, every);
    this.watchdogTimer.unref?.();
    return () => this.stopWatchdog();
  }

  stopWatchdog(): void {
    if (this.watchdogTimer) clearInterval(this.watchdogTimer);
    this.watchdogTimer = undefined;
  }
}
