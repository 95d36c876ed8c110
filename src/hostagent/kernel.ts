// The I/O edge of the host agent: reads the kernel state the agent owns and applies
// actions. Links, routes and rules through rtnetlink (the `netlink` package; VXLAN FDB
// entries are read as AF_BRIDGE neighbour messages and written by `bridge -batch -`), nftables
// through `nft -f -` (one atomic transaction per reconcile), sysctls through /proc/sys,
// conntrack through ctnetlink.
import { readFileSync, writeFileSync } from "node:fs";
import { isIPv6 } from "node:net";
import nl from "netlink";
import { formatIp, formatMac, parseIp, parseMac } from "../packet/address.ts";
import { must } from "../util/proc.ts";
import { Conntrack } from "./conntrack.ts";
import {
  type Action,
  fdbScript,
  nftScript,
  type ObservedLink,
  type ObservedState,
  type ObservedTable,
  parseNftRuleset,
} from "./diff.ts";
import {
  type DesiredState,
  type FdbSpec,
  isDipTable,
  isOwnLinkName,
  isPassTable,
  OWN_TABLE_PREFIX,
  type RequirementSpec,
  type RouteSpec,
  type RuleSpec,
  tableFamily,
  type VxlanLinkSpec,
} from "./plan.ts";

const { createRtNetlink, ifla, AttrStream, FlagsNew } = nl;

/** rtm_protocol / FRA_PROTOCOL of the agent's routes and rules: how it knows its own. */
export const RTPROT_VIPMUX = 247;
const AF_INET = 2;
const AF_INET6 = 10;
const AF_BRIDGE = 7;
const RT_TABLE_COMPAT = 252;
const FR_ACT_TO_TBL = 1;
const RTA_GATEWAY = 5;

type RtSocket = ReturnType<typeof createRtNetlink>;

const toBuffer = (d: Parameters<InstanceType<typeof AttrStream>["emit"]>[0]): Buffer => {
  const s = new AttrStream();
  s.emit(d);
  return Buffer.concat(s.bufs);
};

const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};
const addrBuf = (a: string) => Buffer.from(parseIp(a)!);
const prefixOf = (p: string) => {
  const [a, len] = p.split("/") as [string, string | undefined];
  return {
    addr: a,
    len: Number(len ?? (isIPv6(a) ? 128 : 32)),
    family: isIPv6(a) ? AF_INET6 : AF_INET,
  };
};

export class Kernel {
  private readonly rt: RtSocket = createRtNetlink();
  private readonly procSys: string;
  /** Interface indexes by name, from one link dump (routes on devices come by the hundred). */
  private readonly indexes = new Map<string, number>();

  constructor(procSys = "/proc/sys") {
    this.procSys = procSys;
  }

  close(): void {
    this.rt.socket.close();
  }

  async observe(desired: DesiredState, table: number): Promise<ObservedState> {
    this.indexes.clear();
    // One dump at a time: the socket reassembles one multipart reply at a time.
    const links = await this.links();
    const tables = await this.tables(desired);
    const routes = await this.routes(table);
    const rules = await this.rules();
    const sysctls: Record<string, string | undefined> = {};
    for (const s of desired.sysctls) sysctls[s.key] = this.readSysctl(s.key);
    return { links, tables, routes, rules, sysctls };
  }

  /** Requirements whose current value is not accepted (forwarding off, strict rp_filter). */
  unmet(required: RequirementSpec[]): { req: RequirementSpec; value: string | undefined }[] {
    return required
      .map((req) => ({ req, value: this.readSysctl(req.key) }))
      .filter(({ req, value }) => value === undefined || !req.accept.includes(value));
  }

  private readSysctl(key: string): string | undefined {
    try {
      return readFileSync(`${this.procSys}/${key}`, "utf8").trim();
    } catch {
      return undefined;
    }
  }

  async links(): Promise<ObservedLink[]> {
    const out: ObservedLink[] = [];
    const fdb = await this.fdb();
    for (const l of await this.rt.getLinks()) {
      const name = l.attrs.ifname;
      if (name === undefined || !isOwnLinkName(name) || l.data.index === undefined) continue;
      const info = l.attrs.linkinfo ? ifla.parseInfo(l.attrs.linkinfo) : undefined;
      const vx = info?.kind === "vxlan" && info.data ? ifla.parseVxlan(info.data) : undefined;
      const local = vx?.local ?? vx?.local6;
      out.push({
        name,
        index: l.data.index,
        kind: info?.kind,
        vni: vx?.id,
        local: local ? formatIp(local) : undefined,
        port: vx?.port ? vx.port.readUInt16BE(0) : undefined,
        mac: l.attrs.address ? formatMac(l.attrs.address) : undefined,
        up: l.data.flags?.up === true,
        noarp: l.data.flags?.noarp === true,
        fdb: fdb.get(l.data.index) ?? [],
      });
    }
    return out;
  }

  /**
   * FDB entries with a remote address, by device index. The kernel answers an AF_BRIDGE
   * dump with every device's entries (bridges' too) whatever index is asked for, so the
   * caller picks its devices.
   */
  private async fdb(): Promise<Map<number, FdbSpec[]>> {
    const out = new Map<number, FdbSpec[]>();
    for (const n of await this.rt.getNeighbors({ family: AF_BRIDGE })) {
      const index = n.data.ifindex;
      if (index === undefined || !n.attrs.lladdr || !n.attrs.dst) continue;
      const list = out.get(index) ?? [];
      list.push({ mac: formatMac(n.attrs.lladdr), dst: formatIp(n.attrs.dst) });
      out.set(index, list);
    }
    return out;
  }

  /**
   * The agent's tables with their digests (`nft list chains`: fast with hundreds of
   * tables); the endpoints only of tables about to be replaced or deleted, which are the
   * only ones conntrack cleanup needs (`nft list table` each).
   */
  async tables(desired: DesiredState): Promise<ObservedTable[]> {
    // All families: services and the host table are inet, the VXLAN devices' are netdev.
    const r = await must(["nft", "list", "chains"]);
    const want = new Map(desired.tables.map((t) => [t.table, t.digest]));
    const out = parseNftRuleset(r.stdout, OWN_TABLE_PREFIX);
    for (const t of out) {
      // netdev tables have no endpoints (nothing in conntrack hangs on them).
      if (want.get(t.name) === t.digest || tableFamily(t.name) !== "inet") continue;
      const full = await must(["nft", "list", "table", "inet", t.name]);
      t.endpoints = parseNftRuleset(full.stdout, OWN_TABLE_PREFIX)[0]?.endpoints ?? [];
    }
    return out;
  }

  async routes(table: number): Promise<RouteSpec[]> {
    const names = new Map<number, string>();
    for (const l of await this.rt.getLinks())
      if (l.data.index !== undefined && l.attrs.ifname) names.set(l.data.index, l.attrs.ifname);
    const out: RouteSpec[] = [];
    for (const family of [AF_INET, AF_INET6]) {
      for (const r of await this.rt.getRoutes({ family })) {
        const t = r.attrs.table ?? r.data.table ?? 0;
        // The agent's table, the floating DIPs' own tables (numbered by their marks) and
        // second chance's pass tables (by VNI).
        if (
          (t !== table && !isDipTable(t) && !isPassTable(t)) ||
          Number(r.data.protocol) !== RTPROT_VIPMUX
        )
          continue;
        const via = r.attrs.gateway
          ? [formatIp(r.attrs.gateway)]
          : r.attrs.multipath
            ? parseMultipath(r.attrs.multipath)
            : [];
        const dst = r.attrs.dst ? formatIp(r.attrs.dst) : family === AF_INET6 ? "::" : "0.0.0.0";
        // A gateway route's device, and a device route's (no next hop: a pass route).
        const dev =
          r.attrs.oif !== undefined && (r.attrs.gateway || !r.attrs.multipath)
            ? names.get(r.attrs.oif)
            : undefined;
        out.push({
          dst: `${dst}/${r.data.dstLen}`,
          table: t,
          via: via.sort(),
          // Only a route planned with a device is compared by device.
          ...(dev !== undefined ? { dev } : {}),
        });
      }
    }
    return out;
  }

  async rules(): Promise<RuleSpec[]> {
    const out: RuleSpec[] = [];
    for (const family of [AF_INET, AF_INET6]) {
      for (const r of await this.rt.getRules({ family })) {
        if (r.attrs.protocol !== RTPROT_VIPMUX) continue;
        const prefix = (a: Buffer | undefined, len: number | undefined) =>
          a ? `${formatIp(a)}/${len}` : undefined;
        const dst = prefix(r.attrs.dst, r.data.dstLen);
        const src = prefix(r.attrs.src, r.data.srcLen);
        out.push({
          priority: r.attrs.priority ?? 0,
          family: family === AF_INET6 ? 6 : 4,
          ...(r.attrs.iifname !== undefined ? { iif: r.attrs.iifname } : {}),
          ...(dst !== undefined ? { dst } : {}),
          ...(src !== undefined ? { src } : {}),
          ...(r.attrs.fwmark !== undefined ? { fwmark: r.attrs.fwmark } : {}),
          ...(r.attrs.fwmark !== undefined &&
          r.attrs.fwmask !== undefined &&
          r.attrs.fwmask !== r.attrs.fwmark
            ? { fwmask: r.attrs.fwmask }
            : {}),
          table: r.attrs.table ?? r.data.table ?? 0,
          // The kernel reports -1 (0xffffffff) for "not set".
          ...(r.attrs.suppressPrefixlen &&
          r.attrs.suppressPrefixlen.length >= 4 &&
          r.attrs.suppressPrefixlen.readInt32LE(0) >= 0
            ? { suppressPrefixlen: r.attrs.suppressPrefixlen.readInt32LE(0) }
            : {}),
        });
      }
    }
    return out;
  }

  async apply(a: Action): Promise<number | undefined> {
    // A device made or removed here changes the indexes.
    if (a.kind === "link-add" || a.kind === "link-replace" || a.kind === "link-del")
      this.indexes.clear();
    switch (a.kind) {
      case "link-add":
        await this.addLink(a.link);
        return;
      case "link-replace":
        await this.rt.delLink({ index: a.index });
        await this.addLink(a.link);
        return;
      case "link-set":
        await this.rt.setLink(
          { index: a.index, flags: { up: true, noarp: true }, change: { up: true, noarp: true } },
          a.mac ? { address: Buffer.from(parseMac(a.link.mac)!) } : {},
        );
        return;
      case "fdb":
        // One process for all of them: thousands of entries at a first start, where one
        // netlink request each, awaited in turn, took seconds.
        await must(["bridge", "-batch", "-"], { input: fdbScript(a.add, a.del) });
        return;
      case "link-del":
        await this.rt.delLink({ index: a.index });
        return;
      case "sysctl":
        writeFileSync(`${this.procSys}/${a.sysctl.key}`, a.sysctl.value);
        return;
      case "nft": {
        const script = nftScript(a.put, a.del);
        try {
          await must(["nft", "-f", "-"], { input: script });
        } catch (e) {
          // Second chance's egress chains need Linux 5.16+ (and nftables 1.0.1+).
          if (!/hook egress/.test(script)) throw e;
          throw new Error(
            `${(e as Error).message} (if this kernel has no netdev egress hook, before Linux 5.16, set host.second-chance: false)`,
          );
        }
        return;
      }
      case "route-add":
      case "route-del": {
        const { addr, len, family } = prefixOf(a.route.dst);
        const data: Parameters<RtSocket["newRoute"]>[0] = {
          family,
          dstLen: len,
          table: a.route.table < 256 ? a.route.table : RT_TABLE_COMPAT,
          // Not one of the library's named protocols: the number is the point.
          protocol: RTPROT_VIPMUX as unknown as NonNullable<
            Parameters<RtSocket["newRoute"]>[0]["protocol"]
          >,
          // No next hop: a route on the device itself (second chance's pass route).
          scope: a.route.via.length === 0 ? "LINK" : "UNIVERSE",
          type: "UNICAST",
        };
        const oif = a.route.dev === undefined ? undefined : await this.ifindex(a.route.dev);
        const attrs = {
          ...(len > 0 ? { dst: addrBuf(addr) } : {}),
          table: a.route.table,
          ...(oif !== undefined ? { oif } : {}),
          ...(a.route.via.length === 0
            ? {}
            : a.route.via.length === 1
              ? { gateway: addrBuf(a.route.via[0]!) }
              : { multipath: formatMultipath(a.route.via) }),
        };
        if (a.kind === "route-add")
          await this.rt.newRoute(data, attrs, { flags: FlagsNew.CREATE | FlagsNew.EXCL });
        else await this.rt.delRoute(data, attrs);
        return;
      }
      case "rule-add":
      case "rule-del": {
        const r = a.rule;
        const dst = r.dst === undefined ? undefined : prefixOf(r.dst);
        const src = r.src === undefined ? undefined : prefixOf(r.src);
        const data = {
          family: r.family === 6 ? AF_INET6 : AF_INET,
          dstLen: dst?.len ?? 0,
          srcLen: src?.len ?? 0,
          table: r.table < 256 ? r.table : RT_TABLE_COMPAT,
          action: FR_ACT_TO_TBL,
        };
        const attrs = {
          ...(dst ? { dst: addrBuf(dst.addr) } : {}),
          ...(src ? { src: addrBuf(src.addr) } : {}),
          ...(r.iif !== undefined ? { iifname: r.iif } : {}),
          ...(r.fwmark !== undefined ? { fwmark: r.fwmark, fwmask: r.fwmask ?? r.fwmark } : {}),
          ...(r.suppressPrefixlen !== undefined
            ? { suppressPrefixlen: u32(r.suppressPrefixlen) }
            : {}),
          priority: r.priority,
          table: r.table,
          protocol: RTPROT_VIPMUX,
        };
        if (a.kind === "rule-add")
          await this.rt.newRule(data, attrs, { flags: FlagsNew.CREATE | FlagsNew.EXCL });
        else await this.rt.delRule(data, attrs);
        return;
      }
      case "conntrack-flush": {
        const ct = new Conntrack();
        try {
          return await ct.flush(a.endpoints);
        } finally {
          ct.close();
        }
      }
    }
  }

  private async ifindex(name: string): Promise<number> {
    if (!this.indexes.has(name)) {
      this.indexes.clear();
      for (const l of await this.rt.getLinks())
        if (l.attrs.ifname !== undefined && l.data.index !== undefined)
          this.indexes.set(l.attrs.ifname, l.data.index);
    }
    const index = this.indexes.get(name);
    if (index === undefined) throw new Error(`no interface ${name}`);
    return index;
  }

  private async addLink(link: VxlanLinkSpec): Promise<void> {
    const port = Buffer.alloc(2);
    port.writeUInt16BE(link.port);
    const local = addrBuf(link.local);
    const v6 = local.length === 16;
    const data = toBuffer(
      ifla.formatVxlan({
        id: link.vni,
        ...(v6 ? { local6: local, udpZeroCsum6Rx: 1 } : { local }),
        port,
        learning: 0,
      }),
    );
    await this.rt.newLink(
      { flags: { up: true, noarp: true }, change: { up: true, noarp: true } },
      {
        ifname: link.name,
        address: Buffer.from(parseMac(link.mac)!),
        linkinfo: toBuffer(ifla.formatInfo({ kind: "vxlan", data })),
      },
      { flags: FlagsNew.CREATE | FlagsNew.EXCL },
    );
  }
}

/** RTA_MULTIPATH: struct rtnexthop { u16 len; u8 flags; u8 hops; s32 ifindex } + RTA_GATEWAY. */
export function formatMultipath(via: string[]): Buffer {
  return Buffer.concat(
    via.map((gw) => {
      const a = addrBuf(gw);
      const nh = Buffer.alloc(8 + 4 + a.length);
      nh.writeUInt16LE(nh.length, 0);
      nh.writeUInt16LE(4 + a.length, 8);
      nh.writeUInt16LE(RTA_GATEWAY, 10);
      a.copy(nh, 12);
      return nh;
    }),
  );
}

export function parseMultipath(b: Buffer): string[] {
  const out: string[] = [];
  let o = 0;
  while (o + 8 <= b.length) {
    const len = b.readUInt16LE(o);
    if (len < 8 || o + len > b.length) break;
    let a = o + 8;
    while (a + 4 <= o + len) {
      const alen = b.readUInt16LE(a);
      if (alen < 4) break;
      if ((b.readUInt16LE(a + 2) & 0x3fff) === RTA_GATEWAY)
        out.push(formatIp(b.subarray(a + 4, a + alen)));
      a += (alen + 3) & ~3;
    }
    o += (len + 3) & ~3;
  }
  return out;
}
