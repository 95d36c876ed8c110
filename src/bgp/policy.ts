// Per-peer export policy: which announced prefixes a peer gets and with which attributes
// (MED, AS-path prepend, communities, large communities, next hop self or explicit). Pure.

import type { LargeCommunity, PathAttributes } from "./wire/attributes.ts";
import {
  Afi,
  AsPathSegmentType,
  Origin,
  type OriginCode,
  WellKnownCommunity,
} from "./wire/constants.ts";
import { type Prefix, parseIpv4, parseIpv6, parsePrefix } from "./wire/prefix.ts";

/** Attributes the caller gives with `announce` (all optional). */
export interface RouteAttributes {
  readonly origin?: "igp" | "egp" | "incomplete";
  readonly med?: number;
  /** Extra copies of the local AS (traffic engineering for this route only). */
  readonly prepend?: number;
  /** "65000:100", a well-known name ("graceful-shutdown", "no-export", ...) or a uint32. */
  readonly communities?: readonly (string | number)[];
  /** "65000:1:2" or a triple. */
  readonly largeCommunities?: readonly (string | LargeCommunity)[];
  /** Explicit next hop for this route (IPv4 for IPv4 prefixes, IPv6 for IPv6 ones). */
  readonly nextHop?: string;
}

/** FRR prefix-list semantics: exact match without ge/le; ge alone means ge..max. */
export interface PrefixRange {
  readonly prefix: string;
  readonly ge?: number;
  readonly le?: number;
}

export interface ExportPolicy {
  /** When given, only prefixes inside one of these ranges are exported. */
  readonly allow?: readonly PrefixRange[];
  /** Prefixes inside one of these ranges are never exported (checked first). */
  readonly deny?: readonly PrefixRange[];
  /** Overrides the route's MED. */
  readonly med?: number;
  /** Extra copies of the local AS on everything sent to this peer. */
  readonly prepend?: number;
  /** Added to the route's communities. */
  readonly communities?: readonly (string | number)[];
  readonly largeCommunities?: readonly (string | LargeCommunity)[];
  /** IPv4 next hop: "self" (the session's local address, the default) or an address. */
  readonly nextHop?: string;
  /** IPv6 next hop for IPv6 prefixes: overrides the speaker's `nextHop6`. */
  readonly nextHop6?: string;
}

const WELL_KNOWN: Readonly<Record<string, number>> = {
  "graceful-shutdown": WellKnownCommunity.GracefulShutdown,
  "no-export": WellKnownCommunity.NoExport,
  "no-advertise": WellKnownCommunity.NoAdvertise,
  "no-export-subconfed": WellKnownCommunity.NoExportSubconfed,
  "no-peer": WellKnownCommunity.NoPeer,
};

export function parseCommunity(c: string | number): number {
  if (typeof c === "number") {
    if (!Number.isInteger(c) || c < 0 || c > 0xffffffff) throw new TypeError(`community ${c}`);
    return c >>> 0;
  }
  const known = WELL_KNOWN[c];
  if (known !== undefined) return known;
  const m = /^(\d{1,5}):(\d{1,5})$/.exec(c);
  const hi = Number(m?.[1]);
  const lo = Number(m?.[2]);
  if (!m || hi > 0xffff || lo > 0xffff) throw new TypeError(`community "${c}": expected ASN:value`);
  return ((hi << 16) | lo) >>> 0;
}

export function parseLargeCommunity(c: string | LargeCommunity): LargeCommunity {
  const parts =
    typeof c === "string" ? c.split(":").map((x) => (/^\d+$/.test(x) ? Number(x) : NaN)) : [...c];
  if (parts.length !== 3 || parts.some((x) => !Number.isInteger(x) || x < 0 || x > 0xffffffff)) {
    throw new TypeError(`large community "${String(c)}": expected A:B:C of 32-bit numbers`);
  }
  return [parts[0]!, parts[1]!, parts[2]!];
}

export const formatCommunity = (c: number): string => `${c >>> 16}:${c & 0xffff}`;

/** Does `p` fall in `range` (FRR `ip prefix-list` rules)? */
export function inRange(p: Prefix, range: PrefixRange): boolean {
  const r = parsePrefix(range.prefix);
  if (!r || r.afi !== p.afi || p.len < r.len) return false;
  const max = p.afi === Afi.Ipv4 ? 32 : 128;
  const lo = range.ge ?? r.len;
  const hi = range.le ?? (range.ge !== undefined ? max : r.len);
  if (p.len < lo || p.len > hi) return false;
  if (p.afi === Afi.Ipv4) {
    const mask = r.len === 0 ? 0 : (0xffffffff << (32 - r.len)) >>> 0;
    return ((p.addr as number) & mask) >>> 0 === (r.addr as number);
  }
  const a = p.addr as Uint8Array;
  const b = r.addr as Uint8Array;
  for (let bit = 0; bit < r.len; bit += 8) {
    const i = bit >> 3;
    const n = Math.min(8, r.len - bit);
    const mask = (0xff << (8 - n)) & 0xff;
    if (((a[i] ?? 0) & mask) !== ((b[i] ?? 0) & mask)) return false;
  }
  return true;
}

export function exportsPrefix(policy: ExportPolicy, p: Prefix): boolean {
  if (policy.deny?.some((r) => inRange(p, r))) return false;
  if (policy.allow && !policy.allow.some((r) => inRange(p, r))) return false;
  return true;
}

/** What the session knows that export needs. */
export interface ExportContext {
  readonly localAs: number;
  /** The session's local address (IPv4 or IPv6 text, IPv4-mapped already unwrapped). */
  readonly localAddress: string;
  /** The speaker's IPv4 next hop for IPv4 prefixes over an IPv6 session. */
  readonly nextHop4?: string | undefined;
  /** The MUX's IPv6 next hop: IPv6 prefixes over an IPv4 session carry it. */
  readonly nextHop6?: string | undefined;
  /** Set while draining (RFC 8326): add GRACEFUL_SHUTDOWN and this many prepends. */
  readonly drain?: { readonly prepend: number } | undefined;
}

/** Exported attributes (everything but the NLRI): the unit of UPDATE packing. */
export interface ExportedRoute {
  readonly afi: 1 | 2;
  readonly attrs: PathAttributes;
  /** 16-octet IPv6 next hop for IPv6 prefixes. */
  readonly nextHop6?: Uint8Array;
  /** Canonical text of everything above: equal keys pack into the same UPDATEs. */
  readonly key: string;
}

const ORIGIN = { igp: Origin.Igp, egp: Origin.Egp, incomplete: Origin.Incomplete } as const;

/**
 * The attributes of a route as sent to one peer, or a string saying why it cannot be sent
 * (for instance an IPv6 prefix when no IPv6 next hop is known).
 */
export function exportRoute(
  ctx: ExportContext,
  policy: ExportPolicy,
  route: RouteAttributes,
  afi: 1 | 2,
): ExportedRoute | string {
  const copies = 1 + (route.prepend ?? 0) + (policy.prepend ?? 0) + (ctx.drain?.prepend ?? 0);
  const communities = new Set<number>();
  for (const c of route.communities ?? []) communities.add(parseCommunity(c));
  for (const c of policy.communities ?? []) communities.add(parseCommunity(c));
  if (ctx.drain) communities.add(WellKnownCommunity.GracefulShutdown); // RFC 8326 §4
  const large = new Map<string, LargeCommunity>();
  for (const c of [...(route.largeCommunities ?? []), ...(policy.largeCommunities ?? [])]) {
    const l = parseLargeCommunity(c);
    large.set(l.join(":"), l);
  }
  const med = policy.med ?? route.med;
  const attrs: {
    origin: (typeof ORIGIN)[keyof typeof ORIGIN];
    asPath: PathAttributes["asPath"];
    nextHop?: number;
    med?: number;
    communities?: number[];
    largeCommunities?: LargeCommunity[];
  } = {
    origin: ORIGIN[route.origin ?? "igp"],
    asPath: [
      { type: AsPathSegmentType.AsSequence, asns: new Array<number>(copies).fill(ctx.localAs) },
    ],
  };
  if (med !== undefined) attrs.med = med >>> 0;
  if (communities.size > 0) attrs.communities = [...communities].sort((a, b) => a - b);
  if (large.size > 0)
    attrs.largeCommunities = [...large.values()].sort((a, b) =>
      a.join(":").localeCompare(b.join(":")),
    );

  let nextHop6: Uint8Array | undefined;
  if (afi === Afi.Ipv4) {
    const explicit = [policy.nextHop, route.nextHop].find((x) => x !== undefined && x !== "self");
    const text = explicit ?? (ctx.localAddress.includes(":") ? ctx.nextHop4 : ctx.localAddress);
    const nh = text === undefined ? undefined : parseIpv4(text);
    if (nh === undefined) return `no IPv4 next hop for this session (${text ?? "none"})`;
    attrs.nextHop = nh;
  } else {
    const local =
      ctx.localAddress.includes(":") && !ctx.localAddress.toLowerCase().startsWith("fe80")
        ? ctx.localAddress
        : undefined;
    const text = policy.nextHop6 ?? route.nextHop ?? ctx.nextHop6 ?? local;
    nextHop6 = text === undefined ? undefined : parseIpv6(text);
    if (nextHop6 === undefined) return `no IPv6 next hop for this session (${text ?? "none"})`;
  }
  const key = `${afi}|${attrs.origin}|${copies}|${attrs.med ?? ""}|${attrs.nextHop ?? ""}|${
    nextHop6 ? Buffer.from(nextHop6).toString("hex") : ""
  }|${attrs.communities?.join(",") ?? ""}|${attrs.largeCommunities?.map((l) => l.join(":")).join(",") ?? ""}`;
  return { afi, attrs, ...(nextHop6 ? { nextHop6 } : {}), key };
}

/**
 * The route an export key stands for (the inverse of the key `exportRoute` builds), or
 * undefined for text that is not such a key. What a peer holds is kept as these keys
 * (adj-rib-out.ts), so this is how a query reads the attributes a peer was sent.
 */
export function exportedRouteOfKey(key: string, localAs: number): ExportedRoute | undefined {
  const f = key.split("|");
  if (f.length !== 8) return undefined;
  const [afi, origin, copies, med, nextHop, nextHop6, communities, large] = f as [
    string,
    string,
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  if (afi !== "1" && afi !== "2") return undefined;
  const attrs: PathAttributes = {
    origin: Number(origin) as OriginCode,
    asPath: [
      { type: AsPathSegmentType.AsSequence, asns: new Array<number>(Number(copies)).fill(localAs) },
    ],
    ...(med !== "" ? { med: Number(med) } : {}),
    ...(nextHop !== "" ? { nextHop: Number(nextHop) } : {}),
    ...(communities !== "" ? { communities: communities.split(",").map(Number) } : {}),
    ...(large !== ""
      ? {
          largeCommunities: large.split(",").map((l) => {
            const [a, b, c] = l.split(":").map(Number);
            return [a!, b!, c!] as const;
          }),
        }
      : {}),
  };
  return {
    afi: afi === "1" ? 1 : 2,
    attrs,
    ...(nextHop6 !== "" ? { nextHop6: new Uint8Array(Buffer.from(nextHop6, "hex")) } : {}),
    key,
  };
}
