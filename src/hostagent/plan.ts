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
// - Second chance (docs/dataplane.md#second-chance): a MUX that has no entry for a
//   mid-flow packet names the flow's earlier owner P in the inner Ethernet *source*,
//   `dipMac(P)`. The host table's `second-chance` chain (prerouting, after conntrack,
//   before DNAT) looks that MAC up per device (`iifname . ether saddr`) only for a packet
//   that has no conntrack entry here yet and is not a TCP SYN: a flow that lives here
//   keeps its conntrack binding whatever the MAC says. A local P gets its DIP mark (DNAT
//   or the floating route follow it); a remote P gets the pass mark (`passMark`: flag bit
//   25 + P's 24 bits), which NAT skips, a rule `iif vmx-<vni> fwmark <flag>` routes to
//   the VNI's pass table (`default dev vmx-<vni>`, back out of the device it came in
//   on), the forward guard lets through, and the device's netdev egress chain turns into
//   inner destination `dipMac(P)` and source NO_OWNER_MAC (a VXLAN device drops frames
//   from its own MAC, and a DIP MAC as source would be a hint again); the device's FDB
//   entry `dipMac(P) → P's host PA` encapsulates it there. The decision is kept in the
//   conntrack mark and copied to every later packet of the flow. The devices are NOARP:
//   the pass route's neighbour is the device's own MAC, rewritten at egress.
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
import {
  DIP_MARK_FLAG,
  DIP_MARK_MASK,
  dipMacText,
  dipMark,
  NO_OWNER_MAC,
  PASS_MARK_FLAG,
  passMark,
  VIPMUX_MARK_MASK,
} from "../lb/dip-mac.ts";

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
/** Second chance: the routing table of packets passed on from a VNI's device. */
export const passTable = (vni: number) => (PASS_MARK_FLAG | vni) >>> 0;
export const isPassTable = (t: number) => (t & ~0x00ffffff) >>> 0 === PASS_MARK_FLAG;

export interface VxlanLinkSpec {
  name: string;
  vni: number;
  /** This host's PA: the socket's local address (its family decides v4 or v6 outer). */
  local: string;
  port: number;
  mac: string;
  /**
   * FDB entries (second chance): a remote earlier owner's `dipMac` → its host's PA, where
   * the device sends the packets this host passes on. Sorted by MAC.
   */
  fdb: FdbSpec[];
}

export interface FdbSpec {
  mac: string;
  /** The remote host's PA (the family of the device's `local`). */
  dst: string;
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
  /** A service's table: the local DIPs that take new flows from this host (NAT or route). */
  dips?: string[];
}

export interface RouteSpec {
  /** Prefix: a floating VIP as /32 or /128, or a default route (0.0.0.0/0, ::/0). */
  dst: string;
  table: number;
  /**
   * Next hops (floating DIPs, or the gateway), sorted; more than one is an ECMP route;
   * none: a route on `dev` itself (scope link: second chance's pass route).
   */
  via: string[];
  /** Output interface (host.interface for the gateway route; the VXLAN device for a pass route). */
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
  /** Per VNI: the services with local backends (second chance names their DIPs). */
  const vniServices = new Map<number, ServiceConfig[]>();
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
    const inVni = vniServices.get(s.vni) ?? [];
    inVni.push(s);
    vniServices.set(s.vni, inVni);
    links.set(s.vni, {
      name: dev,
      vni: s.vni,
      local: pa,
      port: cfg.host.vxlanPort,
      mac: cfg.host.innerMac,
      fdb: [],
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
    tables.push(
      serviceTable(s, dev, local, isFloating, dsr ? mark : undefined, cfg.host.secondChance),
    );
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
  const sc = cfg.host.secondChance
    ? secondChance(cfg, vniServices, warnings)
    : { hints: [], remotes: new Map<number, PassTarget[]>() };
  for (const [vni, remotes] of sc.remotes) {
    const name = linkName(vni);
    links.get(vni)!.fdb = remotes
      .map((r) => ({ mac: r.mac, dst: r.host }))
      .sort((a, b) => cmp(a.mac, b.mac));
    const families = new Set(vniServices.get(vni)!.map((s) => (isIPv6(s.vip) ? 6 : 4)));
    for (const family of [...families].sort()) {
      routes.push({
        dst: family === 6 ? "::/0" : "0.0.0.0/0",
        table: passTable(vni),
        via: [],
        dev: name,
      });
      rules.push({
        priority,
        family,
        iif: name,
        fwmark: PASS_MARK_FLAG,
        fwmask: PASS_MARK_FLAG,
        table: passTable(vni),
      });
    }
  }
  for (const [vni, dips] of [...vniDips].sort((a, b) => a[0] - b[0]))
    tables.push(vniTable(vni, [...dips], sc.remotes.get(vni) ?? []));
  if (tables.length > 0) {
    // A floating VIP with no DIP to route to (all drained) is not let through: dropped.
    const routed = [...floating].filter(([, f]) => f.dips.size > 0).map(([vip]) => vip);
    tables.push(
      hostTable(routed, gw4 !== undefined || gw6 !== undefined ? mark : undefined, {
        hints: sc.hints,
        passDevices: [...sc.remotes.keys()].map(linkName),
      }),
    );
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
  secondChance: boolean,
): ServiceTableSpec {
  const fam = isIPv6(s.vip) ? "ip6" : "ip";
  const endpoints: Endpoint[] = [];
  // Second chance: a packet passed on to its earlier owner's host is not NATed here.
  const rules: string[] =
    secondChance && !isFloating
      ? [`${markIs(PASS_MARK_FLAG)} counter accept comment "second chance: passed on"`]
      : [];
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
  return {
    ...tableText("inet", tableName(s.name), s.name, body),
    endpoints,
    dips: live.map((b) => b.dip),
  };
}

/**
 * The netdev table of one VXLAN device: frames whose inner destination is a local DIP's
 * MAC get that DIP's mark and are accepted as addressed to the host (the device would
 * otherwise mark them PACKET_OTHERHOST, and IP drops those). Other vipmux MACs (a DIP
 * this host does not have for the VNI: a MUX with another config) are accepted unmarked,
 * so the host picks; frames for the device's own MAC are untouched (an older MUX).
 * Depends only on the set of local DIPs of the VNI (and, for second chance's egress chain,
 * the remote ones), not on health or weights.
 */
function vniTable(vni: number, dips: string[], remotes: PassTarget[]): ServiceTableSpec {
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
  let body = chain(
    "ingress",
    `type filter hook ingress device "${dev}" priority filter; policy accept;`,
    rules,
  );
  // Second chance: a packet passed on leaves with its earlier owner's MAC as inner
  // destination (the FDB sends it to that DIP's host) and NO_OWNER_MAC as source (the
  // kernel wrote the device's own MAC, which the receiving device would drop as a loop).
  // A pass mark of no known DIP (one removed since its flow was passed) goes nowhere.
  if (remotes.length > 0) {
    const map = [...remotes]
      .sort((a, b) => a.mark - b.mark)
      .map((r) => `${hex(r.mark)} : ${r.mac}`)
      .join(", ");
    body += `\n${chain(
      "egress",
      `type filter hook egress device "${dev}" priority filter; policy accept;`,
      [
        `${markIs(PASS_MARK_FLAG)} counter ether daddr set meta mark and ${hex(VIPMUX_MARK_MASK)} map { ${map} } ether saddr set ${NO_OWNER_MAC} accept comment "second chance"`,
        `${markIs(PASS_MARK_FLAG)} counter drop comment "second chance: no such DIP"`,
      ],
    )}`;
  }
  return {
    ...tableText("netdev", vniTableName(vni), `vni-${vni}`, body),
    device: dev,
    endpoints: [],
  };
}

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

/**
 * The host table: the forward guard (VXLAN packets that no service DNATed, that are not
 * for a floating VIP and that second chance does not pass on are dropped, not routed back
 * towards the edge), with a DSR gateway the copy of the connection's mark onto its reply
 * packets, and second chance's choice for packets that name an earlier owner.
 */
function hostTable(
  floatingVips: string[],
  dsrMark: number | undefined,
  sc: { hints: Hint[]; passDevices: string[] },
): ServiceTableSpec {
  const vips = [...floatingVips].sort(cmp);
  const set = (list: string[]) => `{ ${list.join(", ")} }`;
  const v4 = vips.filter((v) => !isIPv6(v));
  const v6 = vips.filter((v) => isIPv6(v));
  const vx = `iifname "${LINK_PREFIX}*"`;
  const guard = [
    `${vx} ct status dnat accept`,
    ...(v4.length > 0 ? [`${vx} ip daddr ${set(v4)} accept`] : []),
    ...(v6.length > 0 ? [`${vx} ip6 daddr ${set(v6)} accept`] : []),
    // Second chance: passed on, back out of the device it came in on.
    ...(sc.passDevices.length > 0
      ? [
          `${markIs(PASS_MARK_FLAG)} iifname . oifname ${set(sc.passDevices.map((d) => `"${d}" . "${d}"`))} counter accept comment "second chance"`,
        ]
      : []),
    `${vx} counter drop comment "no service"`,
  ];
  let body = chain("forward", "type filter hook forward priority filter; policy accept;", guard);
  if (dsrMark !== undefined)
    body += `\n${chain("dsr", "type filter hook prerouting priority mangle; policy accept;", [
      `ct direction reply ct mark and ${hex(dsrMark)} == ${hex(dsrMark)} meta mark set meta mark or ${hex(dsrMark)}`,
    ])}`;
  if (sc.hints.length > 0) {
    const map = sc.hints.map((h) => `"${h.dev}" . ${h.mac} : ${hex(h.mark)}`).join(", ");
    // After conntrack (-200), before DNAT (-100). The whole packet mark is set (nftables
    // 1.0 cannot combine two registers): packets from VXLAN carry only vipmux's bits.
    body += `\n${chain(
      "second-chance",
      "type filter hook prerouting priority mangle; policy accept;",
      [
        `iifname != "${LINK_PREFIX}*" return`,
        // A flow decided here before (passed on, or given to a local earlier owner): again.
        `ct direction original ct mark and ${hex((DIP_MARK_FLAG | PASS_MARK_FLAG) >>> 0)} != 0x00000000 meta mark set ct mark and ${hex(VIPMUX_MARK_MASK)} counter return comment "second chance: as decided"`,
        // A flow that lives here keeps its conntrack binding, whatever the MAC says.
        "ct status confirmed return",
        "tcp flags & (syn | ack) == syn return",
        `ct state new meta l4proto { tcp, udp } meta mark set iifname . ether saddr map { ${map} } ct mark set meta mark counter comment "second chance: earlier owner"`,
      ],
    )}`;
  }
  return { ...tableText("inet", HOST_TABLE, "host", body), endpoints: [] };
}

/** Second chance: a MAC a MUX may name as a flow's earlier owner, and the mark it gives. */
export interface Hint {
  dev: string;
  mac: string;
  /** A local DIP's `dipMark`, or a remote one's `passMark`. */
  mark: number;
}

/** Second chance: a remote DIP this host passes packets on to. */
export interface PassTarget {
  dip: string;
  mac: string;
  mark: number;
  /** Its host's PA. */
  host: string;
}

/**
 * Second chance, per VNI with local backends: every DIP of those services (on any host) a
 * MUX may name as a flow's earlier owner, with what the host does for it: a local one
 * gets its DIP mark, a remote one is passed on to its host. Left out, with a warning: a
 * DIP on several hosts, on a host of the other underlay family, whose MAC another DIP of
 * the VNI shares (a local one keeps it), or whose pass mark (24 bits) another remote DIP
 * of the VNI shares. A VNI whose hint could only name today's choice gets nothing.
 */
function secondChance(
  cfg: HostAgentConfig,
  vniServices: Map<number, ServiceConfig[]>,
  warnings: string[],
): { hints: Hint[]; remotes: Map<number, PassTarget[]> } {
  const pa = cfg.host.pa;
  const hints: Hint[] = [];
  const remotes = new Map<number, PassTarget[]>();
  const skip = (dip: string, vni: number, why: string) =>
    warnings.push(`second chance: DIP ${dip} (VNI ${vni}) ${why}: its flows are not passed on`);
  for (const [vni, services] of [...vniServices].sort((a, b) => a[0] - b[0])) {
    const hosts = new Map<string, Set<string>>();
    for (const s of services)
      for (const b of s.backends) hosts.set(b.dip, (hosts.get(b.dip) ?? new Set()).add(b.host));
    const entries: { dip: string; mac: string; mark: number; host?: string }[] = [];
    for (const [dip, on] of [...hosts].sort((a, b) => cmp(a[0], b[0]))) {
      const mac = dipMacText(dip);
      if (mac === NO_OWNER_MAC) continue; // refused by the config loader
      if (on.has(pa)) {
        entries.push({ dip, mac, mark: dipMark(dip) });
        continue;
      }
      const host = [...on][0]!;
      if (on.size > 1) skip(dip, vni, `is on hosts ${[...on].sort(cmp).join(", ")}`);
      else if (mac === cfg.host.innerMac) skip(dip, vni, `has the VXLAN devices' MAC ${mac}`);
      else if (isIPv6(host) !== isIPv6(pa))
        skip(dip, vni, `is on ${host}, which this host's ${pa} cannot reach over VXLAN`);
      else entries.push({ dip, mac, mark: passMark(dip), host });
    }
    const shared = (key: (e: (typeof entries)[number]) => string | number) => {
      const n = new Map<string | number, number>();
      for (const e of entries) n.set(key(e), (n.get(key(e)) ?? 0) + 1);
      return (e: (typeof entries)[number]) => n.get(key(e))! > 1;
    };
    const macShared = shared((e) => e.mac);
    const markShared = shared((e) => (e.host === undefined ? -1 : e.mark));
    const kept = entries.filter((e) => {
      if (e.host === undefined) return true;
      if (macShared(e)) skip(e.dip, vni, `shares its MAC ${e.mac} with another DIP`);
      else if (markShared(e))
        skip(e.dip, vni, `shares its pass mark ${hex(e.mark)} with another remote DIP`);
      else return true;
      return false;
    });
    if (kept.length < 2) continue;
    const dev = linkName(vni);
    for (const e of kept) hints.push({ dev, mac: e.mac, mark: e.mark });
    const pass = kept.flatMap((e) => (e.host === undefined ? [] : [{ ...e, host: e.host }]));
    if (pass.length > 0) remotes.set(vni, pass);
  }
  return { hints, remotes };
}

/** The packet mark has all of `bits`. */
const markIs = (bits: number) => `meta mark and ${hex(bits)} == ${hex(bits)}`;

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
