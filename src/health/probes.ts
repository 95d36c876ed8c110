// Active probes: one attempt each, bounded by a timeout, never throwing. The scheduler
// runs them; results feed rise/fall. All I/O is asynchronous, so a slow backend delays
// nothing but its own next probe.
import { spawn } from "node:child_process";
import dgram from "node:dgram";
import http from "node:http";
import https from "node:https";
import net from "node:net";

export interface ProbeResult {
  ok: boolean;
  latencyMs: number;
  /** Why it failed (or what succeeded), for status output and logs. */
  detail: string;
}

export type ProbeSpec =
  | { type: "tcp"; address: string; port: number; timeoutMs: number }
  | {
      type: "http" | "https";
      address: string;
      port: number;
      path: string;
      /** Inclusive status range. */
      statusMin: number;
      statusMax: number;
      expectBody?: string;
      host?: string;
      timeoutMs: number;
    }
  | { type: "udp"; address: string; port: number; send: string; timeoutMs: number }
  | { type: "exec"; command: string[]; env?: Record<string, string>; timeoutMs: number };

export function parseStatusRange(spec: string): [number, number] {
  const [a, b] = spec.split("-").map(Number);
  return [a ?? 200, b ?? a ?? 399];
}

export function runProbe(spec: ProbeSpec): Promise<ProbeResult> {
  switch (spec.type) {
    case "tcp":
      return probeTcp(spec.address, spec.port, spec.timeoutMs);
    case "http":
    case "https":
      return probeHttp(spec);
    case "udp":
      return probeUdp(spec.address, spec.port, spec.send, spec.timeoutMs);
    case "exec":
      return probeExec(spec.command, spec.timeoutMs, spec.env);
  }
}

function finisher(resolve: (r: ProbeResult) => void, t0: number, cleanup: () => void) {
  let done = false;
  return (ok: boolean, detail: string) => {
    if (done) return;
    done = true;
    cleanup();
    resolve({ ok, latencyMs: performance.now() - t0, detail });
  };
}

function probeTcp(address: string, port: number, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const sock = net.connect({ host: address, port });
    const timer = setTimeout(
      () => finish(false, `connect timeout after ${timeoutMs} ms`),
      timeoutMs,
    );
    const finish = finisher(resolve, t0, () => {
      clearTimeout(timer);
      sock.destroy();
    });
    sock.once("connect", () => finish(true, "connected"));
    sock.once("error", (e: NodeJS.ErrnoException) => finish(false, e.code ?? e.message));
  });
}

function probeHttp(spec: Extract<ProbeSpec, { type: "http" | "https" }>): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const mod = spec.type === "https" ? https : http;
    const req = mod.request({
      host: spec.address,
      port: spec.port,
      path: spec.path,
      method: "GET",
      headers: {
        "user-agent": "vipmux-health",
        host: spec.host ?? spec.address,
        connection: "close",
      },
      agent: false,
      // Backends behind a load balancer usually present the VIP's certificate, not the
      // DIP's: the probe checks liveness, not identity.
      ...(spec.type === "https" ? { rejectUnauthorized: false } : {}),
    });
    const timer = setTimeout(
      () => finish(false, `timeout after ${spec.timeoutMs} ms`),
      spec.timeoutMs,
    );
    const finish = finisher(resolve, t0, () => {
      clearTimeout(timer);
      req.destroy();
    });
    req.once("error", (e: NodeJS.ErrnoException) => finish(false, e.code ?? e.message));
    req.once("response", (res) => {
      const status = res.statusCode ?? 0;
      if (status < spec.statusMin || status > spec.statusMax) {
        res.resume();
        finish(false, `HTTP ${status}`);
        return;
      }
      if (spec.expectBody === undefined) {
        res.resume();
        finish(true, `HTTP ${status}`);
        return;
      }
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        if (body.length < 65536) body += chunk;
        if (body.includes(spec.expectBody!)) finish(true, `HTTP ${status}, body matched`);
      });
      res.once("end", () =>
        finish(false, `HTTP ${status}, body did not contain the expected text`),
      );
      res.once("error", (e) => finish(false, e.message));
    });
    req.end();
  });
}

function probeUdp(
  address: string,
  port: number,
  payload: string,
  timeoutMs: number,
): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const sock = dgram.createSocket(net.isIPv6(address) ? "udp6" : "udp4");
    const timer = setTimeout(() => finish(false, `no reply within ${timeoutMs} ms`), timeoutMs);
    const finish = finisher(resolve, t0, () => {
      clearTimeout(timer);
      sock.close();
    });
    sock.once("error", (e: NodeJS.ErrnoException) => finish(false, e.code ?? e.message));
    // Connected socket: only the backend's reply counts, and ICMP port unreachable
    // surfaces as ECONNREFUSED at once instead of a timeout.
    sock.connect(port, address, () => {
      sock.once("message", () => finish(true, "reply received"));
      sock.send(Buffer.from(payload), (e) => {
        if (e) finish(false, (e as NodeJS.ErrnoException).code ?? e.message);
      });
    });
  });
}

/**
 * The environment an exec probe sees: PATH (and LANG, for the probe's messages) from the
 * daemon, then what the config sets for it (src/health/targets.ts). Nothing else: the
 * daemon's environment holds secrets (the health token, BGP passwords) that a probe
 * script has no business reading. See docs/security.md, "Exec probes".
 */
export function probeEnvironment(extra?: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  };
  if (process.env.LANG !== undefined) env.LANG = process.env.LANG;
  return { ...env, ...extra };
}

/** SIGKILLs a probe's whole process group; it may be gone already. */
function killGroup(pgid: number | undefined): void {
  if (pgid === undefined) return;
  try {
    process.kill(-pgid, "SIGKILL");
  } catch {
    // ESRCH: nothing left in the group
  }
}

function probeExec(
  command: string[],
  timeoutMs: number,
  env?: Record<string, string>,
): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const [file, ...args] = command;
    // detached: the probe leads its own process group, so a timeout can kill whatever it
    // started (a shell's children, their children) and not only the direct child.
    const child = spawn(file ?? "false", args, {
      stdio: "ignore",
      env: probeEnvironment(env),
      detached: true,
    });
    const timer = setTimeout(() => {
      killGroup(child.pid);
      finish(false, `timeout after ${timeoutMs} ms`);
    }, timeoutMs);
    const finish = finisher(resolve, t0, () => clearTimeout(timer));
    child.once("error", (e: NodeJS.ErrnoException) => finish(false, e.code ?? e.message));
    child.once("exit", (code, signal) => {
      // Whatever the probe left running in its group (a backgrounded command) goes too:
      // a probe that runs every interval must not leave a process behind each time.
      killGroup(child.pid);
      finish(code === 0, code === 0 ? "exit 0" : signal ? `killed by ${signal}` : `exit ${code}`);
    });
  });
}
