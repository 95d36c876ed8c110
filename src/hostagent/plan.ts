// Desired kernel state of a host, computed from the config alone: pure data, no I/O.
//
// - One VXLAN device per VNI (`vmx-<vni>`), bound to this host's PA and the VXLAN port,
//   learning off, with the fixed inner MAC the MUXes put in the inner Ethernet header.
//   One device per VNI (rather than one `external` collect-metadata device) because
//   nftables can then tie a VIP to its VNI with `iifname`: a packet for tenant A's VIP
//   arriving in tenant B's VNI matches nothing. Devices of one port share the kernel's
//   VXLAN socket; the VNI selects the device.
// - One nftables table per service (`inet vipmux-svc-<name>`) with a nat prerouting
//   chain: VIP:port arriving on the service's VXLAN device is DNATed to a local DIP and
//   backend port. Per-service tables make every change local: a changed service's table is
//   replaced in one transaction, other tables are not touched, and conntrack keeps the NAT
//   binding of established flows (nat chains only see a flow's first packet).
// - The MUX's inner packet carries the VIP; the DIP it chose travels in the inner Ethernet
//   destination, `dipMac(DIP)` (src/lb/dip-mac.ts). A `netdev` table per VXLAN device
//   (`netdev vipmux-vni-<vni>`, ingress hook) maps each local DIP's MAC to a packet mark
//   (`dipMark`) and sets the packet type to host: the device only accepts frames for its
//   own MAC, anything else is PACKET_OTHERHOST and IP drops it. The service's DNAT rules
//   then pick the DIP the mark names. Unmarked packets (an older MUX using the device's
//   MAC), and marked ones whose DIP is drained or failing here, fall back to the host's own
//   stateless jhash over the service's distribution fields, weighted.
// - Floating-IP backends (the DIP owns the VIP) are not NATed: a policy rule per DIP
//   `iif vmx-<vni> to VIP fwmark <dipMark>/<mask> lookup <dipMark>` and a route `VIP via
//   DIP` in the DIP's own table (numbered by its mark) follow the MUX's choice; after them
//   `iif vmx-<vni> to VIP lookup <table>` and `VIP via DIPs` (ECMP) in the agent's table
//   catch the rest.
// - One host table (`inet vipmux-host`): a forward guard that drops what arrives over
//   VXLAN and matched no service (else it would be routed back to the edge, and from there
//   to a MUX, in a loop), and, with `gateway`/`gateway-v6`, the DSR marking below.
// Replies (DSR): conntrack un-DNATs them (source = VIP); they never go back through a MUX.
// By default the host's main routing table sends them (its default route must lead to
// the edge). With `host.gateway` the agent pins them to the edge router whatever the main
// table says: the DNAT marks the connection (ct mark), the host table copies that mark to
// the reply packets, and a rule `fwmark lookup <table>` sends them to `default via
// gateway` in the agent's table; floating-IP replies (source = VIP already) match a rule
// `from VIP lookup <table>`.
import { createHash } from "node:crypto";
import { isIPv6 } from "node:net";
import type { HostAgentConfig } from "../config/host-agent.ts";
import type { ServiceConfig } from "../config/schema.ts";
import { DIP_MARK_FLAG, DIP_MARK_MASK, dipMacText, dipMark } from "../lb/dip-mac.ts";

export const LINK_PREFIX = "vmx-";
/** Every nftables table the agent owns starts with this; nothing else is ever touched. */
export const OWN_TABLE_PREFIX = "vipmux-";
export const TABLE_PREFIX = "vipmux-svc-";
/** netdev tables, one per VXLAN device: MUX-chosen DIP (inner MAC) → packet mark. */
export const VNI_TABLE_PREFIX = "vipmux-vni-";
export const HOST_TABLE = "vipmux-host";
/** Fixed jhash seed: a host picks the same DIP for a flow across agent restarts. */
export const JHASH_SEED = 0x766d7578;

/** A floating DIP's routing table is numbered by its mark: tables the agent owns. */
export const isDipTable = (t: number) => (t & ~0x00ffffff) >>> 0 === DIP_MARK_FLAG;

export interface VxlanLinkSpec {
  name: string;
  vni: number;
  /** This host's PA: the socket's local address (its family decides v4 or v6 outer). */
  local: string;
  port: number;
  mac: string;
}

/** One (protocol, VIP, port or range) of a service: the unit of conntrack cleanup. */
export interface Endpoint {
  protocol: "tcp" | "udp";
  vip: string;
  first: number;
  last: number;
}

export interface ServiceTableSpec {
  service: string;
  /** nftables family: `inet` (services, host table) or `netdev` (a VXLAN device's ingress). */
  family: "inet" | "netdev";
  /** nftables table name. */
  table: string;
  /** The device a netdev table hooks: re-put whenever the device is (re)created. */
  device?: string;
  /** Digest of `body`, kept in the table's comment: equal digests mean nothing to do. */
  digest: string;
  /** The complete `table inet ... { ... }` text, comment included. */
  text: string;
  endpoints: Endpoint[];
}

export interface RouteSpec {
  /** Prefix: a floating VIP as /32 or /128, or a default route (0.0.0.0/0, ::/0). */
  dst: string;
  table: number;
  /** Next hops (floating DIPs, or the gateway), sorted; more than one is an ECMP route. */
  via: string[];
  /** Output interface (host.interface, for the gateway route). */
  dev?: string;
}

/** A policy rule; unset selectors match everything. */
export interface RuleSpec {
  priority: number;
  family: 4 | 6;
  /** Input interface (the VNI's VXLAN device). */
  iif?: string;
  /** Destination prefix (a floating VIP). */
  dst?: string;
  /** Source prefix (a floating VIP's replies). */
  src?: string;
  /** fwmark (DSR-marked replies of NATed flows; a floating DIP's mark). */
  fwmark?: number;
  /** Mask of `fwmark` (default: `fwmark` itself). */
  fwmask?: number;
  table: number;
  /** Ignore the looked-up route if its prefix is this short or shorter (0: a default route). */
  suppressPrefixlen?: number;
}

/** The main routing table: DSR replies use its specific routes, only its default is replaced. */
export const RT_TABLE_MAIN = 254;

export interface SysctlSpec {
  /** Path under /proc/sys, e.g. net/ipv4/conf/vmx-100/rp_filter */
  key: string;
  value: string;
}

/** A host setting the agent needs but does not own: it warns when the value is not accepted. */
export interface RequirementSpec {
  key: string;
  accept: string[];
  why: string;
}

export interface DesiredState {
  links: VxlanLinkSpec[];
  tables: ServiceTableSpec[];
  routes: RouteSpec[];
  rules: RuleSpec[];
  sysctls: SysctlSpec[];
  /** Host settings the agent needs but does not own (forwarding); it warns when off. */
  required: RequirementSpec[];
  warnings: string[];
}

export const linkName = (vni: number) => `${LINK_PREFIX}${vni}`;
/** Devices the agent owns: exactly its naming pattern (vmx-<vni>), nothing else. */
export const isOwnLinkName = (name: string) => /^vmx-\d+$/.test(name);
export const tableName = (service: string) => `${TABLE_PREFIX}${service}`;
export const vniTableName = (vni: number) => `${VNI_TABLE_PREFIX}${vni}`;
/** The nftables family of one of the agent's tables, from its name. */
export const tableFamily = (name: string): "inet" | "netdev" =>
  name.startsWith(VNI_TABLE_PREFIX) ? "netdev" : "inet";

/**
 * `failing`: keys ("service/dip") of local DIPs whose health checks fail; they get no new
 * flows from this host, unless every DIP of the service here fails (then the MUXes decide).
 */
export function plan(cfg: HostAgentConfig, failing: ReadonlySet<string> = new Set()): DesiredState {
  const pa = cfg.host.pa;
  const gw4 = cfg.host.gateway;
  const gw6 = cfg.host.gatewayV6;
  const mark = cfg.host.dsrMark;
  const links = new Map<number, VxlanLinkSpec>();
  const tables: ServiceTableSpec[] = [];
  const floating = new Map<string, { vni: Set<number>; dips: Set<string>; services: string[] }>();
  /** Per VNI: every local DIP (health and weight aside: the MAC → mark map is static). */
  const vniDips = new Map<number, Set<string>>();
  const warnings: string[] = [];
  let v4 = false;
  let v6 = false;

  for (const s of [...cfg.services].sort((a, b) => cmp(a.name, b.name))) {
    if (!s.enabled) continue;
    const all = s.backends.filter((b) => b.host === pa);
    if (all.length === 0) continue;
    const healthy = all.filter((b) => b.weight === 0 || !failing.has(`${s.name}/${b.dip}`));
    const local = healthy.some((b) => b.weight > 0) ? healthy : all;
    const dev = linkName(s.vni);
    const dips = vniDips.get(s.vni) ?? new Set<string>();
    for (const b of all) dips.add(b.dip);
    vniDips.set(s.vni, dips);
    links.set(s.vni, {
      name: dev,
      vni: s.vni,
      local: pa,
      port: cfg.host.vxlanPort,
      mac: cfg.host.innerMac,
    });
    if (isIPv6(s.vip)) v6 = true;
    else v4 = true;
    const isFloating = local.every((b) => b.floatingIp);
    if (isFloating) {
      const f = floating.get(s.vip) ?? { vni: new Set(), dips: new Set(), services: [] };
      f.vni.add(s.vni);
      for (const b of local) if (b.weight > 0) f.dips.add(b.dip);
      f.services.push(s.name);
      floating.set(s.vip, f);
    }
    const dsr = (isIPv6(s.vip) ? gw6 : gw4) !== undefined;
    tables.push(serviceTable(s, dev, local, isFloating, dsr ? mark : undefined));
  }

  const table = cfg.host.routeTable;
  const priority = cfg.host.rulePriority;
  const routes: RouteSpec[] = [];
  const rules: RuleSpec[] = [];
  for (const [vip, f] of [...floating].sort((a, b) => cmp(a[0], b[0]))) {
    const dst = `${vip}/${isIPv6(vip) ? 128 : 32}`;
    if (f.services.length > 1)
      warnings.push(
        `services ${f.services.join(", ")} share floating VIP ${vip}: its route goes to all of their DIPs on this host`,
      );
    const family = isIPv6(vip) ? 6 : 4;
    if (f.dips.size > 0) routes.push({ dst, table, via: [...f.dips].sort(cmp) });
    const vnis = [...f.vni].sort((a, b) => a - b);
    // The MUX's choice first: the DIP its mark names, in that DIP's own table. With one
    // DIP there is nothing to choose.
    if (f.dips.size > 1)
      for (const dip of [...f.dips].sort(cmp)) {
        const m = dipMark(dip);
        routes.push({ dst, table: m, via: [dip] });
        for (const vni of vnis)
          rules.push({
            priority,
            family,
            iif: linkName(vni),
            dst,
            fwmark: m,
            fwmask: DIP_MARK_MASK,
            table: m,
          });
      }
    // Then the rest (no mark, or a DIP not live here): the host's ECMP over its DIPs.
    for (const vni of vnis)
      rules.push({ priority: priority + 1, family, iif: linkName(vni), dst, table });
    if ((family === 6 ? gw6 : gw4) !== undefined)
      rules.push(...dsrRules({ priority, family, src: dst, table }));
  }
  const dev = cfg.host.interface;
  for (const [family, gw] of [
    [4, gw4],
    [6, gw6],
  ] as const) {
    if (gw === undefined || tables.length === 0) continue;
    routes.push({
      dst: family === 6 ? "::/0" : "0.0.0.0/0",
      table,
      via: [gw],
      ...(dev !== undefined ? { dev } : {}),
    });
    rules.push(...dsrRules({ priority, family, fwmark: mark, table }));
  }
  for (const [vni, dips] of [...vniDips].sort((a, b) => a[0] - b[0]))
    tables.push(vniTable(vni, [...dips]));
  if (tables.length > 0) {
    // A floating VIP with no DIP to route to (all drained) is not let through: dropped.
    const routed = [...floating].filter(([, f]) => f.dips.size > 0).map(([vip]) => vip);
    tables.push(hostTable(routed, gw4 !== undefined || gw6 !== undefined ? mark : undefined));
  }

  const sortedLinks = [...links.values()].sort((a, b) => a.vni - b.vni);
  return {
    links: sortedLinks,
    tables,
    routes,
    rules,
    // rp_filter compares the inner source (a client) with the route back to it, which is
    // not the VXLAN device: off for the device. The effective value is max(all, device).
    sysctls: sortedLinks.map((l) => ({ key: `net/ipv4/conf/${l.name}/rp_filter`, value: "0" })),
    required: [
      ...(v4
        ? [
            {
              key: "net/ipv4/ip_forward",
              accept: ["1"],
              why: "DNATed packets are forwarded to DIPs",
            },
            {
              key: "net/ipv4/conf/all/rp_filter",
              accept: ["0", "2"],
              why: "strict mode on all interfaces overrides the VXLAN devices' rp_filter 0",
            },
          ]
        : []),
      ...(v6
        ? [
            {
              key: "net/ipv6/conf/all/forwarding",
              accept: ["1"],
              why: "DNATed packets are forwarded to DIPs",
            },
          ]
        : []),
    ],
    warnings,
  };
}

function serviceTable(
  s: ServiceConfig,
  dev: string,
  local: ServiceConfig["backends"],
  isFloating: boolean,
  dsrMark: number | undefined,
): ServiceTableSpec {
  const fam = isIPv6(s.vip) ? "ip6" : "ip";
  const endpoints: Endpoint[] = [];
  const rules: string[] = [];
  // Weighted slots for the jhash map: DIPs sorted, weights divided by their gcd.
  const live = local.filter((b) => b.weight > 0).sort((a, b) => cmp(a.dip, b.dip));
  const g = live.reduce((acc, b) => gcd(acc, b.weight), 0) || 1;
  const slots = live.flatMap((b) => Array<string>(b.weight / g).fill(b.dip));

  for (const p of s.ports) {
    const [first, last] =
      p.port !== undefined
        ? [p.port, p.port]
        : (p.portRange!.split("-").map(Number) as [number, number]);
    endpoints.push({ protocol: p.protocol, vip: s.vip, first, last });
    const dport = first === last ? `${first}` : `${first}-${last}`;
    const match = `iifname "${dev}" ${fam} daddr ${s.vip} ${p.protocol} dport ${dport}`;
    const note = `comment "${p.protocol} ${s.vip} ${dport}"`;
    if (isFloating) {
      rules.push(`${match} counter accept ${note}`);
      continue;
    }
    if (slots.length === 0) {
      // Every local DIP has weight 0 (drained): no new flows here, and without a rule the
      // packet would be routed back towards the edge.
      rules.push(`${match} counter drop ${note}`);
      continue;
    }
    const bport = p.backendPort ?? (first === last ? first : undefined);
    const portSuffix = bport === undefined ? "" : `:${bport}`;
    const addr = (a: string) => (fam === "ip6" ? `[${a}]` : a);
    // The mark is set with the NAT binding, i.e. on the flow's first packet only.
    const ctMark = dsrMark === undefined ? "" : `ct mark set ct mark or ${hex(dsrMark)} `;
    const distinct = [...new Set(slots)];
    // The MUX's choice: the DIP named by the mark the netdev chain set from the inner MAC.
    // Only live DIPs have a rule: a mark naming a drained or failing DIP falls through to
    // the host's own pick below.
    if (distinct.length > 1)
      for (const d of distinct)
        rules.push(
          `${match} meta mark and ${hex(DIP_MARK_MASK)} == ${hex(dipMark(d))} counter ${ctMark}dnat ${fam} to ${addr(d)}${portSuffix} comment "dip ${d}"`,
        );
    let target: string;
    if (new Set(slots).size === 1) {
      target = `${addr(slots[0]!)}${portSuffix}`;
    } else {
      const map = slots.map((d, i) => `${i} : ${d}`).join(", ");
      target = `jhash ${hashFields(s.distribution, fam, p.protocol)} mod ${slots.length} seed 0x${JHASH_SEED.toString(16)} map { ${map} }${portSuffix === "" ? "" : ` ${portSuffix}`}`;
    }
    rules.push(`${match} counter ${ctMark}dnat ${fam} to ${target} ${note}`);
  }

  const body = chain(
    "prerouting",
    "type nat hook prerouting priority dstnat; policy accept;",
    rules,
  );
  return { ...tableText("inet", tableName(s.name), s.name, body), endpoints };
}

/**
 * The netdev table of one VXLAN device: frames whose inner destination is a local DIP's
 * MAC get that DIP's mark and are accepted as addressed to the host (the device would
 * otherwise mark them PACKET_OTHERHOST, and IP drops those). Other vipmux MACs (a DIP
 * this host does not have for the VNI: a MUX with another config) are accepted unmarked,
 * so the host picks; frames for the device's own MAC are untouched (an older MUX).
 * Depends only on the set of local DIPs of the VNI, not on health or weights.
 */
function vniTable(vni: number, dips: string[]): ServiceTableSpec {
  const dev = linkName(vni);
  const keep = hex((~DIP_MARK_MASK >>> 0) >>> 0);
  const rules = dips
    .map((d) => ({ d, mac: dipMacText(d) }))
    .sort((a, b) => cmp(a.mac, b.mac))
    .map(
      ({ d, mac }) =>
        `ether daddr ${mac} counter meta mark set meta mark and ${keep} or ${hex(dipMark(d))} meta pkttype set host comment "dip ${d}"`,
    );
  rules.push(
    `ether daddr and ff:ff:00:00:00:00 == 02:76:00:00:00:00 meta pkttype other counter meta pkttype set host comment "unknown DIP"`,
  );
  const body = chain(
    "ingress",
    `type filter hook ingress device "${dev}" priority filter; policy accept;`,
    rules,
  );
  return {
    ...tableText("netdev", vniTableName(vni), `vni-${vni}`, body),
    device: dev,
    endpoints: [],
  };
}

/**
 * The host table: the forward guard (VXLAN packets that no service DNATed and that are
 * not for a floating VIP are dropped, not routed back towards the edge) and, with a DSR
 * gateway, the copy of the connection's mark onto its reply packets.
 */
/**
 * Replies go to the DSR gateway only where the main table would use its default route:
 * `lookup main suppress_prefixlength 0` first (so a client on a connected or specifically
 * routed network is reached directly), then the agent's table one priority later.
 */
function dsrRules(r: RuleSpec): RuleSpec[] {
  return [
    { ...r, table: RT_TABLE_MAIN, suppressPrefixlen: 0 },
    { ...r, priority: r.priority + 1 },
  ];
}

function hostTable(floatingVips: string[], dsrMark: number | undefined): ServiceTableSpec {
  const vips = [...floatingVips].sort(cmp);
  const set = (list: string[]) => `{ ${list.join(", ")} }`;
  const v4 = vips.filter((v) => !isIPv6(v));
  const v6 = vips.filter((v) => isIPv6(v));
  const vx = `iifname "${LINK_PREFIX}*"`;
  const guard = [
    `${vx} ct status dnat accept`,
    ...(v4.length > 0 ? [`${vx} ip daddr ${set(v4)} accept`] : []),
    ...(v6.length > 0 ? [`${vx} ip6 daddr ${set(v6)} accept`] : []),
    `${vx} counter drop comment "no service"`,
  ];
  let body = chain("forward", "type filter hook forward priority filter; policy accept;", guard);
  if (dsrMark !== undefined)
    body += `\n${chain("dsr", "type filter hook prerouting priority mangle; policy accept;", [
      `ct direction reply ct mark and ${hex(dsrMark)} == ${hex(dsrMark)} meta mark set meta mark or ${hex(dsrMark)}`,
    ])}`;
  return { ...tableText("inet", HOST_TABLE, "host", body), endpoints: [] };
}

function chain(name: string, hook: string, rules: string[]): string {
  return [`\tchain ${name} {`, `\t\t${hook}`, ...rules.map((r) => `\t\t${r}`), "\t}"].join("\n");
}

/**
 * The table's text with its digest in the first chain's comment: `nft list chains` shows
 * chain comments and is fast with many tables, where listing tables or the ruleset is
 * slow (seconds for hundreds of tables with nftables 1.0).
 */
function tableText(family: "inet" | "netdev", table: string, what: string, body: string) {
  const digest = createHash("sha256").update(body).digest("hex").slice(0, 16);
  const withDigest = body.replace(
    /^\tchain \S+ \{\n/,
    (m) => `${m}\t\tcomment "vipmux ${what} ${digest}"\n`,
  );
  const text = `table ${family} ${table} {\n\tcomment "vipmux ${what}"\n${withDigest}\n}\n`;
  return { service: what, family, table, digest, text };
}

const hex = (n: number) => `0x${n.toString(16).padStart(8, "0")}`;

/** nftables jhash input for a distribution mode (RFC-free: the project's own terms). */
function hashFields(dist: ServiceConfig["distribution"], fam: string, proto: string): string {
  const addrs = `${fam} saddr . ${fam} daddr`;
  // 3-tuple is (src, dst, protocol): the protocol is fixed by the rule, so it adds nothing.
  return dist === "5-tuple" ? `${addrs} . ${proto} sport . ${proto} dport` : addrs;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
