// The admin API's BGP views (`vipmux bgp neighbor ...`): peers, one peer in detail, and
// what a peer holds from us (Adj-RIB-Out) or sent us (Adj-RIB-In), read from the speaker
// and turned into the plain JSON of src/api/status.ts.
import type { PeerStats } from "../bfd/manager.ts";
import { formatCommunity } from "../bgp/policy.ts";
import type { PeerDetail, PeerStatus, Speaker } from "../bgp/speaker.ts";
import {
  ATTRIBUTES,
  attributeName,
  type Capability,
  formatAsPath,
  formatCapability,
  formatIpv4,
  formatIpv6,
  type PathAttributes,
} from "../bgp/wire/index.ts";
import { parseIpv6 } from "../util/ip.ts";
import type { AdminResponse } from "./admin.ts";
import type {
  BgpAdjIn,
  BgpAdjOut,
  BgpNeighborDetail,
  BgpNeighborSummary,
  BgpNeighbors,
  BgpRoute,
} from "./status.ts";

const FAMILY: Record<string, string> = { "1/1": "ipv4-unicast", "2/1": "ipv6-unicast" };
const family = (afi: number, safi: number) => FAMILY[`${afi}/${safi}`] ?? `afi ${afi}/safi ${safi}`;
const ORIGIN = ["igp", "egp", "incomplete"] as const;
const seconds = (ms: number) => Math.round(ms / 1000);

function summary(p: PeerStatus, bfd: readonly PeerStats[]): BgpNeighborSummary {
  return {
    name: p.name,
    address: p.address,
    asn: p.asn,
    state: p.state,
    uptimeSeconds: p.establishedForMs === null ? null : seconds(p.establishedForMs),
    prefixesSent: p.prefixesSent,
    prefixesPending: p.prefixesPending,
    prefixesReceived: p.prefixesReceived,
    bfd: bfd.find((b) => b.peer === p.address)?.state ?? null,
    lastError: p.lastError,
  };
}

export function bgpNeighbors(speaker: Speaker, bfd: readonly PeerStats[]): BgpNeighbors {
  return { neighbors: speaker.peers().map((p) => summary(p, bfd)) };
}

/** The peer's address as the speaker keys it: by address (any IPv6 spelling) or by name. */
function findPeer(speaker: Speaker, which: string | null): string | AdminResponse {
  if (!which) return { status: 400, body: { error: "expected ?address=ADDR (address or name)" } };
  const canon = (a: string) => {
    const v6 = a.includes(":") ? parseIpv6(a) : undefined;
    return v6 ? formatIpv6(v6) : a;
  };
  const peers = speaker.peers();
  const found =
    peers.find((p) => canon(p.address) === canon(which)) ?? peers.find((p) => p.name === which);
  return found ? found.address : { status: 404, body: { error: `no BGP neighbor "${which}"` } };
}

function capability(c: Capability): string {
  return c.kind === "multiprotocol"
    ? `multiprotocol(${family(c.afi, c.safi)})`
    : formatCapability(c);
}

function detail(speaker: Speaker, d: PeerDetail, bfd: readonly PeerStats[]): BgpNeighborDetail {
  const s = d.session;
  const n = s?.info.negotiated;
  const c = d.status.counters;
  const r = d.received.counters;
  const o = d.options;
  return {
    ...summary(d.status, bfd),
    local: {
      asn: speaker.options.asn,
      routerId: speaker.options.routerId,
      address: s?.info.localAddress ?? null,
    },
    remote: { port: o.port ?? 179, routerId: s ? formatIpv4(s.info.peerOpen.bgpId) : null },
    config: {
      passive: o.passive ?? false,
      localAddress: o.localAddress ?? null,
      connectRetryMs: o.connectRetryMs ?? null,
      multihopTtl: o.multihopTtl ?? null,
      ttlSecurityHops: o.gtsmHops ?? null,
      md5: o.md5,
      families: [...(o.families ?? ["ipv4", "ipv6"])],
    },
    holdTime: {
      configuredSec: d.holdTimeSec,
      negotiatedSec: n?.holdTime ?? null,
      keepaliveSec: s?.keepaliveSec ?? null,
    },
    capabilities: {
      advertised: d.localCapabilities.map(capability),
      received: s ? s.info.peerOpen.capabilities.map(capability) : null,
    },
    negotiated: n
      ? {
          families: n.families.map((f) => family(f.afi, f.safi)),
          fourOctetAs: n.tx.as4,
          routeRefresh: n.routeRefresh,
          enhancedRouteRefresh: n.enhancedRouteRefresh,
          extendedMessages: n.tx.maxMessageLength > 4096,
          extendedNextHop: n.tx.extendedNextHop,
          addPath: (["ipv4", "ipv6"] as const)
            .filter((f) => n.tx.addPath[f] || n.rx.addPath[f])
            .map((f) => `${f}-unicast`),
        }
      : null,
    maxPrefixes: d.maxPrefixes
      ? {
          limit: d.maxPrefixes.limit,
          warningPercent: d.maxPrefixes.warningPercent,
          restartAfterSeconds: d.maxPrefixes.restartAfterMs / 1000,
        }
      : null,
    maxPrefixesTotal: speaker.options.maxPrefixesTotal ?? null,
    messages: {
      received: {
        total: c.messagesIn,
        updates: c.updatesIn,
        notifications: c.notificationsIn,
        routeRefresh: c.routeRefreshIn,
      },
      sent: { total: c.messagesOut, updates: c.updatesOut, notifications: c.notificationsOut },
    },
    updatesReceived: {
      updates: r.updates,
      announced: r.announced,
      withdrawn: r.withdrawn,
      treatAsWithdraw: r.treatAsWithdraw,
      attributeDiscard: r.attributeDiscard,
      endOfRib: d.received.endOfRib.map((f) => `${f}-unicast`),
    },
    sendQueueBytes: d.status.sendQueueBytes,
    bfdSession: bfd.find((b) => b.peer === d.status.address) ?? null,
  };
}

export function bgpNeighbor(
  speaker: Speaker,
  bfd: readonly PeerStats[],
  which: string | null,
): AdminResponse {
  const address = findPeer(speaker, which);
  if (typeof address !== "string") return address;
  return { status: 200, body: detail(speaker, speaker.peerDetail(address), bfd) };
}

/** Attributes shown in their own fields; the others go to `other` as `NAME: value`. */
const OWN_FIELDS = new Set([
  "ORIGIN",
  "AS_PATH",
  "NEXT_HOP",
  "MULTI_EXIT_DISC",
  "LOCAL_PREF",
  "COMMUNITIES",
  "EXTENDED_COMMUNITIES",
  "LARGE_COMMUNITY",
  "MP_REACH_NLRI",
  "MP_UNREACH_NLRI",
]);

/** A route's attributes in plain text; `nextHop6` for IPv6 routes we send. */
export function routeView(prefix: string, a: PathAttributes, nextHop6?: Uint8Array): BgpRoute {
  const mp = a.mpReach?.nextHop;
  const nextHop = nextHop6
    ? formatIpv6(nextHop6)
    : prefix.includes(":") && mp
      ? mp.length === 4
        ? formatIpv4(new DataView(mp.buffer, mp.byteOffset, 4).getUint32(0))
        : formatIpv6(mp)
      : a.nextHop !== undefined
        ? formatIpv4(a.nextHop)
        : null;
  const other: string[] = [];
  for (const d of ATTRIBUTES) {
    if (!d || OWN_FIELDS.has(d.name)) continue;
    const text = d.format(a);
    if (text !== undefined) other.push(`${d.name}: ${text}`);
  }
  for (const u of a.unknown ?? [])
    other.push(
      `${attributeName(u.code)}: flags 0x${u.flags.toString(16)} ${Buffer.from(u.value).toString("hex")}`,
    );
  return {
    prefix,
    nextHop,
    asPath: a.asPath ? formatAsPath(a.asPath) : "",
    origin: a.origin === undefined ? null : (ORIGIN[a.origin] ?? null),
    med: a.med ?? null,
    localPref: a.localPref ?? null,
    communities: (a.communities ?? []).map(formatCommunity),
    largeCommunities: (a.largeCommunities ?? []).map((l) => l.join(":")),
    extendedCommunities: (a.extendedCommunities ?? []).map((c) => c.toString(16).padStart(16, "0")),
    other,
  };
}

export function bgpAdjOut(speaker: Speaker, which: string | null): AdminResponse {
  const address = findPeer(speaker, which);
  if (typeof address !== "string") return address;
  const routes = speaker
    .adjRibOutRoutes(address)
    .map((r) => ({
      ...(r.route ? routeView(r.prefix, r.route.attrs, r.route.nextHop6) : routeView(r.prefix, {})),
      pending: r.pending || r.route === null,
    }))
    .sort(byPrefix);
  const body: BgpAdjOut = { neighbor: address, routes };
  return { status: 200, body };
}

export function bgpAdjIn(speaker: Speaker, which: string | null): AdminResponse {
  const address = findPeer(speaker, which);
  if (typeof address !== "string") return address;
  // The speaker stamps routes with performance.now().
  const nowMs = performance.now();
  const routes = speaker
    .adjRibIn(address)
    .map((r) => ({
      ...routeView(r.prefix, r.attrs),
      ageSeconds: seconds(nowMs - r.receivedAtMs),
    }))
    .sort(byPrefix);
  const issues = speaker.adjRibInIssues(address).map((i) => ({
    action: i.action,
    reason: i.reason,
    prefixes: [...i.prefixes],
    ageSeconds: seconds(nowMs - i.atMs),
  }));
  const body: BgpAdjIn = { neighbor: address, routes, issues };
  return { status: 200, body };
}

/** IPv4 before IPv6, then by address and length, as routers list them. */
function byPrefix(a: { prefix: string }, b: { prefix: string }): number {
  const key = (p: string) => {
    const [addr = "", len = "0"] = p.split("/");
    const v6 = addr.includes(":");
    const bytes = v6
      ? (parseIpv6(addr) ?? new Uint8Array(16))
      : new Uint8Array(addr.split(".").map(Number));
    return { v6, bytes, len: Number(len) };
  };
  const x = key(a.prefix);
  const y = key(b.prefix);
  if (x.v6 !== y.v6) return x.v6 ? 1 : -1;
  for (let i = 0; i < x.bytes.length; i++)
    if (x.bytes[i] !== y.bytes[i]) return (x.bytes[i] ?? 0) - (y.bytes[i] ?? 0);
  return x.len - y.len;
}
