// The management network, as containerlab builds it: every node (unless `network-mode:
// none`) gets an eth0 on one bridge, an address from the management subnet and a default
// route via the bridge's gateway address. Defaults are containerlab's (network "clab",
// 172.20.20.0/24 and 3fff:172:20:20::/64, gateway = first address); a `mgmt:` section and
// the nodes' `mgmt-ipv4` / `mgmt-ipv6` override them. Pure: resolving the section and
// handing out addresses, with every problem returned as a (path, message) pair.
import { formatIpv6, parseIpv4, parseIpv6 } from "../util/ip.ts";

export const DEFAULT_MGMT_NETWORK = "clab";
export const DEFAULT_MGMT_IPV4_SUBNET = "172.20.20.0/24";
export const DEFAULT_MGMT_IPV6_SUBNET = "3fff:172:20:20::/64";

export interface MgmtFamily {
  /** The subnet in CIDR form, host bits cleared (172.20.20.0/24). */
  subnet: string;
  /** The bridge's address, which every node's default route goes through. */
  gateway: string;
  prefixLength: number;
}

export interface MgmtNetwork {
  /** containerlab's (docker) network name. */
  network: string;
  /** Name of the Linux bridge the nodes' eth0 peers are attached to. */
  bridge: string;
  ipv4?: MgmtFamily;
  ipv6?: MgmtFamily;
  mtu?: number;
}

/** A node's eth0 addresses in CIDR form (the subnet's prefix length). */
export interface NodeMgmt {
  ipv4?: string;
  ipv6?: string;
}

export interface MgmtProblem {
  path: string;
  message: string;
}

export interface MgmtNodeInput {
  name: string;
  /** `network-mode` of the node, if set. */
  networkMode?: string;
  mgmtIpv4?: string;
  mgmtIpv6?: string;
}

export interface MgmtResolution {
  mgmt: MgmtNetwork;
  /** Per node name; nodes with `network-mode: none` are absent. */
  nodes: Map<string, NodeMgmt>;
  problems: MgmtProblem[];
}

type Raw = Record<string, unknown>;

interface Fam {
  v: 4 | 6;
  bits: number;
  parse(text: string): bigint | undefined;
  format(value: bigint): string;
}

const V4: Fam = {
  v: 4,
  bits: 32,
  parse: (t) => {
    const n = parseIpv4(t);
    return n === undefined ? undefined : BigInt(n);
  },
  format: (x) => [24n, 16n, 8n, 0n].map((s) => String((x >> s) & 255n)).join("."),
};

const V6: Fam = {
  v: 6,
  bits: 128,
  parse: (t) => {
    const b = parseIpv6(t);
    if (!b) return undefined;
    let x = 0n;
    for (const byte of b) x = (x << 8n) | BigInt(byte);
    return x;
  },
  format: (x) => {
    const b = new Uint8Array(16);
    for (let i = 15, y = x; i >= 0; i--, y >>= 8n) b[i] = Number(y & 255n);
    return formatIpv6(b);
  },
};

interface Prefix {
  base: bigint;
  len: number;
}

function parsePrefix(text: string, fam: Fam): Prefix | undefined {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(text.trim());
  if (!m?.[1] || !m[2]) return undefined;
  const addr = fam.parse(m[1]);
  const len = Number(m[2]);
  if (addr === undefined || len > fam.bits) return undefined;
  return { base: addr & mask(len, fam), len };
}

function mask(len: number, fam: Fam): bigint {
  const all = (1n << BigInt(fam.bits)) - 1n;
  return all ^ ((1n << BigInt(fam.bits - len)) - 1n);
}

function last(p: Prefix, fam: Fam): bigint {
  return p.base | ((1n << BigInt(fam.bits - p.len)) - 1n);
}

function contains(p: Prefix, addr: bigint, fam: Fam): boolean {
  return (addr & mask(p.len, fam)) === p.base;
}

/** Whether two prefixes (CIDR text) of the same family overlap. */
export function prefixesOverlap(a: string, b: string): boolean {
  const fam = a.includes(":") ? V6 : V4;
  if (b.includes(":") !== (fam === V6)) return false;
  const pa = parsePrefix(a, fam);
  const pb = parsePrefix(b, fam);
  if (!pa || !pb) return false;
  const len = Math.min(pa.len, pb.len);
  return (pa.base & mask(len, fam)) === (pb.base & mask(len, fam));
}

const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;

/**
 * Resolves the topology's `mgmt:` section and hands every node its eth0 addresses the way
 * containerlab's runtime (docker's address management) does: nodes with `mgmt-ipv4` /
 * `mgmt-ipv6` keep them, the others get the free addresses after the gateway in file order
 * (from `ipv4-range` / `ipv6-range` when given).
 */
export function resolveMgmt(raw: unknown, nodes: readonly MgmtNodeInput[]): MgmtResolution {
  const problems: MgmtProblem[] = [];
  const m: Raw = typeof raw === "object" && raw !== null && !Array.isArray(raw) ? (raw as Raw) : {};
  const str = (k: string) =>
    typeof m[k] === "string" && m[k] !== "" ? (m[k] as string) : undefined;
  const network = str("network") ?? DEFAULT_MGMT_NETWORK;
  let bridge = str("bridge");
  if (bridge !== undefined && !IFNAME.test(bridge)) {
    problems.push({
      path: "mgmt.bridge",
      message: `"${bridge}" is not a valid Linux interface name (1-15 of A-Z a-z 0-9 _ . -)`,
    });
    bridge = undefined;
  }
  bridge ??= `br-${network.replace(/[^A-Za-z0-9_.-]/g, "-")}`.slice(0, 15);
  // containerlab: both defaults when neither subnet is given; `auto` picks a free one (in a
  // namespace of its own, the default is free).
  const v4Text = str("ipv4-subnet");
  const v6Text = str("ipv6-subnet");
  const neither = v4Text === undefined && v6Text === undefined;
  const subnetText = (text: string | undefined, def: string) =>
    text === "auto" ? def : (text ?? (neither ? def : undefined));

  const mgmt: MgmtNetwork = { network, bridge };
  const mtu = m.mtu;
  if (mtu !== undefined && mtu !== "") {
    const n = Number(mtu);
    if (!Number.isInteger(n) || n < 68 || n > 65535)
      problems.push({ path: "mgmt.mtu", message: `"${String(mtu)}" is not an MTU (68-65535)` });
    else mgmt.mtu = n;
  }
  const out = new Map<string, NodeMgmt>();
  const attached = nodes.filter((n) => {
    const mode = n.networkMode;
    if (mode === undefined || mode === "" || mode === "bridge") return true;
    if (mode !== "none")
      problems.push({
        path: `topology.nodes.${n.name}.network-mode`,
        message: `network-mode "${mode}" is not supported by the namespace lab (bridge, the default, or none)`,
      });
    return false;
  });
  for (const n of attached) out.set(n.name, {});

  const family = (fam: Fam, text: string | undefined, def: string) => {
    const key = fam.v === 4 ? "ipv4" : "ipv6";
    const subnet = subnetText(text, def);
    for (const n of attached) {
      const own = fam.v === 4 ? n.mgmtIpv4 : n.mgmtIpv6;
      if (own !== undefined && subnet === undefined)
        problems.push({
          path: `topology.nodes.${n.name}.mgmt-${key}`,
          message: `mgmt.${key}-subnet is not set, so the management network has no IPv${fam.v}`,
        });
    }
    if (subnet === undefined) return undefined;
    const net = parsePrefix(subnet, fam);
    if (!net || net.len > fam.bits - 2) {
      problems.push({
        path: `mgmt.${key}-subnet`,
        message: `"${subnet}" is not an IPv${fam.v} subnet with room for a gateway and nodes`,
      });
      return undefined;
    }
    // The subnet's first and (IPv4) last addresses are never handed out.
    const lowest = net.base + 1n;
    const highest = fam.v === 4 ? last(net, fam) - 1n : last(net, fam);
    const inSubnet = (a: bigint) => contains(net, a, fam) && a >= lowest && a <= highest;
    let gateway = lowest;
    const gwText = str(`${key}-gw`);
    if (gwText !== undefined) {
      const gw = fam.parse(gwText);
      if (gw === undefined || !inSubnet(gw))
        problems.push({
          path: `mgmt.${key}-gw`,
          message: `${gwText} is not a host address of ${fam.format(net.base)}/${net.len}`,
        });
      else gateway = gw;
    }
    let pool: { from: bigint; to: bigint } = { from: lowest, to: highest };
    const rangeText = str(`${key}-range`);
    if (rangeText !== undefined) {
      const r = parsePrefix(rangeText, fam);
      if (!r || r.len < net.len || !contains(net, r.base, fam))
        problems.push({
          path: `mgmt.${key}-range`,
          message: `"${rangeText}" is not a range inside ${fam.format(net.base)}/${net.len}`,
        });
      else
        pool = {
          from: r.base > lowest ? r.base : lowest,
          to: last(r, fam) < highest ? last(r, fam) : highest,
        };
    }
    const taken = new Map<bigint, string>([[gateway, "the gateway"]]);
    const assigned = new Map<string, bigint>();
    for (const n of attached) {
      const own = fam.v === 4 ? n.mgmtIpv4 : n.mgmtIpv6;
      if (own === undefined) continue;
      const path = `topology.nodes.${n.name}.mgmt-${key}`;
      const a = fam.parse(own);
      if (a === undefined || !inSubnet(a)) {
        problems.push({
          path,
          message: `${own} is not a host address of ${fam.format(net.base)}/${net.len}`,
        });
        continue;
      }
      const holder = taken.get(a);
      if (holder !== undefined) {
        problems.push({ path, message: `${own} is already ${holder}'s` });
        continue;
      }
      taken.set(a, n.name);
      assigned.set(n.name, a);
    }
    let next = pool.from;
    for (const n of attached) {
      if ((fam.v === 4 ? n.mgmtIpv4 : n.mgmtIpv6) !== undefined) continue;
      while (next <= pool.to && taken.has(next)) next++;
      if (next > pool.to) {
        problems.push({
          path: rangeText !== undefined ? `mgmt.${key}-range` : `mgmt.${key}-subnet`,
          message: `no free IPv${fam.v} management address left for node ${n.name}`,
        });
        break;
      }
      taken.set(next, n.name);
      assigned.set(n.name, next);
    }
    for (const [name, a] of assigned) {
      const entry = out.get(name);
      if (entry) entry[key] = `${fam.format(a)}/${net.len}`;
    }
    return {
      subnet: `${fam.format(net.base)}/${net.len}`,
      gateway: fam.format(gateway),
      prefixLength: net.len,
    };
  };
  const ipv4 = family(V4, v4Text, DEFAULT_MGMT_IPV4_SUBNET);
  const ipv6 = family(V6, v6Text, DEFAULT_MGMT_IPV6_SUBNET);
  if (ipv4) mgmt.ipv4 = ipv4;
  if (ipv6) mgmt.ipv6 = ipv6;
  return { mgmt, nodes: out, problems };
}
