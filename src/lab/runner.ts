// The namespace lab runner: executes a LabPlan (namespaces, veths, FRR, exec, supervised
// cmd) and undoes it. Everything it creates is named from the plan's prefixes and recorded
// in <dir>/state.json, so `down` finds it all even after a crash or from another process.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type CommandResult, isAlive, must, type RunOptions, run } from "../util/proc.ts";
import { frrInstalled, killAndWait, startFrr, stopFrr } from "./frr.ts";
import {
  type LabPlan,
  mgmtNetworkCommands,
  mgmtNodeCommands,
  type PlannedNode,
  selfCommand,
  substitute,
} from "./plan.ts";
import { ensureSecretFile, isGeneratedSecret } from "./secrets.ts";

export interface LabState {
  plan: LabPlan;
  startedAt: string;
  supervisorPid?: number;
}

export interface DownReport {
  namespaces: string[];
  processes: number;
  links: string[];
}

export class LabError extends Error {
  override name = "LabError";
}

const statePath = (dir: string) => join(dir, "state.json");

export function readState(dir: string): LabState | undefined {
  try {
    return JSON.parse(readFileSync(statePath(dir), "utf8")) as LabState;
  } catch {
    return undefined;
  }
}

function writeState(state: LabState): void {
  writeFileSync(statePath(state.plan.dir), `${JSON.stringify(state, null, 2)}\n`);
}

export async function listNetns(): Promise<string[]> {
  const r = await run(["ip", "netns", "list"]);
  return r.stdout
    .split("\n")
    .map((l) => l.split(" ")[0] ?? "")
    .filter(Boolean);
}

async function preflight(plan: LabPlan): Promise<void> {
  if (process.getuid?.() !== 0) throw new LabError("the namespace lab needs root (run as root)");
  if ((await run(["ip", "-V"])).code !== 0) throw new LabError("iproute2 (`ip`) is not installed");
  if (plan.nodes.some((n) => n.role === "frr") && !frrInstalled())
    throw new LabError("FRR nodes need Debian's frr package (/usr/lib/frr/zebra, bgpd)");
  const existing = (await listNetns()).filter((n) => n.startsWith(plan.prefix));
  if (existing.length > 0)
    throw new LabError(
      `lab "${plan.lab}" is already up (${existing.join(", ")}); run \`vipmux lab down\` first`,
    );
}

export interface UpOptions {
  /** Called with one line per step, for progress output. */
  log?: (line: string) => void;
}

/**
 * Brings a planned lab up. On any failure, or SIGINT/SIGTERM while it runs, everything
 * created so far is removed before the error is rethrown.
 */
export async function up(plan: LabPlan, opts: UpOptions = {}): Promise<LabState> {
  const log = opts.log ?? (() => {});
  await preflight(plan);
  for (const node of plan.nodes)
    for (const b of node.binds)
      if (isGeneratedSecret(b.host) && ensureSecretFile(b.host))
        log(`secret ${b.host} generated (mode 0600)`);
  mkdirSync(plan.dir, { recursive: true });
  const state: LabState = { plan, startedAt: new Date().toISOString() };
  writeState(state);
  let interrupted: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    interrupted = sig;
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const step = async (what: string, fn: () => Promise<unknown>) => {
    if (interrupted) throw new LabError(`interrupted by ${interrupted}`);
    log(what);
    await fn();
  };
  const t0 = Date.now();
  try {
    const mgmt = plan.mgmt;
    if (mgmt)
      await step(`management network ${mgmt.network}: ${mgmtSummary(mgmt)}`, async () => {
        for (const argv of mgmtNetworkCommands(mgmt)) await must(argv);
      });
    for (const node of plan.nodes) {
      await step(`netns ${node.netns}`, async () => {
        await must(["ip", "netns", "add", node.netns]);
        await must(["ip", "-n", node.netns, "link", "set", "lo", "up"]);
        // eth0 first, as a container has it from the start: sysctls apply to it too.
        if (mgmt) for (const argv of mgmtNodeCommands(mgmt, node)) await must(argv);
        for (const [key, value] of Object.entries(node.sysctls))
          await must(["ip", "netns", "exec", node.netns, "sysctl", "-q", "-w", `${key}=${value}`]);
      });
    }
    for (const link of plan.links) {
      const { a, b } = link;
      await step(`link ${a.node}:${a.iface} <-> ${b.node}:${b.iface}`, async () => {
        await must(["ip", "link", "add", a.tmp, "type", "veth", "peer", "name", b.tmp]);
        for (const ep of [a, b]) {
          await must(["ip", "link", "set", "dev", ep.tmp, "netns", ep.netns]);
          await must(["ip", "-n", ep.netns, "link", "set", "dev", ep.tmp, "name", ep.iface]);
          if (link.mtu)
            await must(["ip", "-n", ep.netns, "link", "set", ep.iface, "mtu", String(link.mtu)]);
          for (const addr of ep.addresses) {
            const extra = addr.includes(":") ? ["nodad"] : [];
            await must(["ip", "-n", ep.netns, "addr", "add", addr, "dev", ep.iface, ...extra]);
          }
          await must(["ip", "-n", ep.netns, "link", "set", ep.iface, "up"]);
        }
      });
    }
    for (const node of plan.nodes) {
      const frr = node.frr;
      if (frr)
        await step(`frr ${node.name}: ${frr.daemons.join(", ")} (${frr.profile})`, () =>
          startFrr(node.netns, frr, join(plan.dir, "frr", node.name)),
        );
    }
    for (const node of plan.nodes) {
      for (const argv of node.exec) {
        await step(`exec ${node.name}: ${argv.join(" ")}`, async () => {
          const r = await execIn(node, argv);
          if (r.code !== 0)
            throw new LabError(
              `exec on ${node.name} failed (exit ${r.code}): ${argv.join(" ")}: ${r.stderr.trim()}`,
            );
        });
      }
    }
    if (plan.nodes.some((n) => n.cmd)) {
      await step("supervisor", async () => {
        state.supervisorPid = startSupervisor(plan);
        writeState(state);
      });
    }
    if (interrupted) throw new LabError(`interrupted by ${interrupted}`);
    log(`lab ${plan.lab} up in ${Date.now() - t0} ms`);
    return state;
  } catch (e) {
    log(`failed: ${(e as Error).message}; removing what was created`);
    await down(plan.dir, plan);
    throw e;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

function mgmtSummary(m: NonNullable<LabPlan["mgmt"]>): string {
  const nets = [m.ipv4, m.ipv6].filter((f) => f !== undefined);
  return `bridge ${m.bridge} in ${m.netns}, ${nets.map((f) => `${f.subnet} via ${f.gateway}`).join(", ")}`;
}

function startSupervisor(plan: LabPlan): number {
  const out = openSync(join(plan.dir, "supervisor.log"), "a");
  const [exe, ...args] = selfCommand();
  const child = spawn(exe!, [...args, "lab", "supervise", "--dir", plan.dir], {
    detached: true,
    stdio: ["ignore", out, out],
  });
  child.unref();
  if (!child.pid) throw new LabError("could not start the lab supervisor");
  return child.pid;
}

/** Runs a command inside a node, with the node's env. */
export function execIn(
  node: PlannedNode,
  argv: string[],
  opts: RunOptions = {},
): Promise<CommandResult> {
  const env = Object.keys(node.env).length > 0 ? ["env", ...envPairs(node.env)] : [];
  return run(["ip", "netns", "exec", node.netns, ...env, ...argv], opts);
}

export function envPairs(env: Record<string, string>): string[] {
  return Object.entries(env).map(([k, v]) => `${k}=${v}`);
}

/**
 * Removes everything a lab created: the supervisor, every process in its namespaces,
 * the namespaces (the nodes' and the management network's, which holds the bridge; the
 * veths go with them), stray temporary veths, FRR pathspaces.
 * Works from the state file, and also from names alone when `plan` is given.
 */
export async function down(dir: string, plan?: LabPlan): Promise<DownReport> {
  const state = readState(dir);
  const p = plan ?? state?.plan;
  if (!p) return { namespaces: [], processes: 0, links: [] };
  if (state?.supervisorPid && isAlive(state.supervisorPid))
    await killAndWait([state.supervisorPid]);
  const namespaces = (await listNetns()).filter((n) => n.startsWith(p.prefix));
  let processes = 0;
  const pids: number[] = [];
  for (const ns of namespaces) {
    const r = await run(["ip", "netns", "pids", ns]);
    for (const s of r.stdout.split(/\s+/)) if (s) pids.push(Number(s));
  }
  processes = pids.length;
  await killAndWait(pids);
  for (const ns of namespaces) await run(["ip", "netns", "del", ns]);
  const links: string[] = [];
  const rootLinks = await run(["ip", "-o", "link", "show"]);
  for (const line of rootLinks.stdout.split("\n")) {
    const name = /^\d+:\s+([^:@\s]+)/.exec(line)?.[1];
    if (name?.startsWith(p.tmpPrefix)) {
      await run(["ip", "link", "del", name]);
      links.push(name);
    }
  }
  for (const node of p.nodes) if (node.frr) await stopFrr(node.frr.pathspace, true);
  rmSync(statePath(dir), { force: true });
  return { namespaces, processes, links };
}

export interface NodeStatus {
  name: string;
  role: string;
  netns: string;
  present: boolean;
  processes: { pid: number; command: string }[];
  interfaces: { name: string; state: string; addresses: string[] }[];
}

export async function status(
  dir: string,
): Promise<{ lab: string; nodes: NodeStatus[] } | undefined> {
  const state = readState(dir);
  if (!state) return undefined;
  const present = new Set(await listNetns());
  const nodes: NodeStatus[] = [];
  for (const node of state.plan.nodes) {
    const st: NodeStatus = {
      name: node.name,
      role: node.role,
      netns: node.netns,
      present: present.has(node.netns),
      processes: [],
      interfaces: [],
    };
    if (st.present) {
      const pids = (await run(["ip", "netns", "pids", node.netns])).stdout
        .split(/\s+/)
        .filter(Boolean);
      for (const pid of pids) {
        const cmdline = existsSync(`/proc/${pid}/cmdline`)
          ? readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim()
          : "";
        st.processes.push({ pid: Number(pid), command: cmdline });
      }
      const addr = await run(["ip", "-n", node.netns, "-j", "addr", "show"]);
      const parsed = JSON.parse(addr.stdout || "[]") as {
        ifname: string;
        operstate: string;
        addr_info?: { local: string; prefixlen: number; scope: string }[];
      }[];
      for (const i of parsed) {
        if (i.ifname === "lo") continue;
        st.interfaces.push({
          name: i.ifname,
          state: i.operstate,
          addresses: (i.addr_info ?? [])
            .filter((a) => a.scope !== "link")
            .map((a) => `${a.local}/${a.prefixlen}`),
        });
      }
    }
    nodes.push(st);
  }
  return { lab: state.plan.lab, nodes };
}

/** The planned node, or a LabError naming the nodes that exist. */
export function findNode(state: LabState, name: string): PlannedNode {
  const node = state.plan.nodes.find((n) => n.name === name);
  if (!node)
    throw new LabError(
      `no node "${name}" in lab ${state.plan.lab} (nodes: ${state.plan.nodes.map((n) => n.name).join(", ")})`,
    );
  return node;
}

/** vtysh on an FRR node needs its pathspace; bind paths map to host paths. */
export function nodeArgv(node: PlannedNode, argv: string[]): string[] {
  const mapped = substitute(argv, node.binds, node.role, selfCommand());
  if (node.frr && mapped[0] === "vtysh")
    return ["vtysh", "-N", node.frr.pathspace, ...mapped.slice(1)];
  return mapped;
}
