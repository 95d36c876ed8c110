// Loading a containerlab topology file: YAML → schema check → semantic checks → a typed,
// fully resolved Topology (defaults/kinds merged, bind paths absolute). Pure apart from
// reading the file; every problem is returned as a TopologyError, nothing throws.
import { existsSync, readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { LineCounter, parseDocument } from "yaml";
import { err, ok, type Result } from "../util/result.ts";
import {
  type MgmtNetwork,
  type MgmtNodeInput,
  type NodeMgmt,
  prefixesOverlap,
  resolveMgmt,
} from "./mgmt.ts";
import { validateTopologySchema } from "./schema.ts";
import { isGeneratedSecret } from "./secrets.ts";

/** What runs a node in the namespace runner. */
export type NodeRole = "frr" | "vipmux" | "linux";

export interface Bind {
  /** Absolute path on this machine. */
  host: string;
  /** Path inside the node (what configs and commands refer to). */
  container: string;
  mode?: string;
}

export interface TopologyNode {
  name: string;
  kind: string;
  image: string;
  role: NodeRole;
  binds: Bind[];
  exec: string[];
  cmd?: string;
  env: Record<string, string>;
  sysctls: Record<string, string>;
  /** eth0 on the management network; absent with `network-mode: none`. */
  mgmt?: NodeMgmt;
}

export interface Endpoint {
  node: string;
  iface: string;
  /** Addresses given in a brief link's `ipv4` / `ipv6` lists, in CIDR form. */
  addresses: string[];
}

export interface TopologyLink {
  a: Endpoint;
  b: Endpoint;
  mtu?: number;
}

export interface Topology {
  name: string;
  file: string;
  dir: string;
  nodes: TopologyNode[];
  links: TopologyLink[];
  /** The management network (containerlab's defaults, or the file's `mgmt:` section). */
  mgmt: MgmtNetwork;
}

export interface TopologyError {
  file: string;
  line?: number;
  col?: number;
  path: string;
  message: string;
}

export function formatTopologyError(e: TopologyError): string {
  const where = e.line !== undefined ? `${e.file}:${e.line}:${e.col ?? 1}` : e.file;
  return `${where}: ${e.path}: ${e.message}`;
}

const FRR_IMAGE = /^(quay\.io\/)?frrouting\/frr(:.*)?$/;
const VIPMUX_IMAGE = /(^|\/)vipmux(:[^/]*)?$/;
// Linux IFNAMSIZ is 16 including the NUL.
const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;

export function roleOf(image: string): NodeRole {
  if (FRR_IMAGE.test(image)) return "frr";
  if (VIPMUX_IMAGE.test(image)) return "vipmux";
  return "linux";
}

export function loadTopology(file: string): Result<Topology, TopologyError[]> {
  const abs = resolve(file);
  if (!existsSync(abs)) return err([{ file: abs, path: "(file)", message: "file not found" }]);
  return parseTopology(readFileSync(abs, "utf8"), abs);
}

type Raw = Record<string, unknown>;
const isObj = (v: unknown): v is Raw => typeof v === "object" && v !== null && !Array.isArray(v);

export function parseTopology(text: string, file: string): Result<Topology, TopologyError[]> {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  if (doc.errors.length > 0) {
    return err(
      doc.errors.map((e) => {
        const pos = lines.linePos(e.pos[0]);
        return { file, line: pos.line, col: pos.col, path: "(yaml)", message: e.message };
      }),
    );
  }
  const value = doc.toJS() as unknown;
  const schemaIssues = validateTopologySchema(value, doc, lines);
  if (schemaIssues.length > 0) return err(schemaIssues.map((i) => ({ file, ...i })));
  const errors: TopologyError[] = [];
  const fail = (path: string, message: string) => {
    const segments = path.split(".").map((s) => (/^\d+$/.test(s) ? Number(s) : s));
    const node = doc.getIn(segments, true) as { range?: [number, number, number] } | undefined;
    const pos = node?.range ? lines.linePos(node.range[0]) : undefined;
    errors.push({ file, path, message, ...(pos ? { line: pos.line, col: pos.col } : {}) });
  };

  const root = value as Raw;
  const topo = (root.topology ?? {}) as Raw;
  const dir = dirname(file);
  const defaults = isObj(topo.defaults) ? topo.defaults : {};
  const kinds = isObj(topo.kinds) ? topo.kinds : {};
  const rawNodes = isObj(topo.nodes) ? topo.nodes : {};

  const nodes: TopologyNode[] = [];
  const mgmtInputs: MgmtNodeInput[] = [];
  for (const [name, rawNode] of Object.entries(rawNodes)) {
    const n = isObj(rawNode) ? rawNode : {};
    const kind = String(n.kind ?? defaults.kind ?? "");
    const kindCfg = isObj(kinds[kind]) ? (kinds[kind] as Raw) : {};
    // containerlab precedence: node > kind > defaults.
    const pick = (key: string): unknown => n[key] ?? kindCfg[key] ?? defaults[key];
    const image = String(pick("image") ?? "");
    if (!kind) fail(`topology.nodes.${name}`, "no kind given (on the node, or in defaults)");
    const binds: Bind[] = [];
    const rawBinds = [
      ...asStrings(defaults.binds),
      ...asStrings(kindCfg.binds),
      ...asStrings(n.binds),
    ];
    rawBinds.forEach((b, i) => {
      const [host, container, mode] = b.split(":");
      if (!host || !container) {
        fail(`topology.nodes.${name}.binds.${i}`, `bind "${b}" is not HOST:CONTAINER[:MODE]`);
        return;
      }
      const hostAbs = isAbsolute(host) ? host : resolve(dir, host);
      // A missing secret is made at `lab up` (secrets.ts); anything else must exist.
      if (!existsSync(hostAbs) && !isGeneratedSecret(hostAbs))
        fail(`topology.nodes.${name}.binds`, `bind source ${hostAbs} does not exist`);
      binds.push({ host: hostAbs, container, ...(mode ? { mode } : {}) });
    });
    const cmd = pick("cmd");
    const networkMode = pick("network-mode");
    // containerlab's own (kebab-case) keys, as its schema spells them.
    const { "mgmt-ipv4": mgmtIpv4, "mgmt-ipv6": mgmtIpv6 } = n;
    mgmtInputs.push({
      name,
      ...(typeof networkMode === "string" ? { networkMode } : {}),
      ...(typeof mgmtIpv4 === "string" ? { mgmtIpv4 } : {}),
      ...(typeof mgmtIpv6 === "string" ? { mgmtIpv6 } : {}),
    });
    nodes.push({
      name,
      kind,
      image,
      role: roleOf(image),
      binds,
      exec: [...asStrings(defaults.exec), ...asStrings(kindCfg.exec), ...asStrings(n.exec)],
      ...(typeof cmd === "string" && cmd.trim() ? { cmd } : {}),
      env: { ...asEnv(defaults.env), ...asEnv(kindCfg.env), ...asEnv(n.env) },
      sysctls: { ...asEnv(defaults.sysctls), ...asEnv(kindCfg.sysctls), ...asEnv(n.sysctls) },
    });
  }

  const mgmt = resolveMgmt(root.mgmt, mgmtInputs);
  for (const p of mgmt.problems) fail(p.path, p.message);
  for (const node of nodes) {
    const addrs = mgmt.nodes.get(node.name);
    if (addrs) node.mgmt = addrs;
  }
  const mgmtSubnets = [mgmt.mgmt.ipv4?.subnet, mgmt.mgmt.ipv6?.subnet].filter(
    (s): s is string => s !== undefined,
  );

  const names = new Set(nodes.map((n) => n.name));
  const usedIfaces = new Map<string, string>();
  const links: TopologyLink[] = [];
  const rawLinks = Array.isArray(topo.links) ? topo.links : [];
  rawLinks.forEach((rawLink, i) => {
    const path = `topology.links.${i}`;
    const l = isObj(rawLink) ? rawLink : {};
    if (l.type !== undefined && l.type !== "veth") {
      fail(path, `link type "${String(l.type)}" is not supported by the namespace lab (veth only)`);
      return;
    }
    const eps = Array.isArray(l.endpoints) ? l.endpoints : [];
    if (eps.length !== 2) {
      fail(`${path}.endpoints`, "a link needs exactly two endpoints");
      return;
    }
    const v4 = asStrings(l.ipv4);
    const v6 = asStrings(l.ipv6);
    for (const [key, list] of [
      ["ipv4", v4],
      ["ipv6", v6],
    ] as const)
      list.forEach((addr, j) => {
        const subnet = mgmtSubnets.find((s) => addr && prefixesOverlap(addr, s));
        if (subnet)
          fail(
            `${path}.${key}.${j}`,
            `${addr} overlaps the management subnet ${subnet}: lab traffic would mix with management`,
          );
      });
    const parsed: Endpoint[] = [];
    eps.forEach((ep, j) => {
      const epPath = `${path}.endpoints.${j}`;
      let node: string | undefined;
      let iface: string | undefined;
      if (typeof ep === "string") {
        const idx = ep.lastIndexOf(":");
        node = ep.slice(0, idx);
        iface = ep.slice(idx + 1);
      } else if (isObj(ep)) {
        node = typeof ep.node === "string" ? ep.node : undefined;
        iface = typeof ep.interface === "string" ? ep.interface : undefined;
      }
      if (!node || !iface) {
        fail(epPath, "endpoint must be NODE:INTERFACE");
        return;
      }
      if (!names.has(node)) {
        fail(epPath, `unknown node "${node}" (nodes: ${[...names].join(", ")})`);
        return;
      }
      if (!IFNAME.test(iface)) {
        fail(
          epPath,
          `interface name "${iface}" is not a valid Linux name (1-15 of A-Z a-z 0-9 _ . -)`,
        );
        return;
      }
      if (iface === "eth0") {
        fail(epPath, `eth0 is the management interface in containerlab; use eth1 and up`);
        return;
      }
      const key = `${node}:${iface}`;
      const prev = usedIfaces.get(key);
      if (prev !== undefined) {
        fail(epPath, `duplicate interface ${key} (already used by ${prev})`);
        return;
      }
      usedIfaces.set(key, epPath);
      const addresses = [v4[j], v6[j]].filter((a): a is string => !!a);
      parsed.push({ node, iface, addresses });
    });
    const [a, b] = parsed;
    if (a && b) links.push({ a, b, ...(typeof l.mtu === "number" ? { mtu: l.mtu } : {}) });
  });

  if (errors.length > 0) return err(errors);
  return ok({ name: String(root.name), file, dir, nodes, links, mgmt: mgmt.mgmt });
}

function asStrings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
}

function asEnv(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (isObj(v)) for (const [k, x] of Object.entries(v)) out[k] = String(x);
  return out;
}
