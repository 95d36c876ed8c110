// Test helper over the lab runner: bring a topology up under a unique name, run commands
// in nodes, poll FRR JSON until a condition holds, and always tear down.
import { type ChildProcess, spawn } from "node:child_process";
import { openSync } from "node:fs";
import { join } from "node:path";
import { type CommandResult, type RunOptions, sleep } from "../util/proc.ts";
import { planFromFile } from "./index.ts";
import type { LabPlan, PlannedNode, PlanOptions } from "./plan.ts";
import { type DownReport, down, envPairs, execIn, nodeArgv, up } from "./runner.ts";

export class TestLab {
  readonly plan: LabPlan;
  private readonly children: ChildProcess[] = [];
  constructor(plan: LabPlan) {
    this.plan = plan;
  }

  node(name: string): PlannedNode {
    const n = this.plan.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no node ${name} in lab ${this.plan.lab}`);
    return n;
  }

  /** Runs a command in a node (vtysh gets the node's pathspace). */
  exec(node: string, argv: string[], opts?: RunOptions): Promise<CommandResult> {
    const n = this.node(node);
    return execIn(n, nodeArgv(n, argv), opts);
  }

  /** Runs a command and throws with its output when it fails. */
  async must(node: string, argv: string[], opts?: RunOptions): Promise<string> {
    const r = await this.exec(node, argv, opts);
    if (r.code !== 0)
      throw new Error(`${node}: ${argv.join(" ")} failed (${r.code}): ${r.stderr || r.stdout}`);
    return r.stdout;
  }

  /** `vtysh -c CMD` on an FRR node, parsed as JSON. */
  async vtyshJson<T = unknown>(node: string, command: string): Promise<T> {
    return JSON.parse(await this.must(node, ["vtysh", "-c", command])) as T;
  }

  /** Starts a long-running process in a node; killed by down() with its namespace. */
  spawn(node: string, argv: string[], logName: string): ChildProcess {
    const n = this.node(node);
    const out = openSync(join(this.plan.dir, `${logName}.log`), "a");
    const env = Object.keys(n.env).length > 0 ? ["env", ...envPairs(n.env)] : [];
    const child = spawn("ip", ["netns", "exec", n.netns, ...env, ...nodeArgv(n, argv)], {
      stdio: ["ignore", out, out],
    });
    child.on("error", () => {});
    this.children.push(child);
    return child;
  }

  async down(): Promise<DownReport> {
    for (const c of this.children) if (c.exitCode === null) c.kill("SIGTERM");
    return down(this.plan.dir, this.plan);
  }
}

let counter = 0;

/** A lab name no other test (or parallel run) uses. */
export function uniqueLabName(base: string): string {
  return `${base}-${process.pid.toString(36)}${(counter++).toString(36)}`;
}

/** Test-only environment that lets a `vipmux run` node's forwarder be stalled (SIGUSR2). */
export const TEST_FAULTS: Readonly<Record<string, string>> = { VIPMUX_TEST_FAULTS: "1" };

export async function startLab(
  file: string,
  base = "t",
  opts: Pick<PlanOptions, "skipCmd" | "env"> = {},
): Promise<TestLab> {
  const plan = planFromFile(file, {
    name: uniqueLabName(base),
    ...(opts.skipCmd ? { skipCmd: opts.skipCmd } : {}),
    ...(opts.env ? { env: opts.env } : {}),
  });
  await up(plan);
  return new TestLab(plan);
}

/** Runs `fn` with a lab that is torn down afterwards, whether `fn` passed or failed. */
export async function withLab<T>(file: string, fn: (lab: TestLab) => Promise<T>): Promise<T> {
  const lab = await startLab(file);
  try {
    return await fn(lab);
  } finally {
    await lab.down();
  }
}

export interface PollOptions {
  timeoutMs: number;
  intervalMs?: number;
  what: string;
}

/** Polls until `fn` returns a value other than undefined/false; throws with `what` at the deadline. */
export async function pollUntil<T>(
  fn: () => Promise<T | undefined | false>,
  opts: PollOptions,
): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${opts.timeoutMs} ms waiting for ${opts.what}${lastError ? ` (last error: ${(lastError as Error).message})` : ""}`,
      );
    await sleep(opts.intervalMs ?? 200);
  }
}

/** Next hops of a route in a node's kernel FIB (`ip -j route show PREFIX`). */
export async function fibNextHops(lab: TestLab, node: string, prefix: string): Promise<string[]> {
  const v6 = prefix.includes(":") ? ["-6"] : [];
  const out = await lab.must(node, ["ip", ...v6, "-j", "route", "show", prefix]);
  const routes = JSON.parse(out || "[]") as {
    gateway?: string;
    nexthops?: { gateway?: string }[];
  }[];
  const hops: string[] = [];
  for (const r of routes) {
    if (r.gateway) hops.push(r.gateway);
    for (const nh of r.nexthops ?? []) if (nh.gateway) hops.push(nh.gateway);
  }
  return hops.sort();
}
