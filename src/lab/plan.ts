// Planning a lab: from a validated Topology to the exact namespaces, veth names, commands
// and FRR daemons the runner will create. Pure (file reads are injected), so every naming
// and substitution rule is unit-tested without root.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { splitCommand } from "../util/proc.ts";
import type { Bind, NodeRole, Topology } from "./topology.ts";

export const FRR_DAEMONS = ["zebra", "bgpd", "bfdd", "staticd"] as const;
export type FrrDaemon = (typeof FRR_DAEMONS)[number];

export interface FrrPlan {
  /** FRR pathspace (`-N`): config in /etc/frr/<pathspace>, sockets in /var/run/frr/<pathspace>. */
  pathspace: string;
  /** Host path of the bound frr.conf, if any. */
  config?: string;
  daemons: FrrDaemon[];
  /** `frr defaults` profile from the config; FRR's own default is traditional. */
  profile: "datacenter" | "traditional";
}

export interface PlannedNode {
  name: string;
  role: NodeRole;
  netns: string;
  binds: Bind[];
  exec: string[][];
  cmd?: string[];
  env: Record<string, string>;
  sysctls: Record<string, string>;
  frr?: FrrPlan;
}

export interface PlannedEndpoint {
  node: string;
  netns: string;
  iface: string;
  /** Name the veth end has in the root namespace before it is moved and renamed. */
  tmp: string;
  addresses: string[];
}

export interface PlannedLink {
  a: PlannedEndpoint;
  b: PlannedEndpoint;
  mtu?: number;
}

export interface LabPlan {
  lab: string;
  /** Every namespace of this lab starts with this; two labs never share it. */
  prefix: string;
  /** Prefix of this lab's temporary veth names in the root namespace. */
  tmpPrefix: string;
  dir: string;
  topologyFile: string;
  nodes: PlannedNode[];
  links: PlannedLink[];
}

export interface PlanOptions {
  /** Overrides the topology's name (tests run the same file under unique names). */
  name?: string;
  /** Where state and logs go; default /var/run/vipmux/lab/<lab>. */
  dir?: string;
  /** argv that runs this checkout's `vipmux` CLI. */
  vipmux?: string[];
  readFile?: (path: string) => string;
  /** Nodes whose `cmd` is not started (true: all), for tests that run their own processes. */
  skipCmd?: boolean | readonly string[];
}

export const DEFAULT_LAB_ROOT = "/var/run/vipmux/lab";

/** argv that runs the vipmux CLI of the tree this module belongs to (src or dist). */
export function selfCommand(): string[] {
  const ext = import.meta.url.endsWith(".ts") ? ".ts" : ".js";
  return [process.execPath, fileURLToPath(new URL(`../cli/main${ext}`, import.meta.url))];
}

export function labDir(lab: string, dir?: string): string {
  return dir ?? `${DEFAULT_LAB_ROOT}/${lab}`;
}

export function netnsName(lab: string, node: string): string {
  return `clab-${lab}-${node}`;
}

export function tmpPrefixFor(lab: string): string {
  return `vx${createHash("sha1").update(lab).digest("hex").slice(0, 5)}`;
}

export function planLab(topo: Topology, opts: PlanOptions = {}): LabPlan {
  const lab = opts.name ?? topo.name;
  const read = opts.readFile ?? ((p: string) => readFileSync(p, "utf8"));
  const vipmux = opts.vipmux ?? selfCommand();
  const tmpPrefix = tmpPrefixFor(lab);
  const nodes: PlannedNode[] = topo.nodes.map((n) => {
    const netns = netnsName(lab, n.name);
    const argv = (line: string) => substitute(splitCommand(line), n.binds, n.role, vipmux);
    const planned: PlannedNode = {
      name: n.name,
      role: n.role,
      netns,
      binds: n.binds,
      exec: n.exec.map(argv),
      env: n.env,
      sysctls: n.sysctls,
    };
    const skip =
      opts.skipCmd === true || (Array.isArray(opts.skipCmd) && opts.skipCmd.includes(n.name));
    if (n.cmd && !skip) planned.cmd = argv(n.cmd);
    if (n.role === "frr") planned.frr = planFrr(netns, n.binds, read);
    return planned;
  });
  const links: PlannedLink[] = topo.links.map((l, i) => ({
    a: { ...l.a, netns: netnsName(lab, l.a.node), tmp: `${tmpPrefix}${i}a` },
    b: { ...l.b, netns: netnsName(lab, l.b.node), tmp: `${tmpPrefix}${i}b` },
    ...(l.mtu !== undefined ? { mtu: l.mtu } : {}),
  }));
  return {
    lab,
    prefix: `clab-${lab}-`,
    tmpPrefix,
    dir: labDir(lab, opts.dir),
    topologyFile: topo.file,
    nodes,
    links,
  };
}

function planFrr(pathspace: string, binds: Bind[], read: (p: string) => string): FrrPlan {
  const conf = binds.find((b) => b.container === "/etc/frr/frr.conf");
  const daemonsBind = binds.find((b) => b.container === "/etc/frr/daemons");
  const enabled = daemonsBind
    ? parseDaemonsFile(read(daemonsBind.host))
    : new Set<string>(["bgpd"]);
  const daemons = FRR_DAEMONS.filter((d) => d === "zebra" || enabled.has(d));
  const profile = conf ? frrProfile(read(conf.host)) : "traditional";
  return { pathspace, daemons, profile, ...(conf ? { config: conf.host } : {}) };
}

/** Daemons switched on (`bgpd=yes`) in an FRR `daemons` file. */
export function parseDaemonsFile(text: string): Set<string> {
  const on = new Set<string>();
  for (const line of text.split("\n")) {
    const m = /^\s*([a-z0-9]+d)\s*=\s*"?yes"?\s*$/.exec(line);
    if (m?.[1]) on.add(m[1]);
  }
  return on;
}

export function frrProfile(conf: string): "datacenter" | "traditional" {
  return /^\s*frr defaults datacenter\s*$/m.test(conf) ? "datacenter" : "traditional";
}

/**
 * Rewrites paths inside the node (bind targets) to their host paths, since the node shares
 * this machine's filesystem; `vipmux` in a vipmux node means this checkout's CLI.
 */
export function substitute(
  argv: string[],
  binds: Bind[],
  role: NodeRole,
  vipmux: string[],
): string[] {
  const mapped = argv.map((tok) => mapToken(tok, binds));
  if (role === "vipmux" && mapped[0] === "vipmux") return [...vipmux, ...mapped.slice(1)];
  return mapped;
}

function mapToken(tok: string, binds: Bind[]): string {
  const eq = tok.indexOf("=");
  if (tok.startsWith("-") && eq > 0)
    return `${tok.slice(0, eq + 1)}${mapPath(tok.slice(eq + 1), binds)}`;
  return mapPath(tok, binds);
}

function mapPath(p: string, binds: Bind[]): string {
  // Longest bind target first so /etc/frr/frr.conf wins over /etc/frr.
  const sorted = [...binds].sort((x, y) => y.container.length - x.container.length);
  for (const b of sorted) {
    if (p === b.container) return b.host;
    if (p.startsWith(`${b.container}/`)) return b.host + p.slice(b.container.length);
  }
  return p;
}
