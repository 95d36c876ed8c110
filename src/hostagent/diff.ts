// Desired vs observed kernel state → the actions that make them equal. Pure: the kernel
// module observes and applies. Only what the agent owns is ever in `observed` (links named
// vmx-* and their FDB entries, nftables tables named vipmux-*, routes and rules with the
// agent's protocol), so an empty desired state is the cleanup.
import {
  type DesiredState,
  type Endpoint,
  type FdbSpec,
  type RouteSpec,
  type RuleSpec,
  type ServiceTableSpec,
  type SysctlSpec,
  tableFamily,
  type VxlanLinkSpec,
} from "./plan.ts";

export interface ObservedLink {
  name: string;
  index: number;
  kind?: string;
  vni?: number;
  local?: string;
  port?: number;
  mac?: string;
  up: boolean;
  /** IFF_NOARP (the agent's devices resolve no neighbours: second chance's pass route). */
  noarp: boolean;
  /** FDB entries with a remote address (a VXLAN device's; the agent's devices learn none). */
  fdb: FdbSpec[];
}

export interface ObservedTable {
  name: string;
  /** Digest from the table's comment (undefined: not written by this agent version). */
  digest?: string;
  endpoints: Endpoint[];
}

export interface ObservedState {
  links: ObservedLink[];
  tables: ObservedTable[];
  routes: RouteSpec[];
  rules: RuleSpec[];
  /** Current values of the desired sysctls (undefined: no such key yet). */
  sysctls: Record<string, string | undefined>;
}

/** An FDB entry of one of the agent's devices. */
export interface FdbChange extends FdbSpec {
  dev: string;
}

export type Action =
  | { kind: "link-add"; link: VxlanLinkSpec }
  /** VNI, local address or port differ: a VXLAN device cannot change them in place. */
  | { kind: "link-replace"; link: VxlanLinkSpec; index: number; reason: string }
  | {
      kind: "link-set";
      link: VxlanLinkSpec;
      index: number;
      mac: boolean;
      up: boolean;
      noarp: boolean;
    }
  | { kind: "link-del"; name: string; index: number }
  | { kind: "sysctl"; sysctl: SysctlSpec }
  /**
   * VXLAN FDB entries (second chance: an earlier owner's MAC → its host), all of a pass in
   * one batch: stale ones deleted, then missing ones added.
   */
  | { kind: "fdb"; add: FdbChange[]; del: FdbChange[] }
  /** One nftables transaction: tables added or replaced, tables deleted. */
  | { kind: "nft"; put: ServiceTableSpec[]; del: string[] }
  | { kind: "route-add"; route: RouteSpec }
  | { kind: "route-del"; route: RouteSpec }
  | { kind: "rule-add"; rule: RuleSpec }
  | { kind: "rule-del"; rule: RuleSpec }
  /** Conntrack entries of endpoints that no longer exist (a removed service or port). */
  | { kind: "conntrack-flush"; endpoints: Endpoint[] };

/** Actions in a safe order: devices first, then rules that use them, deletions last. */
export function diff(desired: DesiredState, observed: ObservedState): Action[] {
  const actions: Action[] = [];
  const obsLinks = new Map(observed.links.map((l) => [l.name, l]));
  for (const link of desired.links) {
    const o = obsLinks.get(link.name);
    if (!o) {
      actions.push({ kind: "link-add", link });
      continue;
    }
    const reason =
      o.kind !== "vxlan"
        ? `kind ${o.kind ?? "unknown"}`
        : o.vni !== link.vni
          ? `VNI ${o.vni}`
          : o.local !== link.local
            ? `local ${o.local ?? "none"}`
            : o.port !== link.port
              ? `port ${o.port}`
              : undefined;
    if (reason) actions.push({ kind: "link-replace", link, index: o.index, reason });
    else if (o.mac !== link.mac || !o.up || !o.noarp)
      actions.push({
        kind: "link-set",
        link,
        index: o.index,
        mac: o.mac !== link.mac,
        up: !o.up,
        noarp: !o.noarp,
      });
  }

  // A netdev table hooks its device, its sysctls, FDB entries and device routes belong to
  // it: a device (re)created in this pass needs them again.
  const newDevices = new Set(
    actions.flatMap((a) =>
      a.kind === "link-add" || a.kind === "link-replace" ? [a.link.name] : [],
    ),
  );
  const ofNewDevice = (key: string) => newDevices.has(key.split("/")[3] ?? "");
  for (const s of desired.sysctls)
    if (observed.sysctls[s.key] !== s.value || ofNewDevice(s.key))
      actions.push({ kind: "sysctl", sysctl: s });

  // FDB entries of devices that stay (a deleted device takes its own along); stale ones
  // first, so a MAC whose host changed is free for its new entry.
  const fdbKey = (dev: string, f: FdbSpec) => `${dev} ${f.mac} ${f.dst}`;
  const wantFdb = new Set(desired.links.flatMap((l) => l.fdb.map((f) => fdbKey(l.name, f))));
  const hasFdb = new Set<string>();
  const fdb = { add: [] as FdbChange[], del: [] as FdbChange[] };
  for (const l of desired.links) {
    const o = obsLinks.get(l.name);
    if (o === undefined || newDevices.has(l.name)) continue;
    for (const f of o.fdb) {
      hasFdb.add(fdbKey(l.name, f));
      if (!wantFdb.has(fdbKey(l.name, f))) fdb.del.push({ dev: l.name, ...f });
    }
  }
  for (const l of desired.links)
    for (const f of l.fdb) if (!hasFdb.has(fdbKey(l.name, f))) fdb.add.push({ dev: l.name, ...f });
  if (fdb.add.length > 0 || fdb.del.length > 0) actions.push({ kind: "fdb", ...fdb });
  const obsTables = new Map(observed.tables.map((t) => [t.name, t]));
  const wanted = new Set(desired.tables.map((t) => t.table));
  const put = desired.tables.filter(
    (t) =>
      obsTables.get(t.table)?.digest !== t.digest ||
      (t.device !== undefined && newDevices.has(t.device)),
  );
  const del = observed.tables.filter((t) => !wanted.has(t.name)).map((t) => t.name);
  if (put.length > 0 || del.length > 0) actions.push({ kind: "nft", put, del: del.sort() });

  const routeKey = (r: RouteSpec) => `${r.table} ${r.dst} ${r.via.join(",")} ${r.dev ?? ""}`;
  // The kernel reports the output device of every gateway route; compare it only where
  // the plan names one (host.interface).
  const withDev = new Set(
    desired.routes.filter((r) => r.dev !== undefined).map((r) => `${r.table} ${r.dst}`),
  );
  const observedRoutes = observed.routes
    // A device route of a device (re)created in this pass went with the old device.
    .filter((r) => r.via.length > 0 || r.dev === undefined || !newDevices.has(r.dev))
    .map((r) => {
      if (r.dev === undefined || r.via.length === 0 || withDev.has(`${r.table} ${r.dst}`)) return r;
      const { dev: _, ...rest } = r;
      return rest;
    });
  const obsRoutes = new Set(observedRoutes.map(routeKey));
  const obsRules = new Set(observed.rules.map(ruleKey));
  const wantRoutes = new Set(desired.routes.map(routeKey));
  const wantRules = new Set(desired.rules.map(ruleKey));
  // A route whose next hops changed is deleted first (same destination, same table).
  for (const r of observedRoutes)
    if (!wantRoutes.has(routeKey(r))) actions.push({ kind: "route-del", route: r });
  for (const r of desired.routes)
    if (!obsRoutes.has(routeKey(r))) actions.push({ kind: "route-add", route: r });
  for (const r of desired.rules)
    if (!obsRules.has(ruleKey(r))) actions.push({ kind: "rule-add", rule: r });
  for (const r of observed.rules)
    if (!wantRules.has(ruleKey(r))) actions.push({ kind: "rule-del", rule: r });

  const wantedLinks = new Set(desired.links.map((l) => l.name));
  for (const l of observed.links)
    if (!wantedLinks.has(l.name)) actions.push({ kind: "link-del", name: l.name, index: l.index });

  // Conntrack: only endpoints that disappeared (removed service, or a port removed from a
  // changed one). Untouched services, and unchanged endpoints of a changed one, keep theirs.
  const desiredEndpoints = new Set(desired.tables.flatMap((t) => t.endpoints.map(endpointKey)));
  const gone = observed.tables
    .flatMap((t) => t.endpoints)
    .filter((e) => !desiredEndpoints.has(endpointKey(e)));
  if (gone.length > 0) actions.push({ kind: "conntrack-flush", endpoints: gone });
  return actions;
}

/** `ip rule` style text of a rule; also its identity in the diff. */
export function ruleKey(r: RuleSpec): string {
  const sel = [
    r.src !== undefined ? `from ${r.src}` : "from all",
    ...(r.dst !== undefined ? [`to ${r.dst}`] : []),
    ...(r.iif !== undefined ? [`iif ${r.iif}`] : []),
    ...(r.fwmark !== undefined
      ? [`fwmark 0x${r.fwmark.toString(16)}/0x${(r.fwmask ?? r.fwmark).toString(16)}`]
      : []),
  ];
  const suppress =
    r.suppressPrefixlen !== undefined ? ` suppress_prefixlength ${r.suppressPrefixlen}` : "";
  return `${r.priority}: ipv${r.family} ${sel.join(" ")} lookup ${r.table}${suppress}`;
}

export const endpointKey = (e: Endpoint) => `${e.protocol} ${e.vip} ${e.first}-${e.last}`;

/** One line per action, for logs and `--dry-run`. */
export function describeAction(a: Action): string {
  switch (a.kind) {
    case "link-add":
      return `add VXLAN device ${a.link.name} (VNI ${a.link.vni}, local ${a.link.local}:${a.link.port}, mac ${a.link.mac})`;
    case "link-replace":
      return `replace VXLAN device ${a.link.name} (${a.reason} → VNI ${a.link.vni}, local ${a.link.local}:${a.link.port})`;
    case "link-set":
      return `set ${a.link.name}${a.mac ? ` mac ${a.link.mac}` : ""}${a.noarp ? " arp off" : ""}${a.up ? " up" : ""}`;
    case "link-del":
      return `delete VXLAN device ${a.name}`;
    case "sysctl":
      return `sysctl ${a.sysctl.key.replaceAll("/", ".")} = ${a.sysctl.value}`;
    case "fdb": {
      // Thousands at a first start: the first few by name, then a count.
      const list = (what: string, l: FdbChange[]) =>
        l.length === 0
          ? []
          : [
              `${what} ${l
                .slice(0, 4)
                .map((f) => `${f.mac} dst ${f.dst} on ${f.dev}`)
                .join(", ")}${l.length > 4 ? ` and ${l.length - 4} more` : ""}`,
            ];
      return `FDB: ${[...list("delete", a.del), ...list("add", a.add)].join("; ")}`;
    }
    case "nft":
      return `nftables: ${[...a.put.map((t) => `put ${t.table}`), ...a.del.map((t) => `delete ${t}`)].join(", ")}`;
    case "route-add":
    case "route-del":
      return `${a.kind === "route-add" ? "add" : "delete"} route ${a.route.dst}${a.route.via.length > 0 ? ` via ${a.route.via.join(", ")}` : ""}${a.route.dev ? ` dev ${a.route.dev}` : ""} table ${a.route.table}`;
    case "rule-add":
    case "rule-del":
      return `${a.kind === "rule-add" ? "add" : "delete"} rule ${ruleKey(a.rule)}`;
    case "conntrack-flush":
      return `delete conntrack entries of ${a.endpoints.map(endpointKey).join(", ")}`;
  }
}

/**
 * The `bridge -batch` script of one FDB action: deletions first (a MAC whose host changed
 * is then free), additions as `replace` (a VXLAN MAC keeps one remote, not a list).
 */
export function fdbScript(add: FdbChange[], del: FdbChange[]): string {
  const line = (verb: string, f: FdbChange) =>
    `fdb ${verb} ${f.mac} dev ${f.dev} dst ${f.dst} self${verb === "replace" ? " permanent" : ""}`;
  return `${[...del.map((f) => line("del", f)), ...add.map((f) => line("replace", f))].join("\n")}\n`;
}

/** The nft script of one transaction: replaced tables are deleted and redefined atomically. */
export function nftScript(put: ServiceTableSpec[], del: string[]): string {
  const lines: string[] = [];
  // `table X` first creates the table when absent, so `delete table X` never fails.
  for (const name of [...put.map((t) => t.table), ...del]) {
    const f = tableFamily(name);
    lines.push(`table ${f} ${name}`, `delete table ${f} ${name}`);
  }
  for (const t of put) lines.push(t.text);
  return `${lines.join("\n")}\n`;
}

/**
 * Reads our tables back from `nft list chains` or `nft list table` text (inet and netdev
 * families): each
 * vipmux-* table's digest (its first chain's comment) and endpoints (its rules'
 * comments; chain listings have none). Other tables are ignored.
 */
export function parseNftRuleset(text: string, prefix: string): ObservedTable[] {
  const out: ObservedTable[] = [];
  let cur: ObservedTable | undefined;
  for (const line of text.split("\n")) {
    const start = /^table (?:inet|netdev) (\S+) \{/.exec(line);
    if (start) {
      cur = start[1]!.startsWith(prefix) ? { name: start[1]!, endpoints: [] } : undefined;
      if (cur) out.push(cur);
      continue;
    }
    if (!cur) continue;
    if (line === "}") {
      cur = undefined;
      continue;
    }
    const c = /^\t\tcomment "vipmux \S+ ([0-9a-f]{16})"$/.exec(line);
    if (c) {
      cur.digest = c[1]!;
      continue;
    }
    const r = /comment "(tcp|udp) (\S+) (\d+)(?:-(\d+))?"$/.exec(line);
    if (r) {
      const first = Number(r[3]);
      cur.endpoints.push({
        protocol: r[1] as "tcp" | "udp",
        vip: r[2]!,
        first,
        last: r[4] === undefined ? first : Number(r[4]),
      });
    }
  }
  return out;
}
