// Conntrack through ctnetlink (nfnetlink subsystem 1) on the `netlink` package's raw
// socket: dump the table, pick the entries whose original destination is an endpoint that
// no longer exists, delete exactly those by their original tuple. No `conntrack` binary
// needed, and never a flush of everything.
import { isIPv6 } from "node:net";
import nl from "netlink";
import { formatIp } from "../packet/address.ts";
import type { Endpoint } from "./plan.ts";

const NETLINK_NETFILTER = 12;
const NFNL_SUBSYS_CTNETLINK = 1;
const IPCTNL_MSG_CT_GET = 1;
const IPCTNL_MSG_CT_DELETE = 2;
const NLM_F_DUMP = 0x300;
const NLA_TYPE_MASK = 0x3fff;
// linux/netfilter/nfnetlink_conntrack.h
const CTA_TUPLE_ORIG = 1;
const CTA_ZONE = 18;
const CTA_TUPLE_IP = 1;
const CTA_TUPLE_PROTO = 2;
const CTA_IP_V4_SRC = 1;
const CTA_IP_V4_DST = 2;
const CTA_IP_V6_SRC = 3;
const CTA_IP_V6_DST = 4;
const CTA_PROTO_NUM = 1;
const CTA_PROTO_SRC_PORT = 2;
const CTA_PROTO_DST_PORT = 3;
const AF_INET = 2;
const AF_INET6 = 10;
const PROTO = { tcp: 6, udp: 17 } as const;

/** One conntrack entry's original tuple, with the raw attributes needed to delete it. */
export interface ConntrackEntry {
  family: number;
  proto: number;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  /** CTA_TUPLE_ORIG (and CTA_ZONE when present) exactly as the kernel sent them. */
  key: Buffer;
}

interface Attr {
  type: number;
  data: Buffer;
  raw: Buffer;
}

/** Netlink attributes of `b` (type without the nested/byte-order flags). */
export function parseAttrs(b: Buffer): Attr[] {
  const out: Attr[] = [];
  let o = 0;
  while (o + 4 <= b.length) {
    const len = b.readUInt16LE(o);
    if (len < 4 || o + len > b.length) break;
    out.push({
      type: b.readUInt16LE(o + 2) & NLA_TYPE_MASK,
      data: b.subarray(o + 4, o + len),
      raw: b.subarray(o, o + ((len + 3) & ~3)),
    });
    o += (len + 3) & ~3;
  }
  return out;
}

/** Parses one IPCTNL_MSG_CT_NEW payload (nfgenmsg + attributes); undefined if incomplete. */
export function parseConntrackMessage(payload: Buffer): ConntrackEntry | undefined {
  if (payload.length < 4) return undefined;
  const family = payload[0]!;
  const attrs = parseAttrs(payload.subarray(4));
  const orig = attrs.find((a) => a.type === CTA_TUPLE_ORIG);
  if (!orig) return undefined;
  const zone = attrs.find((a) => a.type === CTA_ZONE);
  const tuple = parseAttrs(orig.data);
  const ipAttrs = parseAttrs(tuple.find((a) => a.type === CTA_TUPLE_IP)?.data ?? Buffer.alloc(0));
  const protoAttrs = parseAttrs(
    tuple.find((a) => a.type === CTA_TUPLE_PROTO)?.data ?? Buffer.alloc(0),
  );
  const get = (list: Attr[], t: number) => list.find((a) => a.type === t)?.data;
  const src = get(ipAttrs, family === AF_INET6 ? CTA_IP_V6_SRC : CTA_IP_V4_SRC);
  const dst = get(ipAttrs, family === AF_INET6 ? CTA_IP_V6_DST : CTA_IP_V4_DST);
  const proto = get(protoAttrs, CTA_PROTO_NUM);
  if (!src || !dst || !proto) return undefined;
  const sport = get(protoAttrs, CTA_PROTO_SRC_PORT);
  const dport = get(protoAttrs, CTA_PROTO_DST_PORT);
  return {
    family,
    proto: proto[0]!,
    src: formatIp(src),
    dst: formatIp(dst),
    sport: sport && sport.length >= 2 ? sport.readUInt16BE(0) : 0,
    dport: dport && dport.length >= 2 ? dport.readUInt16BE(0) : 0,
    key: Buffer.concat(zone ? [orig.raw, zone.raw] : [orig.raw]),
  };
}

/** Whether an entry's original destination is one of `endpoints`. */
export function matchesEndpoint(e: ConntrackEntry, endpoints: readonly Endpoint[]): boolean {
  return endpoints.some(
    (p) =>
      PROTO[p.protocol] === e.proto &&
      sameAddress(p.vip, e.dst) &&
      e.dport >= p.first &&
      e.dport <= p.last,
  );
}

function sameAddress(a: string, b: string): boolean {
  if (isIPv6(a) !== isIPv6(b)) return false;
  return formatIpText(a) === formatIpText(b);
}

/** Canonical text of an address (so 2001:db8:f:0::100 equals 2001:db8:f::100). */
function formatIpText(a: string): string {
  if (!isIPv6(a)) return a;
  const u = new URL(`http://[${a}]/`).hostname;
  return u.slice(1, -1);
}

const nfgen = (family: number) => Buffer.from([family, 0, 0, 0]);

/** A ctnetlink socket in the current network namespace. */
export class Conntrack {
  private readonly sock = nl.createNetlink(NETLINK_NETFILTER);

  async list(family: number): Promise<ConntrackEntry[]> {
    const [msgs] = await this.sock.request(
      (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET,
      nfgen(family),
      { flags: NLM_F_DUMP, timeout: 10_000 },
    );
    const out: ConntrackEntry[] = [];
    for (const m of msgs) {
      const e = parseConntrackMessage(m.data);
      if (e) out.push(e);
    }
    return out;
  }

  /** Deletes the entries of `endpoints`; returns how many went. */
  async flush(endpoints: readonly Endpoint[]): Promise<number> {
    let n = 0;
    const families = new Set(endpoints.map((p) => (isIPv6(p.vip) ? AF_INET6 : AF_INET)));
    for (const family of families) {
      for (const e of await this.list(family)) {
        if (!matchesEndpoint(e, endpoints)) continue;
        try {
          await this.sock.request(
            (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE,
            [nfgen(e.family), e.key],
            { timeout: 5_000 },
          );
          n++;
        } catch (err) {
          // ENOENT: the entry timed out between the dump and the delete.
          if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
        }
      }
    }
    return n;
  }

  close(): void {
    this.sock.close();
  }
}

export const CONNTRACK_FAMILY = { v4: AF_INET, v6: AF_INET6 } as const;
