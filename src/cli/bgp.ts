// `vipmux bgp neighbor [ADDR] [adj-out|adj-in]`: the BGP peers (GoBGP's `neighbor`, BIRD's
// `show protocols all`): a table of peers, one peer in detail, or the prefixes sent to or
// received from one peer with their attributes. Read from the daemon's admin API.
import { Argument, type Command } from "commander";
import type {
  BgpAdjIn,
  BgpAdjOut,
  BgpNeighborDetail,
  BgpNeighbors,
  BgpRoute,
} from "../api/status.ts";
import { callDaemon, socketOption } from "./daemon.ts";
import { UsageError } from "./errors.ts";
import { formatTable, formatUptime } from "./table.ts";

export function formatNeighbors(v: BgpNeighbors): string {
  return formatTable(
    ["PEER", "AS", "STATE", "UPTIME", "SENT", "RCVD", "BFD", "LAST ERROR"],
    v.neighbors.map((n) => [
      n.name === n.address ? n.address : `${n.address} (${n.name})`,
      String(n.asn),
      n.state,
      formatUptime(n.uptimeSeconds === null ? null : n.uptimeSeconds * 1000),
      String(n.prefixesSent),
      String(n.prefixesReceived),
      n.bfd ?? "-",
      n.lastError,
    ]),
    ["left", "left", "left", "right", "right", "right", "left", "left"],
  ).join("\n");
}

const yesNo = (b: boolean) => (b ? "yes" : "no");
const list = (xs: readonly string[]) => (xs.length ? xs.join(", ") : "none");

export function formatNeighbor(n: BgpNeighborDetail): string {
  const neg = n.negotiated;
  const mp = n.maxPrefixes;
  const b = n.bfdSession;
  const rows: [string, string][] = [
    [
      "BGP state",
      `${n.state}${n.uptimeSeconds !== null ? `, up for ${formatUptime(n.uptimeSeconds * 1000)}` : ""}`,
    ],
    ["Local", `${n.local.address ?? "-"}, AS ${n.local.asn}, router id ${n.local.routerId}`],
    ["Remote", `port ${n.remote.port}, router id ${n.remote.routerId ?? "-"}`],
    [
      "Hold time",
      `${n.holdTime.negotiatedSec !== null ? `${n.holdTime.negotiatedSec} s negotiated, ` : ""}${n.holdTime.configuredSec} s configured${n.holdTime.keepaliveSec !== null ? `, keepalive ${n.holdTime.keepaliveSec} s` : ""}`,
    ],
    ["Families", neg ? list(neg.families) : `${list(n.config.families)} (configured)`],
    ["Capabilities sent", list(n.capabilities.advertised)],
    [
      "Capabilities received",
      n.capabilities.received ? list(n.capabilities.received) : "- (no OPEN yet)",
    ],
  ];
  if (neg)
    rows.push([
      "Negotiated",
      `4-octet AS ${yesNo(neg.fourOctetAs)}, route refresh ${yesNo(neg.routeRefresh)}, enhanced route refresh ${yesNo(neg.enhancedRouteRefresh)}, extended messages ${yesNo(neg.extendedMessages)}, extended next hop ${yesNo(neg.extendedNextHop)}, ADD-PATH ${list(neg.addPath)}`,
    ]);
  rows.push(
    [
      "Prefixes",
      `sent ${n.prefixesSent} (pending ${n.prefixesPending}), received ${n.prefixesReceived}`,
    ],
    [
      "Max prefixes",
      `${mp ? `${mp.limit} (warning at ${mp.warningPercent}%, restart after ${mp.restartAfterSeconds} s)` : "none"}${n.maxPrefixesTotal !== null ? `; all peers together ${n.maxPrefixesTotal}` : ""}`,
    ],
    [
      "Messages received",
      `${n.messages.received.total} (updates ${n.messages.received.updates}, notifications ${n.messages.received.notifications}, route refresh ${n.messages.received.routeRefresh})`,
    ],
    [
      "Messages sent",
      `${n.messages.sent.total} (updates ${n.messages.sent.updates}, notifications ${n.messages.sent.notifications})`,
    ],
    [
      "Updates received",
      `${n.updatesReceived.updates} (announced ${n.updatesReceived.announced}, withdrawn ${n.updatesReceived.withdrawn}, treat-as-withdraw ${n.updatesReceived.treatAsWithdraw}, attribute-discard ${n.updatesReceived.attributeDiscard}); End-of-RIB ${list(n.updatesReceived.endOfRib)}`,
    ],
    [
      "BFD",
      b
        ? `${b.state} (remote ${b.remoteState}, tx ${b.txIntervalMs} ms, detect ${b.detectTimeMs} ms, diag ${b.localDiag})`
        : "not configured",
    ],
    [
      "Config",
      `passive ${yesNo(n.config.passive)}, TCP-MD5 ${yesNo(n.config.md5)}, local address ${n.config.localAddress ?? "-"}, multihop TTL ${n.config.multihopTtl ?? "-"}, GTSM ${n.config.ttlSecurityHops ?? "off"}`,
    ],
    ["Send queue", `${n.sendQueueBytes} bytes`],
    ["Last error", n.lastError || "-"],
  );
  const w = Math.max(...rows.map(([k]) => k.length));
  return [
    `BGP neighbor ${n.address}${n.name !== n.address ? ` (${n.name})` : ""}, remote AS ${n.asn}`,
    ...rows.map(([k, v]) => `  ${`${k}:`.padEnd(w + 1)} ${v}`),
  ].join("\n");
}

function attributes(r: BgpRoute): string {
  const parts: string[] = [];
  if (r.med !== null) parts.push(`med ${r.med}`);
  if (r.localPref !== null) parts.push(`local-pref ${r.localPref}`);
  if (r.communities.length) parts.push(`communities ${r.communities.join(" ")}`);
  if (r.largeCommunities.length) parts.push(`large ${r.largeCommunities.join(" ")}`);
  if (r.extendedCommunities.length) parts.push(`extended ${r.extendedCommunities.join(" ")}`);
  parts.push(...r.other);
  return parts.join(", ");
}

export function formatAdjRib(v: BgpAdjOut | BgpAdjIn, table: "adj-out" | "adj-in"): string {
  const inbound = table === "adj-in";
  const routes = v.routes as (BgpRoute & { pending?: boolean; ageSeconds?: number })[];
  const lines = formatTable(
    ["PREFIX", "NEXT HOP", "AS PATH", "ORIGIN", ...(inbound ? ["AGE"] : []), "ATTRIBUTES"],
    routes.map((r) => [
      `${r.pending ? "*" : ""}${r.prefix}`,
      r.nextHop ?? "-",
      r.asPath || "-",
      r.origin ?? "-",
      ...(inbound ? [formatUptime((r.ageSeconds ?? 0) * 1000)] : []),
      attributes(r),
    ]),
  );
  const n = routes.length;
  lines.push(
    "",
    `${n} prefix${n === 1 ? "" : "es"} ${inbound ? "received from" : "sent to"} ${v.neighbor}`,
  );
  if (!inbound && routes.some((r) => r.pending))
    lines.push("* a change of this prefix waits for the next UPDATE");
  if ("issues" in v && v.issues.length)
    lines.push(
      `RFC 7606 outcomes (last ${v.issues.length}):`,
      ...v.issues.map(
        (i) =>
          `  ${formatUptime(i.ageSeconds * 1000)} ago: ${i.action}: ${i.reason} (${i.prefixes.join(" ")})`,
      ),
    );
  return lines.join("\n");
}

export function registerBgp(program: Command): void {
  const bgp = program.command("bgp").description("BGP sessions and what they carry");
  socketOption(
    bgp
      .command("neighbor")
      .description("BGP peers; one peer in detail; the prefixes sent to or received from it")
      .argument("[address]", "the peer's address (or its description)")
      .addArgument(
        new Argument("[table]", "adj-out: prefixes sent to it; adj-in: received from it").choices([
          "adj-out",
          "adj-in",
        ]),
      )
      .option("--json", "machine-readable output")
      .addHelpText(
        "after",
        `
Without ADDRESS: every peer with its state, uptime, prefixes sent and received, BFD state
and last error. With ADDRESS: that peer's session (hold time, capabilities, negotiated
families, max-prefixes, counters, BFD). With adj-out or adj-in: the prefixes with their
attributes (what the peer holds from this MUX, or what it sent; received routes are kept
for this query only, nothing is installed).

Examples:
  $ vipmux bgp neighbor
  $ vipmux bgp neighbor 192.0.2.1
  $ vipmux bgp neighbor 192.0.2.1 adj-out --json`,
      ),
  ).action(
    async (
      address: string | undefined,
      table: "adj-out" | "adj-in" | undefined,
      opts: { socket: string; json?: boolean },
    ) => {
      if (address === "adj-out" || address === "adj-in")
        throw new UsageError(`${address} needs a neighbor: vipmux bgp neighbor ADDRESS ${address}`);
      const print = (body: unknown, text: () => string) =>
        console.log(opts.json ? JSON.stringify(body, null, 2) : text());
      if (address === undefined) {
        const v = (await callDaemon(opts.socket, "GET", "/v1/bgp/neighbors")) as BgpNeighbors;
        return print(v, () => formatNeighbors(v));
      }
      const q = new URLSearchParams({ address });
      if (table === undefined) {
        const v = (await callDaemon(
          opts.socket,
          "GET",
          `/v1/bgp/neighbor?${q}`,
        )) as BgpNeighborDetail;
        return print(v, () => formatNeighbor(v));
      }
      const v = (await callDaemon(opts.socket, "GET", `/v1/bgp/neighbor/${table}?${q}`)) as
        | BgpAdjOut
        | BgpAdjIn;
      return print(v, () => formatAdjRib(v, table));
    },
  );
}
