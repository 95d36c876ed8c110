// Planning a lab: from a validated Topology to the exact namespaces, veth names, commands
// and FRR daemons the runner will create. Pure (file reads are injected), so every naming
// and substitution rule is unit-tested without root.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { splitCommand } from "../util/proc.ts";
import type { MgmtFamily } from "./mgmt.ts";
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
  /** eth0 on the management bridge, as containerlab's runtime gives every node. */
  mgmt?: PlannedMgmtIface;
}

/** The management network of one lab: a bridge in a namespace of its own. */
export interface MgmtPlan {
  /** containerlab's network name (`mgmt.network`, default "clab"). */
  network: string;
  /** Namespace holding the bridge; under the lab's prefix, never a node's name. */
  netns: string;
  bridge: string;
  ipv4?: MgmtFamily;
  ipv6?: MgmtFamily;
  mtu?: number;
}

export interface PlannedMgmtIface {
  /** The veth end on the bridge, in the management namespace. */
  peer: string;
  /** eth0's addresses in CIDR form. */
  addresses: string[];
  /** Default routes via these (the bridge's addresses), one per family. */
  gateways: string[];
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
  /** Absent when no node has eth0, and in plans written before labs had one. */
  mgmt?: MgmtPlan;
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
  /**
   * Extra environment per node name, over the topology's `env` (tests switch on test-only
   * behaviour, e.g. VIPMUX_TEST_FAULTS, without it being in the topology file).
   */
  env?: Readonly<Record<string, Readonly<Record<string, string>>>>;
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

/** The management network's namespace; node names never start with "_". */
export function mgmtNetnsName(lab: string): string {
  return `clab-${lab}-_mgmt`;
}

export function tmpPrefixFor(lab: string): string {
  return `vx${createHash("sha1").update(lab).digest("hex").slice(0, 5)}`;
}

export function planLab(topo: Topology, opts: PlanOptions = {}): LabPlan {
  const lab = opts.name ?? topo.name;
  const read = opts.readFile ?? ((p: string) => readFileSync(p, "utf8"));
  const vipmux = opts.vipmux ?? selfCommand();
  const tmpPrefix = tmpPrefixFor(lab);
  for (const name of Object.keys(opts.env ?? {}))
    if (!topo.nodes.some((n) => n.name === name))
      throw new Error(
        `env for unknown node "${name}" (nodes: ${topo.nodes.map((n) => n.name).join(", ")})`,
      );
  const { ipv4, ipv6 } = topo.mgmt;
  const gateways = [ipv4?.gateway, ipv6?.gateway].filter((g): g is string => g !== undefined);
  const nodes: PlannedNode[] = topo.nodes.map((n, i) => {
    const netns = netnsName(lab, n.name);
    const argv = (line: string) => substitute(splitCommand(line), n.binds, n.role, vipmux);
    const planned: PlannedNode = {
      name: n.name,
      role: n.role,
      netns,
      binds: n.binds,
      exec: n.exec.map(argv),
      env: { ...n.env, ...opts.env?.[n.name] },
      sysctls: n.sysctls,
    };
    if (n.mgmt)
      planned.mgmt = {
        peer: `v${i}-${n.name.replace(/[^A-Za-z0-9_.-]/g, "_")}`.slice(0, 15),
        addresses: [n.mgmt.ipv4, n.mgmt.ipv6].filter((a): a is string => a !== undefined),
        gateways,
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
    // No bridge when no node has eth0 (every one `network-mode: none`).
    ...(nodes.some((n) => n.mgmt)
      ? {
          mgmt: {
            network: topo.mgmt.network,
            netns: mgmtNetnsName(lab),
            bridge: topo.mgmt.bridge,
            ...(ipv4 ? { ipv4 } : {}),
            ...(ipv6 ? { ipv6 } : {}),
            ...(topo.mgmt.mtu !== undefined ? { mtu: topo.mgmt.mtu } : {}),
          },
        }
      : {}),
  };
}

/**
 * Commands that build the management network: its namespace (forwarding off: nothing is
 * routed anywhere from it, and it has no link to this machine's network), the bridge with
 * the gateway addresses.
 */
export function mgmtNetworkCommands(m: MgmtPlan): string[][] {
  const ns = m.netns;
  const mtu = m.mtu !== undefined ? ["mtu", String(m.mtu)] : [];
  const cmds: string[][] = [
    ["ip", "netns", "add", ns],
    ["ip", "-n", ns, "link", "set", "lo", "up"],
    ["ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=0"],
    ["ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=0"],
    ["ip", "-n", ns, "link", "add", m.bridge, ...mtu, "type", "bridge"],
  ];
  for (const f of [m.ipv4, m.ipv6])
    if (f)
      cmds.push([
        "ip",
        "-n",
        ns,
        "addr",
        "add",
        `${f.gateway}/${f.prefixLength}`,
        "dev",
        m.bridge,
        ...(f === m.ipv6 ? ["nodad"] : []),
      ]);
  cmds.push(["ip", "-n", ns, "link", "set", m.bridge, "up"]);
  return cmds;
}

/**
 * Commands that give a node (its namespace already made) eth0 on the management bridge,
 * its addresses and the default routes via the gateway: what containerlab's runtime does
 * before the node's `exec` lines run, so they meet the same routing table.
 */
export function mgmtNodeCommands(m: MgmtPlan, node: PlannedNode): string[][] {
  const me = node.mgmt;
  if (!me) return [];
  const ns = node.netns;
  const mtu = m.mtu !== undefined ? ["mtu", String(m.mtu)] : [];
  const cmds: string[][] = [
    [
      "ip",
      "-n",
      ns,
      "link",
      "add",
      "eth0",
      ...mtu,
      "type",
      "veth",
      "peer",
      "name",
      me.peer,
      ...mtu,
      "netns",
      m.netns,
    ],
    ["ip", "-n", m.netns, "link", "set", me.peer, "master", m.bridge],
    ["ip", "-n", m.netns, "link", "set", me.peer, "up"],
  ];
  for (const a of me.addresses)
    cmds.push([
      "ip",
      "-n",
      ns,
      "addr",
      "add",
      a,
      "dev",
      "eth0",
      ...(a.includes(":") ? ["nodad"] : []),
    ]);
  cmds.push(["ip", "-n", ns, "link", "set", "eth0", "up"]);
  for (const gw of me.gateways)
    cmds.push([
      "ip",
      ...(gw.includes(":") ? ["-6"] : []),
      "-n",
      ns,
      "route",
      "add",
      "default",
      "via",
      gw,
      "dev",
      "eth0",
    ]);
  return cmds;
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
