// Supervises the lab nodes' long-running `cmd`: one child per node inside its namespace,
// output appended to <dir>/<node>.log, restarted with back-off when it exits, state in
// <dir>/supervisor.json. Runs detached (`vipmux lab supervise`) so `lab up` can return.
import { type ChildProcess, spawn } from "node:child_process";
import { openSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { PlannedNode } from "./plan.ts";
import { envPairs, readState } from "./runner.ts";

interface Supervised {
  node: PlannedNode;
  child?: ChildProcess;
  starts: number;
  lastStart: number;
  lastExit?: { code: number | null; signal: string | null; at: string };
  timer?: NodeJS.Timeout;
}

const MIN_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 10_000;
/** A child that ran this long is healthy again: its next restart is immediate-ish. */
const STABLE_MS = 30_000;

export function backoffMs(starts: number, uptimeMs: number): number {
  if (uptimeMs >= STABLE_MS) return MIN_BACKOFF_MS;
  return Math.min(MAX_BACKOFF_MS, MIN_BACKOFF_MS * 2 ** Math.max(0, starts - 1));
}

export function supervise(dir: string): void {
  const state = readState(dir);
  if (!state) throw new Error(`no lab state in ${dir}`);
  let stopping = false;
  const all: Supervised[] = state.plan.nodes
    .filter((n) => n.cmd)
    .map((node) => ({ node, starts: 0, lastStart: 0 }));

  const save = () =>
    writeFileSync(
      join(dir, "supervisor.json"),
      `${JSON.stringify(
        Object.fromEntries(
          all.map((s) => [
            s.node.name,
            { pid: s.child?.pid, starts: s.starts, running: !!s.child, lastExit: s.lastExit },
          ]),
        ),
        null,
        2,
      )}\n`,
    );

  const start = (s: Supervised) => {
    const out = openSync(join(dir, `${s.node.name}.log`), "a");
    const env = Object.keys(s.node.env).length > 0 ? ["env", ...envPairs(s.node.env)] : [];
    const child = spawn("ip", ["netns", "exec", s.node.netns, ...env, ...(s.node.cmd ?? [])], {
      stdio: ["ignore", out, out],
    });
    s.child = child;
    s.starts++;
    s.lastStart = Date.now();
    child.on("exit", (code, signal) => {
      s.child = undefined;
      s.lastExit = { code, signal, at: new Date().toISOString() };
      save();
      if (stopping) return;
      const delay = backoffMs(s.starts, Date.now() - s.lastStart);
      s.timer = setTimeout(() => start(s), delay);
    });
    child.on("error", () => {}); // exit follows; spawn errors land in the log via ip
    save();
  };

  const stop = () => {
    if (stopping) return;
    stopping = true;
    for (const s of all) {
      if (s.timer) clearTimeout(s.timer);
      s.child?.kill("SIGTERM");
    }
    setTimeout(() => {
      for (const s of all) s.child?.kill("SIGKILL");
      process.exit(0);
    }, 3000).unref();
    const check = setInterval(() => {
      if (all.every((s) => !s.child)) {
        clearInterval(check);
        process.exit(0);
      }
    }, 50);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  for (const s of all) start(s);
}
