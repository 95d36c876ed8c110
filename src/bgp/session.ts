// The I/O edge of one BGP peer: sockets and one OS timer per connection, executing what
// the sans-IO FSM (fsm.ts) decides. A session has a main connection and, during a
// collision (RFC 4271 §6.8), a second one accepted from the peer; the loser is closed with
// Cease / Connection Collision Resolution and exactly one session remains.

import type net from "node:net";
import {
  collisionSurvivor,
  expiredTimers,
  type FsmAction,
  type FsmConfig,
  type FsmEvent,
  type FsmState,
  type FsmStateName,
  initialFsmState,
  nextDeadline,
  step,
} from "./fsm.ts";
import { connect, plainAddress, secureAccepted } from "./transport.ts";
import { CeaseSubcode, ErrorCode, MessageType, OpenSubcode } from "./wire/constants.ts";
import { type CodecContext, defaultContext } from "./wire/context.ts";
import { Framer } from "./wire/framer.ts";
import { decodeFrame, encodeMessage, KEEPALIVE } from "./wire/message.ts";
import { encodeNotification, formatNotification } from "./wire/notification.ts";
import type { Negotiated, Open } from "./wire/open.ts";
import { encodeOpen } from "./wire/open.ts";
import type { RouteRefresh } from "./wire/route-refresh.ts";
import type { DecodedUpdate } from "./wire/update.ts";

export interface SessionConfig {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly localAddress?: string | undefined;
  readonly passive: boolean;
  readonly md5Password?: string | undefined;
  /** eBGP multihop: outgoing TTL. */
  readonly ttl?: number | undefined;
  /** GTSM (RFC 5082): the peer is this many hops away; TTL 255 out, 256 − hops minimum in. */
  readonly gtsmHops?: number | undefined;
  readonly connectTimeoutMs: number;
  /** RFC 9687 send hold: a peer that reads nothing for this long is dropped. */
  readonly sendHoldMs: number;
  readonly fsm: FsmConfig;
}

export interface EstablishedInfo {
  readonly negotiated: Negotiated;
  readonly peerOpen: Open;
  readonly localAddress: string;
  readonly remoteAddress: string;
}

export interface SessionHandlers {
  established(info: EstablishedInfo): void;
  /** The Established session ended (routes learned from it are gone). */
  down(reason: string): void;
  update(u: DecodedUpdate): void;
  routeRefresh(r: RouteRefresh): void;
  /** The socket drained below its buffer: more UPDATEs may be written. */
  writable(): void;
  state(from: FsmStateName, to: FsmStateName): void;
  log(level: "debug" | "info" | "warn", msg: string): void;
}

export interface SessionCounters {
  messagesIn: number;
  messagesOut: number;
  updatesIn: number;
  updatesOut: number;
  notificationsIn: number;
  notificationsOut: number;
  routeRefreshIn: number;
  connectAttempts: number;
  established: number;
}

class Conn {
  socket: net.Socket | null = null;
  fsm: FsmState = initialFsmState();
  timer: NodeJS.Timeout | null = null;
  framer = new Framer();
  rx: CodecContext = defaultContext;
  tx: CodecContext = defaultContext;
  /** Incremented whenever the socket is dropped, so late connect results are ignored. */
  generation = 0;
  blockedSinceMs: number | null = null;
  readonly direction: "outgoing" | "incoming";
  constructor(direction: "outgoing" | "incoming") {
    this.direction = direction;
  }
}

const now = () => performance.now();

export class Session {
  readonly config: SessionConfig;
  readonly counters: SessionCounters = {
    messagesIn: 0,
    messagesOut: 0,
    updatesIn: 0,
    updatesOut: 0,
    notificationsIn: 0,
    notificationsOut: 0,
    routeRefreshIn: 0,
    connectAttempts: 0,
    established: 0,
  };
  lastError = "";
  establishedInfo: EstablishedInfo | null = null;
  private main = new Conn("outgoing");
  private extra: Conn | null = null;
  private readonly handlers: SessionHandlers;
  private readonly rng: () => number;
  private housekeeping: NodeJS.Timeout | null = null;
  private closedWaiters: (() => void)[] = [];

  constructor(config: SessionConfig, handlers: SessionHandlers, rng: () => number = Math.random) {
    this.config = config;
    this.handlers = handlers;
    this.rng = rng;
  }

  get state(): FsmStateName {
    return this.main.fsm.name;
  }

  get fsmState(): FsmState {
    return this.main.fsm;
  }

  /** Codec context for what we send (valid when Established). */
  get tx(): CodecContext {
    return this.main.tx;
  }

  /** Bytes queued in the socket and not yet taken by the kernel. */
  get writableBytes(): number {
    return this.main.socket?.writableLength ?? 0;
  }

  /** AutomaticStart: connect (or wait, when passive) and restart by itself after failures. */
  start(): void {
    if (!this.housekeeping) {
      this.housekeeping = setInterval(() => this.checkSendHold(), 1000);
      this.housekeeping.unref();
    }
    this.feed(this.main, { type: "AutomaticStart", passive: this.config.passive });
  }

  /** ManualStop: Cease / Administrative Shutdown with an RFC 9003 communication. */
  stop(communication?: string): Promise<void> {
    if (this.housekeeping) clearInterval(this.housekeeping);
    this.housekeeping = null;
    const done = new Promise<void>((resolve) => {
      if (!this.main.socket && !this.extra?.socket) resolve();
      else this.closedWaiters.push(resolve);
    });
    if (this.extra) this.feed(this.extra, { type: "ManualStop" });
    this.feed(this.main, {
      type: "ManualStop",
      ...(communication !== undefined ? { communication } : {}),
    });
    this.clearTimer(this.main);
    return Promise.race([done, new Promise<void>((r) => setTimeout(r, 3000).unref())]);
  }

  /**
   * AutomaticStop with a Cease subcode and its data (e.g. RFC 4486 maximum prefixes).
   * `autoRestart: false` keeps the session in Idle, refusing the peer's connections, until
   * the next `start()`.
   */
  automaticStop(
    subcode: number,
    reason: string,
    o: { data?: Uint8Array; autoRestart?: boolean } = {},
  ): void {
    const event = { type: "AutomaticStop", subcode, reason, ...o } as const;
    if (this.extra) this.feed(this.extra, event);
    this.feed(this.main, event);
  }

  /** Writes complete messages (UPDATEs, ROUTE-REFRESH) on the Established connection. */
  send(bytes: Uint8Array, messages: number, updates: number): boolean {
    const s = this.main.socket;
    if (!s || this.main.fsm.name !== "Established") return false;
    this.counters.messagesOut += messages;
    this.counters.updatesOut += updates;
    return this.write(this.main, bytes);
  }

  /** A connection the listener accepted from this peer's address. */
  accept(socket: net.Socket): void {
    const m = this.main;
    const refuse = (subcode: number, why: string) => {
      this.handlers.log("info", `refusing connection from ${this.config.address}: ${why}`);
      socket.on("error", () => {});
      socket.end(encodeNotification({ code: ErrorCode.Cease, subcode }));
      setTimeout(() => socket.destroy(), 1000).unref();
    };
    switch (m.fsm.name) {
      case "Idle":
        if (!m.fsm.autoRestart) {
          refuse(CeaseSubcode.ConnectionRejected, "peer is stopped");
          return;
        }
        // Waiting out the back-off: the peer's own attempt is welcome. (Passive only for
        // this start: later restarts connect again unless the peer is configured passive.)
        this.feed(m, { type: "AutomaticStart", passive: true });
        m.fsm = { ...m.fsm, passive: this.config.passive };
        this.adopt(m, socket);
        return;
      case "Active":
        this.adopt(m, socket);
        return;
      case "Connect":
      // Our own attempt is in flight: keep it and run the peer's connection beside it
      // (dropping ours would make both sides drop theirs in a simultaneous open); the
      // OPENs decide which one stays (RFC 4271 §6.8).
      case "OpenSent":
      case "OpenConfirm": {
        if (this.extra) {
          refuse(CeaseSubcode.ConnectionCollisionResolution, "a second connection is already open");
          return;
        }
        const x = new Conn("incoming");
        x.fsm = { ...x.fsm, passive: true };
        this.extra = x;
        this.feed(x, { type: "AutomaticStart", passive: true });
        x.fsm = { ...x.fsm, autoRestart: false };
        this.adopt(x, socket);
        return;
      }
      case "Established":
        refuse(
          CeaseSubcode.ConnectionCollisionResolution,
          "connection collision with the Established session, which stays",
        );
        return;
    }
  }

  private adopt(c: Conn, socket: net.Socket): void {
    secureAccepted(socket, { ttl: this.config.ttl, gtsmHops: this.config.gtsmHops }).then(
      () => {
        this.attach(c, socket, c.direction === "outgoing" ? "incoming" : c.direction);
        this.feed(c, { type: "TcpConnectionConfirmed" });
        socket.resume();
      },
      (e: Error) => {
        socket.destroy();
        this.feed(c, { type: "TcpConnectionFails", reason: e.message });
      },
    );
  }

  private attach(c: Conn, socket: net.Socket, _via: string): void {
    c.socket = socket;
    c.framer = new Framer();
    c.rx = defaultContext;
    c.tx = defaultContext;
    c.blockedSinceMs = null;
    const gen = c.generation;
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => {
      if (c.generation === gen && c.socket === socket) this.onData(c, chunk);
    });
    const fail = (why: string) => {
      if (c.generation !== gen || c.socket !== socket) return;
      this.feed(c, { type: "TcpConnectionFails", reason: why });
    };
    socket.on("error", (e) => fail(`TCP error: ${e.message}`));
    socket.on("end", () => fail("peer closed the TCP connection"));
    socket.on("close", () => {
      fail("TCP connection closed");
      this.notifyClosed();
    });
    socket.on("drain", () => {
      c.blockedSinceMs = null;
      if (c === this.main) this.handlers.writable();
    });
  }

  private notifyClosed(): void {
    if (this.main.socket || this.extra?.socket) return;
    const w = this.closedWaiters;
    this.closedWaiters = [];
    for (const r of w) r();
  }

  private write(c: Conn, bytes: Uint8Array): boolean {
    const s = c.socket;
    if (!s || s.destroyed) return false;
    const ok = s.write(bytes);
    if (!ok && c.blockedSinceMs === null) c.blockedSinceMs = now();
    return ok;
  }

  private checkSendHold(): void {
    for (const c of [this.main, this.extra]) {
      if (!c?.socket || c.blockedSinceMs === null) continue;
      if (now() - c.blockedSinceMs > this.config.sendHoldMs) {
        this.feed(c, {
          type: "TcpConnectionFails",
          reason: `send hold timer expired: peer read nothing for ${Math.round(this.config.sendHoldMs / 1000)} s`,
        });
      }
    }
  }

  private onData(c: Conn, chunk: Buffer): void {
    c.framer.push(chunk);
    for (;;) {
      if (!c.socket) return; // dropped while processing
      const f = c.framer.next();
      if (f === undefined) return;
      if (!f.ok) {
        this.feed(c, { type: "BgpHeaderErr", error: f.error });
        return;
      }
      this.counters.messagesIn++;
      const d = decodeFrame(f.value, c.rx);
      if (!d.ok) {
        const error = d.error;
        this.handlers.log("warn", `malformed message from ${this.config.name}: ${error.reason}`);
        const type =
          f.value.type === MessageType.Open
            ? "BgpOpenMsgErr"
            : f.value.type === MessageType.Update
              ? "UpdateMsgErr"
              : f.value.type === MessageType.RouteRefresh
                ? "RouteRefreshMsgErr"
                : "BgpHeaderErr";
        this.feed(c, { type, error });
        return;
      }
      const m = d.value;
      switch (m.type) {
        case "open":
          this.onOpen(c, m);
          break;
        case "keepalive":
          this.feed(c, { type: "KeepAliveMsg" });
          break;
        case "notification": {
          this.counters.notificationsIn++;
          this.lastError = `received ${formatNotification(m)}`;
          this.handlers.log("warn", `${this.config.name}: ${this.lastError}`);
          const verErr =
            m.code === ErrorCode.Open && m.subcode === OpenSubcode.UnsupportedVersionNumber;
          this.feed(c, { type: verErr ? "NotifMsgVerErr" : "NotifMsg", notification: m });
          break;
        }
        case "update":
          this.counters.updatesIn++;
          this.feed(c, { type: "UpdateMsg" });
          if (c === this.main && c.fsm.name === "Established") this.handlers.update(m);
          break;
        case "route-refresh":
          this.counters.routeRefreshIn++;
          this.feed(c, { type: "RouteRefreshMsg" });
          if (c === this.main && c.fsm.name === "Established") this.handlers.routeRefresh(m);
          break;
      }
    }
  }

  /** RFC 4271 §6.8: an OPEN on one connection while the other is also opening. */
  private onOpen(c: Conn, open: Open): void {
    const other = c === this.main ? this.extra : this.main;
    if (other?.socket && other.fsm.name !== "Idle") {
      if (other.fsm.name === "Established") {
        this.feed(c, { type: "OpenCollisionDump" });
        return;
      }
      if (other.fsm.name === "OpenSent" || other.fsm.name === "OpenConfirm") {
        const keep = collisionSurvivor(this.config.fsm.bgpId, open.bgpId);
        const loser = c.direction === keep ? other : c;
        this.handlers.log(
          "info",
          `${this.config.name}: connection collision, keeping the ${keep} connection`,
        );
        this.dump(loser);
        if (loser === c) return;
      }
    }
    this.feed(c, { type: "BgpOpen", open });
  }

  private dump(loser: Conn): void {
    if (loser === this.main && this.extra) {
      // The peer's connection wins: it becomes the session, with the main one's settings.
      const winner = this.extra;
      const settings = { passive: this.main.fsm.passive, autoRestart: this.main.fsm.autoRestart };
      this.extra = null;
      this.main = winner;
      winner.fsm = { ...winner.fsm, ...settings };
      loser.fsm = { ...loser.fsm, autoRestart: false };
      this.feed(loser, { type: "OpenCollisionDump" });
      this.clearTimer(loser);
    } else {
      this.feed(loser, { type: "OpenCollisionDump" });
    }
  }

  private feed(c: Conn, event: FsmEvent): void {
    const from = c.fsm.name;
    const r = step(this.config.fsm, c.fsm, event, now(), this.rng);
    if (c === this.extra && r.state.name === "Established") this.promote();
    c.fsm = r.state;
    for (const a of r.actions) this.execute(c, a);
    if (c !== this.main && c !== this.extra) return; // a dumped connection
    // The peer's extra connection exists only for its socket: when that fails (Idle, or
    // OpenSent falling back to Active, where a passive connection waits forever) it goes.
    if (
      c === this.extra &&
      (c.fsm.name === "Idle" || (from === "OpenSent" && c.fsm.name === "Active"))
    ) {
      this.clearTimer(c);
      this.extra = null;
      return;
    }
    this.schedule(c);
    if (from !== c.fsm.name && c === this.main) {
      this.handlers.log("debug", `${this.config.name}: ${from} -> ${c.fsm.name} (${event.type})`);
      this.handlers.state(from, c.fsm.name);
    }
  }

  /**
   * The peer's connection reached Established while ours never got as far as an OPEN:
   * it becomes the session and our attempt is abandoned.
   */
  private promote(): void {
    const old = this.main;
    const x = this.extra!;
    this.extra = null;
    this.main = x;
    x.fsm = { ...x.fsm, passive: old.fsm.passive, autoRestart: old.fsm.autoRestart };
    this.clearTimer(old);
    old.fsm = { ...old.fsm, autoRestart: false };
    this.dropSocket(old);
    this.handlers.log("info", `${this.config.name}: keeping the peer's connection`);
  }

  private execute(c: Conn, a: FsmAction): void {
    switch (a.type) {
      case "connect":
        this.startConnect(c);
        break;
      case "drop-connection":
        this.dropSocket(c);
        break;
      case "send-open":
        this.countOut(c, encodeOpen(a.open));
        break;
      case "send-keepalive":
        this.countOut(c, KEEPALIVE);
        break;
      case "send-notification": {
        this.counters.notificationsOut++;
        const n = {
          code: a.code,
          subcode: a.subcode,
          ...(a.data ? { data: a.data } : {}),
          ...(a.communication !== undefined ? { communication: a.communication } : {}),
        };
        this.lastError = `sent ${formatNotification(n)}`;
        this.handlers.log("warn", `${this.config.name}: ${this.lastError}`);
        this.countOut(c, encodeMessage({ type: "notification", ...n }, c.tx));
        break;
      }
      case "established": {
        c.rx = a.negotiated.rx;
        c.tx = a.negotiated.tx;
        c.framer.maxMessageLength = a.negotiated.rx.maxMessageLength;
        this.counters.established++;
        const s = c.socket!;
        this.establishedInfo = {
          negotiated: a.negotiated,
          peerOpen: a.peerOpen,
          localAddress: plainAddress(s.localAddress),
          remoteAddress: plainAddress(s.remoteAddress),
        };
        if (c === this.main) this.handlers.established(this.establishedInfo);
        break;
      }
      case "down":
        if (!this.lastError || a.reason.startsWith("hold") || a.reason.startsWith("TCP"))
          this.lastError = a.reason;
        if (c === this.main) {
          this.handlers.log("info", `${this.config.name}: down: ${a.reason}`);
          if (a.wasEstablished) {
            this.establishedInfo = null;
            this.handlers.down(a.reason);
          }
        }
        break;
    }
  }

  private countOut(c: Conn, bytes: Uint8Array): void {
    this.counters.messagesOut++;
    this.write(c, bytes);
  }

  private startConnect(c: Conn): void {
    const gen = ++c.generation;
    this.counters.connectAttempts++;
    connect({
      remote: this.config.address,
      port: this.config.port,
      local: this.config.localAddress,
      md5Password: this.config.md5Password,
      ttl: this.config.ttl,
      gtsmHops: this.config.gtsmHops,
      timeoutMs: this.config.connectTimeoutMs,
    } as Parameters<typeof connect>[0]).then(
      (socket) => {
        if (c.generation !== gen || c.fsm.name !== "Connect" || c.socket) {
          socket.destroy(); // superseded (stopped, retried or the peer's connection won)
          return;
        }
        this.attach(c, socket, "outgoing");
        this.feed(c, { type: "TcpCrAcked" });
      },
      (e: Error) => {
        if (c.generation !== gen || c.fsm.name !== "Connect") return;
        this.lastError = `connect: ${e.message}`;
        this.feed(c, { type: "TcpConnectionFails", reason: `connect failed: ${e.message}` });
      },
    );
  }

  private dropSocket(c: Conn): void {
    c.generation++;
    const s = c.socket;
    c.socket = null;
    c.blockedSinceMs = null;
    if (!s) return;
    // Let a NOTIFICATION just written go out, but never wait on a peer that does not read.
    s.end();
    const t = setTimeout(() => s.destroy(), 1000);
    t.unref();
    s.once("close", () => {
      clearTimeout(t);
      this.notifyClosed();
    });
    if (s.destroyed) this.notifyClosed();
  }

  private clearTimer(c: Conn): void {
    if (c.timer) clearTimeout(c.timer);
    c.timer = null;
  }

  private schedule(c: Conn): void {
    this.clearTimer(c);
    const d = nextDeadline(c.fsm);
    if (d === undefined) return;
    c.timer = setTimeout(() => this.onTimer(c), Math.max(0, Math.ceil(d - now())));
  }

  private onTimer(c: Conn): void {
    c.timer = null;
    const t = now();
    const events = expiredTimers(c.fsm, t + 1);
    if (events.length === 0) {
      this.schedule(c);
      return;
    }
    // One at a time: an expiry may change the state and stop the other timers.
    this.feed(c, events[0]!);
    if (c.timer === null && (c === this.main || c === this.extra)) this.schedule(c);
  }
}
