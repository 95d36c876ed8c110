// The BGP speaker: the only BGP surface the controller sees (undici's Dispatcher vs Pool
// split). `announce` / `withdraw` change the desired table (loc-rib.ts); each peer's
// Adj-RIB-Out sends the difference after a short coalescing window, packed into the fewest
// UPDATEs (update-pack.ts), with per-peer export policy. Sessions, FSM and timers stay
// behind this class; so does the RFC 8326 drain (drain.ts). The speaker keeps what peers
// send (Adj-RIB-In) for queries and installs nothing in the kernel.

import { EventEmitter } from "node:events";
import type net from "node:net";
import {
  AdjRibIn,
  type AdjRibInCounters,
  type ReceivedIssue,
  type ReceivedRoute,
} from "./adj-rib-in.ts";
import { AdjRibOut, type Desired } from "./adj-rib-out.ts";
import { Drain, type DrainOptions } from "./drain.ts";
import { defaultFsmConfig, type FsmStateName } from "./fsm.ts";
import { keyPrefix, LocRib, prefixKey } from "./loc-rib.ts";
import {
  type ExportedRoute,
  type ExportPolicy,
  exportedRouteOfKey,
  exportRoute,
  exportsPrefix,
  parseCommunity,
  parseLargeCommunity,
  type RouteAttributes,
} from "./policy.ts";
import { type EstablishedInfo, Session, type SessionCounters } from "./session.ts";
import { type Listener, listen, plainAddress } from "./transport.ts";
import { type PackedBatch, packBatch } from "./update-pack.ts";
import type { Capability } from "./wire/capabilities.ts";
import { Afi, CeaseSubcode, RouteRefreshSubtype, Safi } from "./wire/constants.ts";
import { parseIpv4, parseIpv6 } from "./wire/prefix.ts";
import { encodeRouteRefresh } from "./wire/route-refresh.ts";
import { type DecodedUpdate, encodeEndOfRib } from "./wire/update.ts";

export type Family = "ipv4" | "ipv6";

export interface PeerOptions {
  /** Peer address (IPv4 or IPv6): the session's remote end and the peer's key. */
  readonly address: string;
  readonly asn: number;
  readonly name?: string;
  /** Remote TCP port (179). */
  readonly port?: number;
  /** Local address to connect from (and the default IPv4 next hop). */
  readonly localAddress?: string;
  /** Never connect; wait for the peer (PassiveTcpEstablishment). */
  readonly passive?: boolean;
  readonly holdTimeSec?: number;
  readonly connectRetryMs?: number;
  /** RFC 2385 TCP-MD5 password (needs the native addon). */
  readonly md5Password?: string;
  /** eBGP multihop: TTL of outgoing packets (needs the native addon). */
  readonly multihopTtl?: number;
  /** GTSM (RFC 5082): the peer is this many hops away (1 for a direct link). */
  readonly gtsmHops?: number;
  /** Families to negotiate (both by default). */
  readonly families?: readonly Family[];
  readonly export?: ExportPolicy;
  /**
   * Bound on the routes kept from this peer (its Adj-RIB-In, IPv4 and IPv6 together): more
   * closes the session with Cease / Maximum Number of Prefixes Reached (RFC 4486), which
   * then stays down for `restartAfterMs`. A number is the limit with the other defaults.
   */
  readonly maxPrefixes?: number | MaxPrefixes;
  /** The peer must advertise these capabilities, or gets NOTIFICATION 2/7. */
  readonly requiredCapabilities?: readonly Capability["kind"][];
}

export interface MaxPrefixes {
  /** Most distinct prefixes kept from the peer, both families together (0..2^32 − 1). */
  readonly limit: number;
  /** Log a warning, once per crossing, at this percentage of the limit (1..100; 75). */
  readonly warningPercent?: number;
  /** After the Cease the session stays down this long, then reconnects (60 s). */
  readonly restartAfterMs?: number;
}

export const DEFAULT_MAX_PREFIXES_TOTAL = 1_000_000;
const DEFAULT_PREFIX_WARNING_PERCENT = 75;
const DEFAULT_PREFIX_RESTART_MS = 60_000;

export interface SpeakerOptions {
  readonly asn: number;
  /** BGP Identifier (dotted quad). */
  readonly routerId: string;
  /**
   * Listen for peers: host/port (default `::` port 179), or false for outgoing only. With
   * `onlyWithPassivePeers` the socket is open only while a passive peer is configured
   * (opened when one is added, closed when the last one goes).
   */
  readonly listen?:
    | false
    | { readonly host?: string; readonly port?: number; readonly onlyWithPassivePeers?: boolean };
  /** IPv4 next hop for IPv4 prefixes over IPv6 sessions. */
  readonly nextHop4?: string;
  /** The MUX's IPv6 next hop for IPv6 prefixes over IPv4 sessions. */
  readonly nextHop6?: string;
  readonly holdTimeSec?: number;
  readonly connectRetryMs?: number;
  /** First reconnect delay after a failure; doubles per failure up to `idleHoldMaxMs`. */
  readonly idleHoldMs?: number;
  readonly idleHoldMaxMs?: number;
  /** Coalescing window between a change and its UPDATE (default 5 ms). */
  readonly coalesceMs?: number;
  /** RFC 8654 extended messages (default on). */
  readonly extendedMessages?: boolean;
  /** Queue limit per peer socket before UPDATE generation pauses (default 4 MiB). */
  readonly sendBufferBytes?: number;
  readonly sendHoldMs?: number;
  /**
   * Bound on the routes kept from all peers together (default 1,000,000): a peer whose
   * UPDATE would push the total past it is treated as exceeding its own `maxPrefixes`.
   */
  readonly maxPrefixesTotal?: number;
  readonly peers: readonly PeerOptions[];
  readonly log?: (level: "debug" | "info" | "warn", msg: string) => void;
  /** Randomness for timer jitter (injected in tests). */
  readonly rng?: () => number;
}

export interface PeerUpEvent {
  readonly peer: string;
  readonly address: string;
  readonly asn: number;
  readonly holdTimeSec: number;
  readonly families: readonly Family[];
  readonly localAddress: string;
}
export interface PeerDownEvent {
  readonly peer: string;
  readonly address: string;
  readonly reason: string;
}

export interface PeerStatus {
  readonly name: string;
  readonly address: string;
  readonly asn: number;
  readonly state: FsmStateName;
  readonly establishedForMs: number | null;
  readonly lastError: string;
  readonly families: readonly Family[];
  readonly holdTimeSec: number | null;
  readonly prefixesSent: number;
  readonly prefixesPending: number;
  readonly prefixesReceived: number;
  /** Bytes written to the socket and not yet taken by the kernel. */
  readonly sendQueueBytes: number;
  readonly counters: Readonly<SessionCounters>;
}

/** Everything the speaker knows about one peer, for queries (`vipmux bgp neighbor ADDR`). */
export interface PeerDetail {
  readonly status: PeerStatus;
  /** The peer's options as configured, without the TCP-MD5 key (`md5` says whether one is set). */
  readonly options: Omit<PeerOptions, "md5Password"> & { readonly md5: boolean };
  /** The hold time our OPEN proposes, and the capabilities it offers. */
  readonly holdTimeSec: number;
  readonly localCapabilities: readonly Capability[];
  /** The resolved max-prefixes, or null for none. */
  readonly maxPrefixes: Required<MaxPrefixes> | null;
  /** The Established session (both OPENs and what they negotiated); null otherwise. */
  readonly session: { readonly info: EstablishedInfo; readonly keepaliveSec: number } | null;
  /** What the peer sent: UPDATE counts, the families whose End-of-RIB arrived. */
  readonly received: {
    readonly counters: Readonly<AdjRibInCounters>;
    readonly endOfRib: readonly Family[];
    readonly issues: number;
  };
}

/** One prefix a peer holds from us (its Adj-RIB-Out, as sent). */
export interface SentRoute {
  readonly prefix: string;
  /** The attributes it was sent with; null while a route refresh re-sends them. */
  readonly route: ExportedRoute | null;
  /** A change of this prefix waits for the next UPDATE (coalescing window, full socket). */
  readonly pending: boolean;
}

interface SpeakerEvents {
  "peer-up": [PeerUpEvent];
  "peer-down": [PeerDownEvent];
  "state-change": [{ peer: string; from: FsmStateName; to: FsmStateName }];
  "route-refresh": [{ peer: string; afi: number; subtype: number }];
}

interface Peer {
  options: PeerOptions;
  /** Held down by the owner (BFD Down): no session until peerStart. */
  held: boolean;
  /** The resolved `maxPrefixes`, or null for none. */
  readonly limit: Required<MaxPrefixes> | null;
  /** Above the warning threshold since the last warning (one warning per crossing). */
  prefixWarned: boolean;
  /** Down after Cease 6/1 until this timer fires (RFC 4486 §4, restart-after). */
  prefixHold: NodeJS.Timeout | null;
  readonly name: string;
  readonly key: string;
  readonly session: Session;
  readonly out: AdjRibOut;
  readonly in: AdjRibIn;
  families: Set<number>;
  info: EstablishedInfo | null;
  establishedAt: number;
  /** Export cache: attrsId * 2 + (afi − 1) → exported route or reason. */
  exportCache: Map<number, ExportedRoute | string>;
  /** Families whose End-of-RIB is still due after the initial table. */
  eorPending: Set<number>;
  /** Families with an enhanced route refresh in progress (EoRR due). */
  eorrPending: Set<number>;
  flushing: boolean;
}

const FAMILY_AFI: Record<Family, 1 | 2> = { ipv4: Afi.Ipv4, ipv6: Afi.Ipv6 };
const AFI_FAMILY: Record<number, Family> = { 1: "ipv4", 2: "ipv6" };

/** Prefixes per flush step before yielding to the event loop (keepalives keep flowing). */
const FLUSH_STEP = 20_000;

function resolveMaxPrefixes(
  m: PeerOptions["maxPrefixes"],
  peer: string,
): Required<MaxPrefixes> | null {
  if (m === undefined) return null;
  const o = typeof m === "number" ? { limit: m } : m;
  const r = {
    limit: o.limit,
    warningPercent: o.warningPercent ?? DEFAULT_PREFIX_WARNING_PERCENT,
    restartAfterMs: o.restartAfterMs ?? DEFAULT_PREFIX_RESTART_MS,
  };
  if (!Number.isInteger(r.limit) || r.limit < 0 || r.limit > 0xffffffff)
    throw new TypeError(`peer ${peer}: maxPrefixes limit ${r.limit}`);
  if (!(r.warningPercent >= 1 && r.warningPercent <= 100))
    throw new TypeError(`peer ${peer}: maxPrefixes warningPercent ${r.warningPercent}`);
  if (!(r.restartAfterMs >= 0 && r.restartAfterMs <= 0x7fffffff))
    throw new TypeError(`peer ${peer}: maxPrefixes restartAfterMs ${r.restartAfterMs}`);
  return r;
}

/** RFC 4486 §4 data of Cease / Maximum Number of Prefixes Reached: AFI, SAFI, the bound. */
export function maxPrefixesData(afi: number, safi: number, bound: number): Uint8Array {
  const d = new Uint8Array(7);
  const v = new DataView(d.buffer);
  v.setUint16(0, afi);
  v.setUint8(2, safi);
  v.setUint32(3, Math.min(bound, 0xffffffff));
  return d;
}

function validateAttrs(a: RouteAttributes): void {
  for (const c of a.communities ?? []) parseCommunity(c);
  for (const c of a.largeCommunities ?? []) parseLargeCommunity(c);
  if (a.med !== undefined && (!Number.isInteger(a.med) || a.med < 0 || a.med > 0xffffffff))
    throw new TypeError(`MED ${a.med}`);
  if (a.prepend !== undefined && (!Number.isInteger(a.prepend) || a.prepend < 0 || a.prepend > 32))
    throw new TypeError(`prepend ${a.prepend}`);
}

export class Speaker extends EventEmitter<SpeakerEvents> {
  readonly options: SpeakerOptions;
  /**
   * The desired table. Export results are cached per (peer, attribute set id, family):
   * when compaction renumbers the sets, those caches go (what was sent is keyed by content
   * and stays valid).
   */
  private readonly routes = new LocRib(() => {
    for (const p of this.peersByKey.values()) p.exportCache.clear();
  });
  private readonly peersByKey = new Map<string, Peer>();
  private listener: Listener | null = null;
  /** Listener changes (open, close, TCP-MD5 keys) run one after another. */
  private listenerOps: Promise<void> = Promise.resolve();
  /** TCP-MD5 keys installed on the listener, by peer address. */
  private readonly listenerKeys = new Map<string, string>();
  private totalWarned = false;
  private flushTimer: NodeJS.Timeout | null = null;
  private readonly drainState = new Drain();
  private started = false;
  private stopped = false;
  private readonly log: NonNullable<SpeakerOptions["log"]>;

  constructor(options: SpeakerOptions) {
    super();
    this.options = options;
    this.log = options.log ?? (() => {});
    const bgpId = parseIpv4(options.routerId);
    if (bgpId === undefined || bgpId === 0) throw new TypeError(`router id "${options.routerId}"`);
    if (options.nextHop6 !== undefined && !parseIpv6(options.nextHop6))
      throw new TypeError(`nextHop6 "${options.nextHop6}"`);
    const total = options.maxPrefixesTotal;
    if (total !== undefined && (!Number.isInteger(total) || total < 0))
      throw new TypeError(`maxPrefixesTotal ${total}`);
    for (const p of options.peers) this.createPeer(p, bgpId);
  }

  private createPeer(p: PeerOptions, bgpId: number): Peer {
    const key = plainAddress(p.address);
    if (this.peersByKey.has(key)) throw new TypeError(`peer ${p.address} configured twice`);
    const o = this.options;
    const families = (p.families ?? ["ipv4", "ipv6"]).map((f) => FAMILY_AFI[f]);
    const capabilities: Capability[] = [
      ...families.map((afi) => ({ kind: "multiprotocol" as const, afi, safi: Safi.Unicast })),
      { kind: "route-refresh" },
      { kind: "enhanced-route-refresh" },
      { kind: "four-octet-as", asn: o.asn },
      ...(o.extendedMessages === false ? [] : [{ kind: "extended-message" as const }]),
    ];
    const name = p.name ?? key;
    const limit = resolveMaxPrefixes(p.maxPrefixes, name);
    const holdTimeSec = p.holdTimeSec ?? o.holdTimeSec ?? 90;
    const session = new Session(
      {
        name,
        address: p.address,
        port: p.port ?? 179,
        localAddress: p.localAddress,
        passive: p.passive ?? false,
        md5Password: p.md5Password,
        ttl: p.multihopTtl,
        gtsmHops: p.gtsmHops,
        connectTimeoutMs: 5_000,
        sendHoldMs: o.sendHoldMs ?? Math.max(480_000, 2 * holdTimeSec * 1000),
        fsm: defaultFsmConfig({
          localAs: o.asn,
          peerAs: p.asn,
          bgpId,
          holdTimeSec,
          connectRetryMs: p.connectRetryMs ?? o.connectRetryMs ?? 5_000,
          idleHoldMs: o.idleHoldMs ?? 1_000,
          idleHoldMaxMs: o.idleHoldMaxMs ?? 60_000,
          capabilities,
          requiredCapabilities: p.requiredCapabilities ?? [],
        }),
      },
      {
        established: (info) => this.onEstablished(peer, info),
        down: (reason) => this.onDown(peer, reason),
        update: (u) => this.onUpdate(peer, u),
        routeRefresh: (r) => this.onRouteRefresh(peer, r.afi, r.safi, r.subtype),
        writable: () => this.flushPeer(peer),
        state: (from, to) => this.emit("state-change", { peer: name, from, to }),
        log: (level, msg) => this.log(level, msg),
      },
      o.rng,
    );
    const peer: Peer = {
      options: p,
      name,
      key,
      session,
      out: new AdjRibOut(),
      in: new AdjRibIn(),
      families: new Set(),
      info: null,
      establishedAt: 0,
      exportCache: new Map(),
      eorPending: new Set(),
      eorrPending: new Set(),
      flushing: false,
      held: false,
      limit,
      prefixWarned: false,
      prefixHold: null,
    };
    this.peersByKey.set(key, peer);
    return peer;
  }

  // ---- peers at run time (config reload, BFD) ----

  /**
   * Adds a peer to a running speaker; it connects at once (unless passive) and gets the
   * whole table. Throws at once for invalid options or a peer configured twice. The listener
   * follows: its TCP-MD5 key for the peer is installed, and with `onlyWithPassivePeers` a
   * passive peer opens it. The promise resolves when that is done (it never rejects: a
   * failure is logged, and the session does without).
   */
  addPeer(p: PeerOptions): Promise<void> {
    const peer = this.createPeer(p, parseIpv4(this.options.routerId)!);
    const listening = this.syncListenerLogged();
    this.startSession(peer);
    return listening;
  }

  /**
   * Removes a peer: Cease / Peer De-configured (RFC 4486), then forgets it. Its TCP-MD5 key
   * leaves the listener, so the address can no longer open a session with the old key.
   */
  async removePeer(
    address: string,
    communication = "peer removed from the configuration",
  ): Promise<boolean> {
    const peer = this.peersByKey.get(plainAddress(address));
    if (!peer) return false;
    this.peersByKey.delete(peer.key);
    this.clearPrefixHold(peer);
    const listening = this.syncListenerLogged();
    await peer.session.stop(communication);
    await listening;
    return true;
  }

  /**
   * Replaces a peer's export policy without touching its session: what the new policy
   * sends differently goes out as ordinary UPDATEs (announcements and withdrawals).
   */
  setExportPolicy(address: string, policy: ExportPolicy): boolean {
    const peer = this.peersByKey.get(plainAddress(address));
    if (!peer) return false;
    peer.options = { ...peer.options, export: policy };
    peer.exportCache.clear();
    if (peer.info) {
      for (const k of peer.out.sent.keys()) peer.out.markDirty(k);
      for (const k of this.routes.keys()) peer.out.markDirty(k);
      this.scheduleFlush();
    }
    return true;
  }

  /**
   * Takes the session down now and keeps it down until `peerStart` (RFC 5882: a BFD Down
   * ends the BGP session at once; BGP comes back only after BFD is Up again).
   */
  peerDown(address: string, reason: string): boolean {
    const peer = this.peersByKey.get(plainAddress(address));
    if (!peer || peer.held) return false;
    peer.held = true;
    this.log("warn", `${peer.name}: held down: ${reason}`);
    void peer.session.stop(reason);
    return true;
  }

  /** Lets a held peer connect again (BFD Up). */
  peerStart(address: string): boolean {
    const peer = this.peersByKey.get(plainAddress(address));
    if (!peer?.held) return false;
    peer.held = false;
    this.startSession(peer);
    return true;
  }

  isHeld(address: string): boolean {
    return this.peersByKey.get(plainAddress(address))?.held ?? false;
  }

  /** Starts listening (unless disabled) and connecting to every peer. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    try {
      await this.syncListener();
    } catch (e) {
      // A listener without the peers' keys would accept nobody they expect: none at all.
      const l = this.listener;
      this.listener = null;
      this.listenerKeys.clear();
      await l?.close();
      throw e;
    }
    for (const p of this.peersByKey.values()) this.startSession(p);
  }

  /** Starts a peer's session unless it is held down (BFD, or after Cease 6/1). */
  private startSession(peer: Peer): void {
    if (!this.started || this.stopped || peer.held || peer.prefixHold) return;
    peer.session.start();
  }

  /** Brings the listener in line with the peers; one change at a time. */
  private syncListener(): Promise<void> {
    const run = this.listenerOps.then(() => this.applyListener());
    this.listenerOps = run.catch(() => {});
    return run;
  }

  private syncListenerLogged(): Promise<void> {
    return this.syncListener().catch((e: Error) => this.log("warn", `listener: ${e.message}`));
  }

  private async applyListener(): Promise<void> {
    const l = this.options.listen;
    if (l === false || !this.started || this.stopped) return;
    const peers = [...this.peersByKey.values()];
    const wanted = !l?.onlyWithPassivePeers || peers.some((p) => p.options.passive);
    if (!wanted) {
      if (!this.listener) return;
      // Stop accepting; sessions it accepted go on.
      const old = this.listener;
      this.listener = null;
      this.listenerKeys.clear();
      void old.close();
      this.log("info", "no passive peer left: stopped listening");
      return;
    }
    if (!this.listener) {
      this.listener = await listen(l?.host, l?.port ?? 179, (s) => this.onAccept(s));
      this.listenerKeys.clear();
      this.log("info", `listening on ${l?.host ?? "::"} port ${this.listener.port}`);
    }
    // RFC 2385 keys: a peer's key is on the listener exactly while the peer is configured
    // with it, so a changed or revoked password stops working at once for new connections.
    const want = new Map<string, string>();
    for (const p of peers)
      if (p.options.md5Password !== undefined) want.set(p.key, p.options.md5Password);
    for (const addr of [...this.listenerKeys.keys()]) {
      if (want.has(addr)) continue;
      await this.listener.setMd5(addr, null);
      this.listenerKeys.delete(addr);
    }
    for (const [addr, key] of want) {
      if (this.listenerKeys.get(addr) === key) continue;
      await this.listener.setMd5(addr, key);
      this.listenerKeys.set(addr, key);
    }
  }

  /** The port the listener is bound to (useful with port 0 in tests). */
  get listenPort(): number | undefined {
    return this.listener?.port;
  }

  private onAccept(socket: net.Socket): void {
    const remote = plainAddress(socket.remoteAddress);
    const peer = this.peersByKey.get(remote);
    socket.on("error", () => {});
    if (!peer || this.stopped) {
      // Not a configured peer: close at once, before reading a byte (RFC 4271 §8: the
      // connection is refused).
      this.log("info", `refused a BGP connection from unconfigured ${remote}`);
      socket.destroy();
      return;
    }
    peer.session.accept(socket);
  }

  // ---- the table ----

  /**
   * Announces `prefix` ("20.20.20.100", "20.20.20.100/32", "2001:db8::1/128") with
   * `attrs`, replacing earlier attributes. Sent to every peer whose policy accepts it
   * after the coalescing window.
   */
  announce(prefix: string, attrs: RouteAttributes = {}): void {
    validateAttrs(attrs);
    const { key } = prefixKey(prefix);
    if (this.routes.set(key, attrs)) this.markDirty(key);
  }

  /** Withdraws `prefix` from every peer (no-op when not announced). */
  withdraw(prefix: string): void {
    const { key } = prefixKey(prefix);
    if (!this.routes.delete(key)) return;
    this.markDirty(key);
  }

  /** Prefixes currently announced (desired), in canonical form. */
  announced(): string[] {
    return [...this.routes.keys()];
  }

  isAnnounced(prefix: string): boolean {
    return this.routes.has(prefixKey(prefix).key);
  }

  private markDirty(key: string): void {
    for (const p of this.peersByKey.values()) if (p.info) p.out.markDirty(key);
    this.scheduleFlush();
  }

  private markAllDirty(): void {
    for (const p of this.peersByKey.values()) {
      p.exportCache.clear();
      if (!p.info) continue;
      for (const k of p.out.sent.keys()) p.out.markDirty(k);
      for (const k of this.routes.keys()) p.out.markDirty(k);
    }
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushTimer) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = null;
      for (const p of this.peersByKey.values()) this.flushPeer(p);
    }, this.options.coalesceMs ?? 5);
  }

  private desiredFor(peer: Peer): (key: string) => Desired | undefined {
    const info = peer.info!;
    const policy = peer.options.export ?? {};
    const ctx = {
      localAs: this.options.asn,
      localAddress: peer.options.localAddress ?? info.localAddress,
      nextHop4: this.options.nextHop4,
      nextHop6: this.options.nextHop6,
      drain: this.drainState.gracefulShutdown ?? undefined,
    };
    return (key) => {
      if (this.drainState.withdrawn) return undefined;
      const attrsId = this.routes.get(key);
      if (attrsId === undefined) return undefined;
      const prefix = keyPrefix(key);
      if (!exportsPrefix(policy, prefix)) return undefined;
      const ck = attrsId * 2 + (prefix.afi - 1);
      let e = peer.exportCache.get(ck);
      if (e === undefined) {
        e = exportRoute(ctx, policy, this.routes.attrs(attrsId), prefix.afi);
        if (typeof e === "string") this.log("warn", `${peer.name}: not exporting: ${e}`);
        peer.exportCache.set(ck, e);
      }
      return typeof e === "string" ? undefined : { prefix, route: e };
    };
  }

  /** Sends what the peer lacks, in steps, pausing while its socket is backed up. */
  private flushPeer(peer: Peer): void {
    if (peer.flushing || !peer.info || peer.session.state !== "Established") return;
    const limit = this.options.sendBufferBytes ?? 4 * 1024 * 1024;
    const tx = peer.session.tx;
    const desired = this.desiredFor(peer);
    while (peer.out.dirty.size > 0) {
      if (peer.session.writableBytes > limit) return; // resumed by the socket's drain
      const b = peer.out.take(FLUSH_STEP, desired, peer.families, keyPrefix);
      let packed: PackedBatch;
      try {
        packed = packBatch(b, tx);
      } catch (e) {
        this.log("warn", `${peer.name}: UPDATE encoding failed: ${(e as Error).message}`);
        continue;
      }
      const { buffer, messages } = packed;
      if (messages > 0) peer.session.send(buffer, messages, messages);
      if (peer.out.dirty.size > 0) {
        // Yield so keepalives and other peers are served during a large table.
        peer.flushing = true;
        setImmediate(() => {
          peer.flushing = false;
          this.flushPeer(peer);
        });
        return;
      }
    }
    this.sendMarkers(peer);
  }

  private sendMarkers(peer: Peer): void {
    const tx = peer.session.tx;
    for (const afi of peer.eorPending) {
      peer.session.send(encodeEndOfRib(afi as 1 | 2, tx), 1, 1);
      this.log(
        "info",
        `${peer.name}: initial ${AFI_FAMILY[afi]} table sent (${peer.out.sentCount(afi as 1 | 2)} prefixes), End-of-RIB`,
      );
    }
    peer.eorPending.clear();
    for (const afi of peer.eorrPending) {
      peer.session.send(
        encodeRouteRefresh({ afi, safi: Safi.Unicast, subtype: RouteRefreshSubtype.EoRR }),
        1,
        0,
      );
    }
    peer.eorrPending.clear();
    this.checkIdle();
  }

  // ---- session events ----

  private onEstablished(peer: Peer, info: EstablishedInfo): void {
    peer.info = info;
    peer.establishedAt = performance.now();
    const theirs = info.peerOpen.capabilities.filter((c) => c.kind === "multiprotocol");
    const ours = new Set((peer.options.families ?? ["ipv4", "ipv6"]).map((f) => FAMILY_AFI[f]));
    // RFC 4760 §8: a peer without multiprotocol capabilities speaks IPv4 unicast only.
    const families = new Set<number>();
    if (theirs.length === 0) {
      if (ours.has(Afi.Ipv4)) families.add(Afi.Ipv4);
    } else {
      for (const c of theirs)
        if (c.safi === Safi.Unicast && ours.has(c.afi as 1 | 2)) families.add(c.afi);
    }
    peer.families = families;
    peer.exportCache.clear();
    peer.in.clear();
    // A new session starts from nothing: the whole table again, then End-of-RIB.
    peer.out.reset(this.drainState.withdrawn ? [] : this.routes.keys());
    peer.eorPending = new Set(families);
    peer.eorrPending.clear();
    const fams = [...families].map((a) => AFI_FAMILY[a]!);
    this.log(
      "info",
      `${peer.name}: Established (hold ${info.negotiated.holdTime} s, ${fams.join("+")})`,
    );
    this.emit("peer-up", {
      peer: peer.name,
      address: peer.key,
      asn: peer.options.asn,
      holdTimeSec: info.negotiated.holdTime,
      families: fams,
      localAddress: info.localAddress,
    });
    this.scheduleFlush();
  }

  private onDown(peer: Peer, reason: string): void {
    peer.info = null;
    peer.in.clear();
    peer.prefixWarned = false;
    peer.out.reset([]);
    peer.eorPending.clear();
    peer.eorrPending.clear();
    this.emit("peer-down", { peer: peer.name, address: peer.key, reason });
    this.checkIdle();
  }

  // ---- what peers send: Adj-RIB-In and its bounds (RFC 4486) ----

  /** Routes kept from all peers together. */
  private receivedTotal(): number {
    let n = 0;
    for (const p of this.peersByKey.values()) n += p.in.routes.size;
    return n;
  }

  private onUpdate(peer: Peer, u: DecodedUpdate): void {
    const cap = this.options.maxPrefixesTotal ?? DEFAULT_MAX_PREFIXES_TOTAL;
    const own = peer.in.routes.size;
    // What this peer may hold: its own limit, and what the other peers leave of the total.
    const share = cap - (this.receivedTotal() - own);
    const peerLimit = peer.limit?.limit ?? Number.POSITIVE_INFINITY;
    const bound = Math.min(peerLimit, share);
    const afi = peer.in.apply(u, performance.now(), bound);
    if (afi !== undefined) {
      this.prefixLimitReached(peer, afi, bound, peerLimit <= share ? "peer" : "total");
      return;
    }
    this.warnPrefixes(peer, cap);
  }

  /** A warning once per crossing of the warning threshold (the peer's, and 75 % of the total). */
  private warnPrefixes(peer: Peer, cap: number): void {
    const n = peer.in.routes.size;
    if (peer.limit) {
      const { limit, warningPercent } = peer.limit;
      const at = Math.max(1, Math.ceil((limit * warningPercent) / 100));
      if (n < at) peer.prefixWarned = false;
      else if (!peer.prefixWarned) {
        peer.prefixWarned = true;
        this.log(
          "warn",
          `${peer.name}: ${n} prefixes received, ${warningPercent}% of max-prefixes ${limit}: at ${limit + 1} the session is closed`,
        );
      }
    }
    const total = this.receivedTotal();
    const at = Math.max(1, Math.ceil((cap * DEFAULT_PREFIX_WARNING_PERCENT) / 100));
    if (total < at) this.totalWarned = false;
    else if (!this.totalWarned) {
      this.totalWarned = true;
      this.log(
        "warn",
        `${total} prefixes received from all peers together, ${DEFAULT_PREFIX_WARNING_PERCENT}% of the total bound ${cap}`,
      );
    }
  }

  /**
   * RFC 4486 §4: Cease / Maximum Number of Prefixes Reached with AFI, SAFI and the bound the
   * peer hit (for the total bound, what the other peers left of it); the session stays down
   * for restart-after, then starts again.
   */
  private prefixLimitReached(peer: Peer, afi: number, bound: number, which: "peer" | "total") {
    const restartAfterMs = peer.limit?.restartAfterMs ?? DEFAULT_PREFIX_RESTART_MS;
    const cap = this.options.maxPrefixesTotal ?? DEFAULT_MAX_PREFIXES_TOTAL;
    const reason =
      which === "peer"
        ? `more than max-prefixes ${bound} received`
        : `more than ${bound} prefixes received: all peers together would hold more than the total bound ${cap}`;
    this.log(
      "warn",
      `${peer.name}: ${reason} (${AFI_FAMILY[afi] ?? `AFI ${afi}`}): Cease 6/1, down for ${restartAfterMs / 1000} s`,
    );
    this.clearPrefixHold(peer);
    peer.prefixHold = setTimeout(() => {
      peer.prefixHold = null;
      if (this.peersByKey.get(peer.key) !== peer) return;
      this.log("info", `${peer.name}: max-prefixes restart-after over: starting the session`);
      this.startSession(peer);
    }, restartAfterMs);
    peer.session.automaticStop(CeaseSubcode.MaximumPrefixesReached, reason, {
      data: maxPrefixesData(afi, Safi.Unicast, bound),
      autoRestart: false,
    });
  }

  private clearPrefixHold(peer: Peer): void {
    if (peer.prefixHold) clearTimeout(peer.prefixHold);
    peer.prefixHold = null;
  }

  private onRouteRefresh(peer: Peer, afi: number, safi: number, subtype: number): void {
    this.emit("route-refresh", { peer: peer.name, afi, subtype });
    if (safi !== Safi.Unicast || !peer.families.has(afi)) return;
    if (subtype === RouteRefreshSubtype.BoRR) {
      peer.in.beginRefresh(afi);
      return;
    }
    if (subtype === RouteRefreshSubtype.EoRR) {
      peer.in.endRefresh(afi);
      return;
    }
    if (subtype !== RouteRefreshSubtype.Normal) return; // RFC 7313 §5: ignore others
    this.log("info", `${peer.name}: route refresh for ${AFI_FAMILY[afi]}: re-sending the table`);
    // RFC 7313 §4: with enhanced route refresh, bracket the re-sent routes by BoRR/EoRR.
    if (peer.info?.negotiated.enhancedRouteRefresh) {
      peer.session.send(encodeRouteRefresh({ afi, safi, subtype: RouteRefreshSubtype.BoRR }), 1, 0);
      peer.eorrPending.add(afi);
    }
    peer.out.resend(afi as 1 | 2, this.drainState.withdrawn ? [] : this.routes.keys());
    this.scheduleFlush();
  }

  /** Asks peers to send their routes again (ROUTE-REFRESH, RFC 2918), e.g. after a policy change. */
  refresh(peerAddress?: string): void {
    for (const p of this.peersByKey.values()) {
      if (peerAddress !== undefined && p.key !== plainAddress(peerAddress)) continue;
      if (!p.info?.negotiated.routeRefresh) continue;
      for (const afi of p.families)
        p.session.send(encodeRouteRefresh({ afi, safi: Safi.Unicast, subtype: 0 }), 1, 0);
    }
  }

  // ---- queries ----

  peers(): PeerStatus[] {
    return [...this.peersByKey.values()].map((p) => this.statusOf(p));
  }

  private statusOf(p: Peer): PeerStatus {
    return {
      name: p.name,
      address: p.key,
      asn: p.options.asn,
      state: p.session.state,
      establishedForMs: p.info ? Math.round(performance.now() - p.establishedAt) : null,
      lastError: p.session.lastError,
      families: [...p.families].map((a) => AFI_FAMILY[a]!),
      holdTimeSec: p.info?.negotiated.holdTime ?? null,
      prefixesSent: p.out.sent.size,
      prefixesPending: p.out.dirty.size,
      prefixesReceived: p.in.routes.size,
      sendQueueBytes: p.session.writableBytes,
      counters: { ...p.session.counters },
    };
  }

  /** One peer in detail (throws TypeError for an unknown address). */
  peerDetail(peerAddress: string): PeerDetail {
    const p = this.peerOf(peerAddress);
    const { md5Password, ...options } = p.options;
    const fsm = p.session.config.fsm;
    return {
      status: this.statusOf(p),
      options: { ...options, md5: md5Password !== undefined && md5Password !== "" },
      holdTimeSec: fsm.holdTimeSec,
      localCapabilities: fsm.capabilities,
      maxPrefixes: p.limit,
      session: p.info
        ? { info: p.info, keepaliveSec: Math.round(p.session.fsmState.keepaliveMs / 1000) }
        : null,
      received: {
        counters: { ...p.in.counters },
        endOfRib: [...p.in.endOfRib].flatMap((a) => (AFI_FAMILY[a] ? [AFI_FAMILY[a]] : [])),
        issues: p.in.issues.length,
      },
    };
  }

  private peerOf(address: string): Peer {
    const p = this.peersByKey.get(plainAddress(address));
    if (!p) throw new TypeError(`no peer ${address}`);
    return p;
  }

  /** Routes received from a peer (its Adj-RIB-In). */
  adjRibIn(peerAddress: string): ReceivedRoute[] {
    return [...this.peerOf(peerAddress).in.routes.values()];
  }

  /** The last RFC 7606 outcomes (treat-as-withdraw, attribute-discard) a peer caused. */
  adjRibInIssues(peerAddress: string): readonly ReceivedIssue[] {
    return this.peerOf(peerAddress).in.issues;
  }

  /** Prefixes the peer holds from us (its Adj-RIB-Out, as sent). */
  adjRibOut(peerAddress: string): string[] {
    return [...this.peerOf(peerAddress).out.sent.keys()];
  }

  /** What the peer holds from us with the attributes it was sent (its Adj-RIB-Out). */
  adjRibOutRoutes(peerAddress: string): SentRoute[] {
    const p = this.peerOf(peerAddress);
    return [...p.out.sent].map(([prefix, key]) => ({
      prefix,
      route: exportedRouteOfKey(key, this.options.asn) ?? null,
      pending: p.out.dirty.has(prefix),
    }));
  }

  // ---- drain and shutdown ----

  private idleWaiters: (() => void)[] = [];

  /** True when every Established peer has been sent everything. */
  get synced(): boolean {
    for (const p of this.peersByKey.values())
      if (p.info && (p.out.dirty.size > 0 || p.eorPending.size > 0 || p.session.writableBytes > 0))
        return false;
    return this.flushTimer === null;
  }

  private checkIdle(): void {
    if (!this.synced) return;
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const r of w) r();
  }

  /** Resolves once every Established peer has been sent the current table (or at the timeout). */
  async flushed(timeoutMs = 10_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (!this.synced && performance.now() < deadline) {
      await new Promise<void>((r) => {
        this.idleWaiters.push(r);
        setTimeout(r, 50).unref();
      });
    }
  }

  /**
   * RFC 8326 graceful shutdown: re-announce everything with GRACEFUL_SHUTDOWN (65535:0)
   * and `prepend` extra copies of the local AS so routers move traffic to other MUXes,
   * wait `waitMs`, then withdraw everything. Sessions stay up.
   */
  async drain(options: DrainOptions = {}): Promise<void> {
    await this.drainState.run(options, {
      prefixCount: () => this.routes.size,
      resendAll: () => this.markAllDirty(),
      flushed: () => this.flushed(),
      log: (message) => this.log("info", message),
    });
  }

  /** Ends a drain: announce again normally. */
  undrain(): void {
    this.drainState.end();
    this.markAllDirty();
  }

  get draining(): boolean {
    return this.drainState.active;
  }

  /**
   * Withdraws everything, then closes every session with Cease / Administrative Shutdown
   * carrying `communication` (RFC 9003), and stops listening.
   */
  async shutdown(communication = "vipmux shutting down"): Promise<void> {
    if (this.stopped) return;
    this.drainState.withdrawn = true;
    this.markAllDirty();
    await this.flushed(5_000);
    this.stopped = true;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    for (const p of this.peersByKey.values()) this.clearPrefixHold(p);
    await Promise.all([...this.peersByKey.values()].map((p) => p.session.stop(communication)));
    await this.listenerOps;
    const l = this.listener;
    this.listener = null;
    this.listenerKeys.clear();
    await l?.close();
    this.log("info", "shutdown complete");
  }
}
