// The forwarder: one inbound packet (a raw IPv4/IPv6 packet to a VIP, as a TUN device or
// an XDP/AF_PACKET engine hands it over) in, one VXLAN-encapsulated packet to the
// backend's host out, or a counted drop. Pure and synchronous: time is passed in, the only
// state is the connection table and counters, and the per-packet path allocates nothing.
//
//   const verdict = fwd.forward(buf, len, nowMs);
//   if (verdict === Verdict.forward) send(fwd.out, fwd.outLength, fwd.outHost);
//   else metrics.drop(VERDICT_NAMES[verdict]);
//
// One decision function, `decide`, says where a packet goes. `forward` runs it committing
// (connection-table entries created, refreshed and moved; counters counted) and then
// encapsulates; `lookup` (`vipmux flow`) runs the same function read-only and describes
// its result. So the answer `vipmux flow` gives is the datapath's own.
//
// Backend choice, per packet (the steps of `decide`):
// 1. TCP/UDP flows (not fragments) look up the connection table. A hit on an up or
//    draining backend stays there (draining keeps its flows); a hit on a down or removed
//    backend is re-hashed through Maglev and the entry updated (failed backends' flows move).
//    A bare SYN on a known 5-tuple is a new connection: Maglev decides, as for a new flow.
// 2. Otherwise the Maglev table of the service picks by flow hash. Any packet without an
//    entry is forwarded this way, SYN or not (a flow from another MUX after an ECMP
//    rehash must keep working). Only what could open a flow gets an (untrusted) entry: a
//    TCP bare SYN, or a UDP datagram. A TCP packet of a flow this MUX never saw open stays
//    untracked (`connNoHandshake`): two spoofed ACKs must not buy a 900 s entry
//    (docs/security.md#connection-table-trust). When the table has no room the packet is
//    still forwarded by the hash and `connFallback` counts it.
// 3. ICMP errors follow the entry of the flow they quote (lookup only, no refresh).
//
// The inner packet is forwarded as a router would: TTL / hop limit decremented (IPv4
// checksum patched per RFC 1624), dropped when it would reach 0 (RFC 1812 §5.3.1). The
// MUX does not generate ICMP Time Exceeded; the drop is counted.

import {
  ConnectionTable,
  type ConnTableOptions,
  FlowKind,
  FlowState,
  InsertFailure,
} from "../lb/conn-table.ts";
import { Distribution, FLOW_KEY_WORDS, flowHash, writeFlowKey } from "../lb/flow-hash.ts";
import {
  BackendStateCode,
  type ForwardingTable,
  type ServiceEntry,
} from "../lb/forwarding-table.ts";
import { formatIp, parseIp, parseMac } from "../packet/address.ts";
import { IcmpType, Icmpv6Type, IpProto, TcpFlag, VXLAN_PORT } from "../packet/constants.ts";
import { ParsedPacket, ParseStatus, parseIpPacket } from "../packet/parse.ts";
import {
  encapsulateVxlan,
  VXLAN_OVERHEAD_V6,
  VxlanEncap,
  vxlanSourcePort,
} from "../packet/vxlan.ts";
import { err, ok, type Result } from "../util/result.ts";

/** The hosts' VXLAN device MAC (host agent `inner-mac` default): see `innerDstMac`. */
export const DEFAULT_INNER_DST_MAC = "02:76:6d:78:00:01";

/** `forward` returns 0 (forward) or a drop reason. Reasons 1-7 are the parser's (ParseStatus). */
export const Verdict = {
  forward: 0,
  truncated: 1,
  badVersion: 2,
  badHeaderLength: 3,
  badLength: 4,
  badChecksum: 5,
  badExtensionHeader: 6,
  badIcmpError: 7,
  /** TTL / hop limit would reach 0. */
  ttlExhausted: 8,
  /** No service on this VIP, protocol and port. */
  noService: 9,
  /** The service has no backend up (and the flow has no live entry). */
  noBackend: 10,
  /** An ICMP type the MUX does not forward (echo reply, redirect, router advertisement...). */
  icmpUnsupported: 11,
  /** The encapsulated packet would not fit the output buffer (or 65535 bytes). */
  tooBig: 12,
  /** No forwarding table installed yet. */
  noTable: 13,
} as const;
export type Verdict = (typeof Verdict)[keyof typeof Verdict];

/** Drop reason names indexed by Verdict code (index 0 is "forward"); for metrics labels. */
export const VERDICT_NAMES: readonly string[] = Object.entries(Verdict)
  .sort((a, b) => a[1] - b[1])
  .map(([name]) => name);

export interface ForwarderOptions {
  /** The MUX's underlay addresses: VXLAN outer source for IPv4 / IPv6 hosts. */
  readonly localV4?: string;
  readonly localV6?: string;
  /**
   * Inner Ethernet destination used only with `perDipMac: false`: the hosts' VXLAN device
   * MAC (`host.inner-mac`), for hosts whose agent predates per-DIP MACs (the host then
   * picks among its DIPs itself). Default `02:76:6d:78:00:01`.
   */
  readonly innerDstMac?: string;
  /**
   * Inner Ethernet destination = `dipMac(chosen DIP)` (default true): the host agent maps
   * it back to that DIP, so the MUX's choice (weights, drain) holds end to end.
   */
  readonly perDipMac?: boolean;
  /** Inner Ethernet source: the MUX's MAC on the overlay. */
  readonly innerSrcMac: string;
  readonly vxlanPort?: number;
  /** Outer TTL / hop limit (default 64). */
  readonly outerTtl?: number;
  /** Largest inner packet accepted (default 9000: jumbo underlay); sizes the output buffer. */
  readonly maxPacket?: number;
  /** Compute the outer UDP checksum on IPv4 too (default false: 0, RFC 7348 §5). IPv6 always has one. */
  readonly outerUdpChecksumV4?: boolean;
  /** Decrement the inner TTL / hop limit like a router (default true). */
  readonly decrementTtl?: boolean;
  readonly conn?: ConnTableOptions;
  /**
   * Second chance (docs/dataplane.md#second-chance): for this long after a table change,
   * a flow without an entry whose earlier owner differs from today's choice carries that
   * owner's DIP MAC as inner Ethernet source, so a host that does not know the flow hands
   * it to the host that does. 0: off (the default here; `vipmux run` turns it on).
   */
  readonly secondChanceMs?: number;
}

/** How `decide` chose the backend (`FlowLookup.via` names them). */
export const Via = {
  /** Not chosen: the packet is dropped before a backend is picked. */
  none: 0,
  /** No live entry (a new flow, or one the table does not track): Maglev's choice. */
  maglev: 1,
  /** The flow's connection-table entry; its backend is up or draining. */
  entry: 2,
  /** The entry's backend is down or gone: Maglev's choice, the entry moves there. */
  rehash: 3,
  /** A bare SYN on a known 5-tuple, i.e. a new connection reusing the ports: Maglev's choice. */
  newConnection: 4,
} as const;
export type Via = (typeof Via)[keyof typeof Via];

/**
 * What `decide` found for one packet, written in place (small integers only, so a
 * decision per packet allocates nothing). Fields not reached by the decision keep their
 * reset value (-1, 0 or Via.none).
 */
export class Decision {
  /** The packet as parsed (for an ICMP error, the flow tuple is the quoted packet's, reversed). */
  readonly packet = new ParsedPacket();
  verdict: Verdict = Verdict.forward;
  /** The port the service was looked up with (0: ICMP echo, fragments, other protocols). */
  servicePort = 0;
  serviceId = -1;
  /** 30-bit flow hash: Maglev slot, connection-table key, VXLAN source port. */
  hash = -1;
  /** 1 when the flow uses the connection table (TCP/UDP, not a fragment). */
  tracked = 0;
  /** Slot of the flow's live connection-table entry, or -1. */
  slot = -1;
  /** The entry's backend as found (before any move), and that backend's BackendStateCode. */
  entryBackendId = -1;
  entryBackendState: number = BackendStateCode.absent;
  /** Maglev's choice for this flow hash: where a new flow goes (-1: no backend up). */
  maglevBackendId = -1;
  via: Via = Via.none;
  /** The backend the packet goes to (-1: none). */
  backendId = -1;
  /** Second chance: the flow's earlier owner, named to the host (-1: none). */
  hintBackendId = -1;

  /** Records the verdict and returns it. */
  finish(v: Verdict): Verdict {
    this.verdict = v;
    return v;
  }

  reset(): void {
    this.verdict = Verdict.forward;
    this.servicePort = 0;
    this.serviceId = -1;
    this.hash = -1;
    this.tracked = 0;
    this.slot = -1;
    this.entryBackendId = -1;
    this.entryBackendState = BackendStateCode.absent;
    this.maglevBackendId = -1;
    this.via = Via.none;
    this.backendId = -1;
    this.hintBackendId = -1;
  }
}

export class Forwarder {
  /**
   * Output buffer: after Verdict.forward holds `outLength` bytes starting with the outer IP
   * header. Engines may point it at their own memory (a slot of a send batch) with
   * `setOutput`, saving a copy per packet.
   */
  out: Uint8Array;
  outLength = 0;
  /** Outer destination (host PA, 4 or 16 bytes) of the last forwarded packet. */
  outHost: Uint8Array = new Uint8Array(4);
  /** The decision `forward` made for the last packet (lookup() has its own). */
  readonly decision = new Decision();

  readonly conn: ConnectionTable;
  /** Packets per Verdict (index 0 counts forwarded packets). */
  readonly verdicts: Float64Array = new Float64Array(VERDICT_NAMES.length);
  /** Per service id and per backend id: packets and inner bytes forwarded. */
  servicePackets: Float64Array = new Float64Array(0);
  serviceBytes: Float64Array = new Float64Array(0);
  backendPackets: Float64Array = new Float64Array(0);
  backendBytes: Float64Array = new Float64Array(0);
  /** Flows forwarded by the hash alone because the connection table had no room. */
  connFallback = 0;
  /** ...of which refused by the untrusted quota (a SYN flood shows here). */
  connUntrustedRefused = 0;
  /** TCP packets of flows this MUX never saw a SYN for: forwarded by hash, no entry. */
  connNoHandshake = 0;
  /** Entries whose backend went down and were re-hashed to a live one. */
  connRehashed = 0;
  connHits = 0;
  connInserts = 0;

  private table: ForwardingTable | undefined;
  /** The table in use before the current one, and until when it may name earlier owners. */
  private prevTable: ForwardingTable | undefined;
  private prevUntil = 0;
  /** Set by setTable: the grace period starts with the next forwarded packet's clock. */
  private prevPending = false;
  private readonly secondChanceMs: number;
  private readonly innerSrcMac: Uint8Array;
  /** Packets sent with an earlier owner named (second chance). */
  secondChanceHints = 0;
  private readonly lookupDecision = new Decision();
  private readonly key = new Uint32Array(FLOW_KEY_WORDS);
  private readonly encap = new VxlanEncap();
  private readonly localV4: Uint8Array | undefined;
  private readonly localV6: Uint8Array | undefined;
  private readonly maxPacket: number;
  private readonly decrementTtl: boolean;
  private readonly perDipMac: boolean;
  private ipId = 0;

  constructor(options: ForwarderOptions) {
    this.localV4 = options.localV4 === undefined ? undefined : parseIp(options.localV4);
    this.localV6 = options.localV6 === undefined ? undefined : parseIp(options.localV6);
    if (options.localV4 !== undefined && this.localV4?.length !== 4)
      throw new RangeError(`localV4 ${options.localV4} is not IPv4`);
    if (options.localV6 !== undefined && this.localV6?.length !== 16)
      throw new RangeError(`localV6 ${options.localV6} is not IPv6`);
    const dst = parseMac(options.innerDstMac ?? DEFAULT_INNER_DST_MAC);
    const src = parseMac(options.innerSrcMac);
    if (!dst) throw new RangeError(`innerDstMac ${options.innerDstMac} is not a MAC address`);
    if (!src) throw new RangeError(`innerSrcMac ${options.innerSrcMac} is not a MAC address`);
    this.encap.innerDstMac = dst;
    this.encap.innerSrcMac = src;
    this.innerSrcMac = src;
    this.secondChanceMs = options.secondChanceMs ?? 0;
    this.perDipMac = options.perDipMac ?? true;
    this.encap.dstPort = options.vxlanPort ?? VXLAN_PORT;
    this.encap.ttl = options.outerTtl ?? 64;
    this.encap.decrementInnerTtl = options.decrementTtl ?? true;
    this.encap.ipv4UdpChecksum = options.outerUdpChecksumV4 ?? false;
    this.maxPacket = options.maxPacket ?? 9000;
    this.decrementTtl = options.decrementTtl ?? true;
    this.out = new Uint8Array(this.maxPacket + VXLAN_OVERHEAD_V6);
    this.conn = new ConnectionTable(options.conn);
  }

  /** Service id of the last forwarded packet (-1 when it was dropped before the service was known). */
  get lastServiceId(): number {
    return this.decision.serviceId;
  }

  /** Backend id of the last forwarded packet (-1 when it was dropped before the choice). */
  get lastBackendId(): number {
    return this.decision.backendId;
  }

  /** Makes `forward` write into `buf` (at least maxPacket + VXLAN_OVERHEAD_V6 bytes). */
  setOutput(buf: Uint8Array): void {
    if (buf.length < this.maxPacket + VXLAN_OVERHEAD_V6) {
      throw new RangeError(
        `output buffer of ${buf.length} bytes; needs ${this.maxPacket + VXLAN_OVERHEAD_V6}`,
      );
    }
    this.out = buf;
  }

  /** The table in use. */
  get forwardingTable(): ForwardingTable | undefined {
    return this.table;
  }

  /**
   * Installs a new forwarding table (atomic swap between packets). Refused, with the
   * reasons, when a backend's host family has no local underlay address.
   */
  setTable(table: ForwardingTable): Result<void, string[]> {
    const problems: string[] = [];
    for (const s of table.services) {
      for (const b of s.backends) {
        if (b.hostAddr.length === 4 && !this.localV4)
          problems.push(`${s.name}: host ${b.host} is IPv4 and localV4 is not set`);
        if (b.hostAddr.length === 16 && !this.localV6)
          problems.push(`${s.name}: host ${b.host} is IPv6 and localV6 is not set`);
      }
    }
    if (problems.length > 0) return err(problems);
    this.servicePackets = grow(this.servicePackets, table.serviceIdLimit);
    this.serviceBytes = grow(this.serviceBytes, table.serviceIdLimit);
    this.backendPackets = grow(this.backendPackets, table.backendIdLimit);
    this.backendBytes = grow(this.backendBytes, table.backendIdLimit);
    if (this.secondChanceMs > 0 && this.table !== undefined && this.table !== table) {
      this.prevTable = this.table;
      this.prevPending = true;
    }
    this.table = table;
    return ok(undefined);
  }

  /** Forwards buf[0, len) at time `now` (ms). Returns Verdict.forward or a drop reason. */
  forward(buf: Uint8Array, len: number, now: number): Verdict {
    const d = this.decision;
    if (this.prevPending) {
      this.prevPending = false;
      this.prevUntil = now + this.secondChanceMs;
    }
    const v = this.decide(buf, len, now, true, d);
    if (v !== Verdict.forward) return this.count(v);

    // Encapsulate to the chosen backend's host.
    const t = this.table!;
    const p = d.packet;
    const sid = d.serviceId;
    const bid = d.backendId;
    const backend = t.backendById[bid]!;
    const host = backend.hostAddr;
    const e = this.encap;
    if (host.length === 4) {
      e.outerSrc = this.localV4!;
      e.ipId = this.ipId = (this.ipId + 1) & 0xffff;
    } else {
      e.outerSrc = this.localV6!;
      e.flowLabel = d.hash & 0xfffff;
    }
    e.outerDst = host;
    e.srcPort = vxlanSourcePort(d.hash);
    e.vni = t.serviceById[sid]!.vni;
    // The chosen DIP's MAC, precomputed with the table: a reference swap, no allocation.
    if (this.perDipMac) e.innerDstMac = backend.mac;
    // Second chance: the earlier owner's DIP MAC as source, else the MUX's own.
    if (d.hintBackendId >= 0) {
      e.innerSrcMac = t.backendById[d.hintBackendId]!.mac;
      this.secondChanceHints++;
    } else e.innerSrcMac = this.innerSrcMac;
    const ipLen = p.ipLength;
    const n = encapsulateVxlan(this.out, buf, 0, ipLen, e);
    if (n < 0) return this.count(Verdict.tooBig);
    this.outLength = n;
    this.outHost = host;
    this.servicePackets[sid]!++;
    this.serviceBytes[sid]! += ipLen;
    this.backendPackets[bid]!++;
    this.backendBytes[bid]! += ipLen;
    return this.count(Verdict.forward);
  }

  /**
   * What `forward` would do with buf[0, len) at `now`, without doing it: the same decision,
   * read-only (no table entry is created, refreshed, moved or reclaimed and no counter
   * moves), described for `vipmux flow`. Off the packet path: allocates its result.
   */
  lookup(buf: Uint8Array, len: number, now: number): FlowLookup {
    const d = this.lookupDecision;
    this.decide(buf, len, now, false, d);
    return this.describe(buf, now, d);
  }

  /**
   * The one decision: where the packet in buf[0, len) goes at `now`, or why it is dropped.
   * Writes `d` and returns its verdict. With `commit` it also does what forwarding the
   * packet means for the connection table and its counters (entry reclaimed when expired,
   * created, refreshed or moved); without, it reads only, so `lookup` can ask it anything.
   * Verdict counters and the encapsulation are the caller's (`forward`).
   */
  private decide(buf: Uint8Array, len: number, now: number, commit: boolean, d: Decision): Verdict {
    d.reset();
    const t = this.table;
    if (t === undefined) return d.finish(Verdict.noTable);

    // 1. Parse. A malformed packet is dropped with the parser's reason (codes 1-7).
    const p = d.packet;
    const st = parseIpPacket(buf, len, p);
    if (st !== ParseStatus.ok) return d.finish(st);

    // 2. The MUX is a router hop: what would leave with TTL 0 is dropped (RFC 1812 §5.3.1).
    if (this.decrementTtl && buf[p.ttlOffset]! <= 1) return d.finish(Verdict.ttlExhausted);

    // 3. The service: (VIP, protocol, port). ICMP echo requests and fragments look up port 0
    //    (src/lb/forwarding-table.ts); ICMP errors the flow they quote. Other ICMP (echo
    //    replies, redirects...) is nothing a backend asked for.
    if (p.icmpType >= 0 && p.icmpError === 0) {
      const echoRequest = p.family === 4 ? IcmpType.echoRequest : Icmpv6Type.echoRequest;
      if (p.icmpType !== echoRequest) return d.finish(Verdict.icmpUnsupported);
    } else if (p.flowHasPorts && (p.flowProto === IpProto.tcp || p.flowProto === IpProto.udp)) {
      d.servicePort = p.flowDstPort;
    }
    const sid = t.vips.lookup(buf, p.flowDstOffset, p.flowAddrLen, p.flowProto, d.servicePort);
    if (sid < 0) return d.finish(Verdict.noService);
    d.serviceId = sid;
    const svc = t.serviceById[sid]!;

    // 4. The flow hash, and Maglev's choice for it: where a new flow of this service goes
    //    (the same on every MUX with the same config).
    const hash = flowHash(buf, p, svc.distribution, t.seed);
    d.hash = hash;
    d.maglevBackendId = pickMaglev(svc, hash);
    d.via = Via.maglev;

    // 5. The connection table, for TCP and UDP flows that carry ports (not fragments): a
    //    flow stays on its backend when the Maglev table changes under it.
    d.tracked =
      p.fragment === 0 &&
      p.flowHasPorts === 1 &&
      (p.flowProto === IpProto.tcp || p.flowProto === IpProto.udp)
        ? 1
        : 0;
    if (d.tracked === 1) {
      const conn = this.conn;
      writeFlowKey(buf, p, svc.distribution, sid, this.key);
      // Committing reclaims an expired entry here; reading leaves it for find or expire.
      d.slot = commit ? conn.find(hash, this.key, now) : conn.peek(hash, this.key, now);
      if (d.slot >= 0) {
        const old = conn.backendAt(d.slot);
        d.entryBackendId = old;
        d.entryBackendState =
          old < t.backendState.length ? t.backendState[old]! : BackendStateCode.absent;
        if (
          svc.distribution === Distribution.fiveTuple &&
          p.flowProto === IpProto.tcp &&
          (p.tcpFlags & SYN_ACK) === TcpFlag.syn
        ) {
          // A bare SYN on a known 5-tuple reuses the ports for a new connection: it gets
          // the hash's answer like any new flow (never a draining backend, and the DIP any
          // other MUX picks for its later packets). Not on a 2- or 3-tuple entry: that is
          // the client's affinity, shared by its live connections, which would move too.
          d.via = Via.newConnection;
        } else if (
          d.entryBackendState === BackendStateCode.up ||
          d.entryBackendState === BackendStateCode.draining
        ) {
          d.via = Via.entry; // draining keeps its flows
        } else {
          d.via = Via.rehash; // its backend failed or left: the flow moves
        }
      }
    }

    // 6. The backend: the entry's, or Maglev's. None up: nothing to send to.
    const bid = d.via === Via.entry ? d.entryBackendId : d.maglevBackendId;
    if (bid < 0) return d.finish(Verdict.noBackend);
    d.backendId = bid;

    // 6b. Second chance: a flow this MUX has no entry for, that is not a new connection,
    //     may belong to the DIP an earlier table chose (before weights changed, a backend
    //     was added, or while one drains). Name that DIP to the host, which hands the packet
    //     on when it does not know the flow (docs/dataplane.md#second-chance).
    if (
      this.secondChanceMs > 0 &&
      d.tracked === 1 &&
      d.slot < 0 &&
      p.icmpError === 0 &&
      (p.flowProto !== IpProto.tcp || (p.tcpFlags & SYN_ACK) !== TcpFlag.syn)
    )
      d.hintBackendId = this.earlierOwner(buf, p, svc, hash, bid, now);

    // 7. Commit: the entry follows the choice and sees the packet; a new flow gets an
    //    (untrusted) entry if there is room. An ICMP error neither refreshes nor creates
    //    an entry (it proves nothing about the flow); a first packet that is a RST leaves
    //    nothing to remember.
    if (commit && d.tracked === 1) {
      const conn = this.conn;
      if (d.slot >= 0) {
        if (bid !== d.entryBackendId) conn.setBackend(d.slot, bid);
        if (d.via === Via.rehash) this.connRehashed++;
        this.connHits++;
        if (p.icmpError === 0) conn.touch(d.slot, now, p.tcpFlags);
      } else if (p.flowProto === IpProto.tcp && (p.tcpFlags & SYN_ACK) !== TcpFlag.syn) {
        // No handshake seen here (a flow from another MUX, or spoofed): by hash, no entry.
        if (p.icmpError === 0) this.connNoHandshake++;
      } else if (p.icmpError === 0) {
        const kind = p.flowProto === IpProto.tcp ? FlowKind.tcp : FlowKind.udp;
        const r = conn.insert(hash, this.key, bid, kind, now);
        if (r >= 0) this.connInserts++;
        else {
          this.connFallback++;
          if (r === InsertFailure.untrustedQuota) this.connUntrustedRefused++;
        }
      }
    }

    // 8. The encapsulated packet must fit the output buffer.
    if (p.ipLength > this.maxPacket) return d.finish(Verdict.tooBig);
    return d.finish(Verdict.forward);
  }

  /**
   * The DIP an earlier table sent this flow to, if it differs from `bid` and still takes
   * its flows (up or draining): the previous table's choice while it is in its grace
   * period, else the choice with draining backends still in. -1: none.
   */
  private earlierOwner(
    buf: Uint8Array,
    p: ParsedPacket,
    svc: ServiceEntry,
    hash: number,
    bid: number,
    now: number,
  ): number {
    const t = this.table!;
    let owner = -1;
    const prev = this.prevTable;
    if (prev !== undefined && now < this.prevUntil) {
      const sid = prev.vips.lookup(buf, p.flowDstOffset, p.flowAddrLen, p.flowProto, p.flowDstPort);
      const old = sid < 0 ? undefined : prev.serviceById[sid];
      // Only where the flow hash means the same thing in both tables.
      if (old !== undefined && old.distribution === svc.distribution)
        owner = pickFrom(old.maglevWithDraining, old.maglevWithDrainingBackends, hash);
    } else {
      owner = pickFrom(svc.maglevWithDraining, svc.maglevWithDrainingBackends, hash);
    }
    if (owner < 0 || owner === bid || owner >= t.backendState.length) return -1;
    const st = t.backendState[owner];
    return st === BackendStateCode.up || st === BackendStateCode.draining ? owner : -1;
  }

  /** `lookup`'s answer: decision `d` (made read-only on buf at `now`) in words. */
  private describe(buf: Uint8Array, now: number, d: Decision): FlowLookup {
    const t = this.table;
    const p = d.packet;
    const parsed = d.verdict !== Verdict.noTable && !isParseFailure(d.verdict);
    const flowDst = parsed ? formatIp(buf, p.flowDstOffset, p.flowAddrLen) : "";
    const svc = d.serviceId >= 0 ? t!.serviceById[d.serviceId]! : undefined;
    const backend = (bid: number): FlowLookupBackend | null => {
      const b = bid < 0 ? undefined : t!.backendById[bid];
      return b === undefined ? null : { dip: b.dip, host: b.host };
    };
    const r: FlowLookup = {
      flow: parsed
        ? {
            protocol: protoName(p.flowProto),
            src: formatIp(buf, p.flowSrcOffset, p.flowAddrLen),
            sport: p.flowHasPorts ? p.flowSrcPort : 0,
            dst: flowDst,
            dport: p.flowHasPorts ? p.flowDstPort : 0,
          }
        : null,
      verdict: VERDICT_NAMES[d.verdict]!,
      service: svc?.name ?? null,
      distribution: svc ? (DISTRIBUTION_NAMES[svc.distribution] ?? null) : null,
      hash: svc ? d.hash : null,
      tracked: d.tracked === 1,
      entry: null,
      maglev: svc ? backend(d.maglevBackendId) : null,
      via: VIA_NAMES[d.via] ?? null,
      dip: null,
      host: null,
    };
    if (d.slot >= 0) {
      const known = t!.backendById[d.entryBackendId];
      r.entry = {
        dip: known?.dip ?? null,
        host: known?.host ?? null,
        state: FLOW_STATE_NAMES[this.conn.stateAt(d.slot)] ?? "unknown",
        backend: BACKEND_STATE_NAMES[d.entryBackendState] ?? "removed",
        idleLeftMs: this.conn.idleLeftMs(d.slot, now),
      };
    }
    if (d.verdict === Verdict.forward) {
      const chosen = backend(d.backendId)!;
      r.dip = chosen.dip;
      r.host = chosen.host;
      const earlier = backend(d.hintBackendId);
      if (earlier) r.secondChance = earlier;
      return r;
    }
    r.reason = this.dropReason(buf, d, flowDst, svc);
    return r;
  }

  /** Why decision `d` drops its packet, in words. */
  private dropReason(
    buf: Uint8Array,
    d: Decision,
    flowDst: string,
    svc: ServiceEntry | undefined,
  ): string {
    const p = d.packet;
    switch (d.verdict) {
      case Verdict.noTable:
        return "no forwarding table installed yet";
      case Verdict.ttlExhausted:
        return "TTL / hop limit would reach 0";
      case Verdict.icmpUnsupported:
        return `ICMP type ${p.icmpType} is not forwarded`;
      case Verdict.noService: {
        const dst = buf.subarray(p.flowDstOffset, p.flowDstOffset + p.flowAddrLen);
        const isVip = this.table!.services.some(
          (s) => s.vipAddr.length === dst.length && s.vipAddr.every((b, i) => b === dst[i]),
        );
        const proto = protoName(p.flowProto);
        const what = d.servicePort === 0 ? proto : `${proto} port ${d.servicePort}`;
        return isVip
          ? `VIP ${flowDst} has no service on ${what}`
          : `${flowDst} is not a VIP of this MUX`;
      }
      case Verdict.noBackend:
        return `service ${svc!.name} has no backend up`;
      case Verdict.tooBig:
        return `packet of ${p.ipLength} bytes exceeds ${this.maxPacket}`;
      default:
        return `malformed packet (${VERDICT_NAMES[d.verdict]})`;
    }
  }

  /**
   * Reclaims idle connection-table entries, examining at most `maxSlots` slots. Engines
   * call it between packet batches (e.g. every few ms with a budget of a few thousand),
   * so a quiet table still frees its quota without a stop-the-world sweep.
   */
  expire(now: number, maxSlots = 4096): number {
    return this.conn.expire(now, maxSlots);
  }

  private count(v: Verdict): Verdict {
    this.verdicts[v]!++;
    return v;
  }

  /** Counters as plain data (control plane: allocates). Per-VIP sums cover every service on the VIP. */
  counters(): ForwarderCounters {
    const t = this.table;
    const services: ForwarderCounters["services"] = [];
    const vips = new Map<string, { packets: number; bytes: number }>();
    const backends: ForwarderCounters["backends"] = [];
    for (const s of t?.services ?? []) {
      const packets = this.servicePackets[s.id] ?? 0;
      const bytes = this.serviceBytes[s.id] ?? 0;
      services.push({ service: s.name, vip: s.vip, packets, bytes });
      const v = vips.get(s.vip) ?? { packets: 0, bytes: 0 };
      v.packets += packets;
      v.bytes += bytes;
      vips.set(s.vip, v);
      for (const b of s.backends) {
        backends.push({
          service: s.name,
          dip: b.dip,
          host: b.host,
          state: b.state,
          packets: this.backendPackets[b.id] ?? 0,
          bytes: this.backendBytes[b.id] ?? 0,
        });
      }
    }
    const drops: Record<string, number> = {};
    for (let i = 1; i < VERDICT_NAMES.length; i++) drops[VERDICT_NAMES[i]!] = this.verdicts[i]!;
    return {
      forwarded: this.verdicts[0]!,
      drops,
      services,
      vips: [...vips].map(([vip, c]) => ({ vip, ...c })),
      backends,
      conn: {
        size: this.conn.size,
        untrusted: this.conn.untrustedCount,
        capacity: this.conn.capacity,
        hits: this.connHits,
        inserts: this.connInserts,
        fallback: this.connFallback,
        untrustedRefused: this.connUntrustedRefused,
        noHandshake: this.connNoHandshake,
        rehashed: this.connRehashed,
        expired: this.conn.expired,
      },
    };
  }
}

export interface ForwarderCounters {
  forwarded: number;
  drops: Record<string, number>;
  services: { service: string; vip: string; packets: number; bytes: number }[];
  vips: { vip: string; packets: number; bytes: number }[];
  backends: {
    service: string;
    dip: string;
    host: string;
    state: string;
    packets: number;
    bytes: number;
  }[];
  conn: {
    size: number;
    untrusted: number;
    capacity: number;
    hits: number;
    inserts: number;
    fallback: number;
    untrustedRefused: number;
    noHandshake: number;
    rehashed: number;
    expired: number;
  };
}

export interface FlowLookupBackend {
  dip: string;
  host: string;
}

/** `Forwarder.lookup`: what forward() would do with one packet, and why. */
export interface FlowLookup {
  /** The flow as parsed (for an ICMP error: the flow it quotes); null when unparsable. */
  flow: { protocol: string; src: string; sport: number; dst: string; dport: number } | null;
  /** "forward", or the drop reason forward() would count (VERDICT_NAMES). */
  verdict: string;
  /** Why it would be dropped, in words (absent when forwarded). */
  reason?: string;
  service: string | null;
  distribution: "5-tuple" | "3-tuple" | "2-tuple" | null;
  /** 30-bit flow hash (Maglev slot, connection-table key, VXLAN source port). */
  hash: number | null;
  /** TCP/UDP and not a fragment: the flow uses the connection table. */
  tracked: boolean;
  /** The flow's live connection-table entry, if any (dip null: its backend left the table). */
  entry: {
    dip: string | null;
    host: string | null;
    state: "untrusted" | "established" | "closing" | "unknown";
    /** Its backend's state: up and draining keep the flow, down and removed re-hash it. */
    backend: "up" | "draining" | "down" | "removed";
    /** Time left before the entry expires if the flow stays idle. */
    idleLeftMs: number;
  } | null;
  /** Maglev's choice for a new flow (and for any bare SYN); null when no backend is up. */
  maglev: FlowLookupBackend | null;
  /**
   * How forward() picks for this packet: "entry" (the table entry's backend), "maglev" (no
   * entry: a new flow, or not tracked), "rehash" (the entry's backend is down or gone:
   * Maglev, entry updated), "new-connection" (a bare SYN on a known 5-tuple: Maglev).
   */
  via: "entry" | "maglev" | "rehash" | "new-connection" | null;
  /** Where forward() sends this packet (null when it would drop it). */
  dip: string | null;
  host: string | null;
  /** Second chance: the earlier owner named to the host with it, if any. */
  secondChance?: FlowLookupBackend;
}

const VIA_NAMES: Record<number, FlowLookup["via"]> = {
  [Via.maglev]: "maglev",
  [Via.entry]: "entry",
  [Via.rehash]: "rehash",
  [Via.newConnection]: "new-connection",
};
const DISTRIBUTION_NAMES: Record<number, FlowLookup["distribution"]> = {
  [Distribution.fiveTuple]: "5-tuple",
  [Distribution.threeTuple]: "3-tuple",
  [Distribution.twoTuple]: "2-tuple",
};
const FLOW_STATE_NAMES: Record<number, "untrusted" | "established" | "closing"> = {
  [FlowState.untrusted]: "untrusted",
  [FlowState.established]: "established",
  [FlowState.closing]: "closing",
};
const BACKEND_STATE_NAMES: Record<number, "up" | "draining" | "down"> = {
  [BackendStateCode.up]: "up",
  [BackendStateCode.draining]: "draining",
  [BackendStateCode.down]: "down",
};

function protoName(proto: number): string {
  if (proto === IpProto.tcp) return "tcp";
  if (proto === IpProto.udp) return "udp";
  if (proto === IpProto.icmp) return "icmp";
  if (proto === IpProto.icmpv6) return "icmpv6";
  return String(proto);
}

/** TCP flags of a bare SYN (SYN without ACK): the first packet of a connection. */
const SYN_ACK = TcpFlag.syn | TcpFlag.ack;

/** Verdicts 1-7 are the parser's: the packet could not be read. */
function isParseFailure(v: Verdict): boolean {
  return v >= Verdict.truncated && v <= Verdict.badIcmpError;
}

/** Maglev choice for a flow hash: a backend id, or -1 when no backend is up. */
function pickMaglev(svc: ServiceEntry, hash: number): number {
  return pickFrom(svc.maglev, svc.maglevBackends, hash);
}

function pickFrom(m: Uint16Array, backends: Int32Array, hash: number): number {
  if (m.length === 0) return -1;
  return backends[m[hash % m.length]!]!;
}

function grow(a: Float64Array, n: number): Float64Array {
  if (a.length >= n) return a;
  const b = new Float64Array(Math.max(n, a.length * 2));
  b.set(a);
  return b;
}
