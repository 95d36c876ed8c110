// The health stream: host agents report their local DIPs' health to every MUX (Ananta's
// model) over TCP, one JSON object per line. Authentication: the MUX sends a nonce, the
// agent proves it knows its host's key (HMAC-SHA256; keys are derived per host, see
// keys.ts) and connects from the PA it claims, and every later report carries an HMAC
// over both nonces, a strictly increasing sequence number and the payload, so a third
// party — or another host — can neither mark backends up or down nor replay an old report.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { EventEmitter } from "node:events";
import net from "node:net";
import { canonicalHost } from "./keys.ts";

/** Longest line either side accepts; a longer one closes the connection ("oversize"). */
export const MAX_FRAME_BYTES = 64 * 1024;
/** Bytes a peer may send before it has authenticated: room for one hello (or challenge). */
export const MAX_HELLO_BYTES = 4 * 1024;
/** Default caps on connections that have not authenticated yet (all, and per source). */
export const MAX_UNAUTHENTICATED = 64;
export const MAX_UNAUTHENTICATED_PER_SOURCE = 8;

/** One report: backend keys ("service/dip") with their state. */
export type BackendReport = [key: string, up: boolean][];

export const hmac = (token: string, text: string) =>
  createHmac("sha256", token).update(text).digest("hex");

export function helloMac(
  token: string,
  serverNonce: string,
  host: string,
  clientNonce: string,
): string {
  return hmac(token, `hello|${serverNonce}|${host}|${clientNonce}`);
}

export function reportMac(
  token: string,
  serverNonce: string,
  clientNonce: string,
  seq: number,
  full: boolean,
  backends: BackendReport,
): string {
  return hmac(
    token,
    `health|${serverNonce}|${clientNonce}|${seq}|${full ? 1 : 0}|${JSON.stringify(backends)}`,
  );
}

function macEqual(a: unknown, b: string): boolean {
  if (typeof a !== "string" || a.length !== b.length) return false;
  return timingSafeEqual(Buffer.from(a), Buffer.from(b));
}

/**
 * Splits a TCP byte stream into lines of at most `maxLine` bytes (empty lines skipped).
 * Linear in the bytes received however they are chunked: each byte is scanned for a
 * newline once, and a partial line is kept in one buffer that grows by doubling up to
 * `maxLine`. Lines are taken one at a time (`next`), so a caller can raise `maxLine`
 * between two lines, e.g. once the peer has authenticated.
 */
export class LineFramer {
  /** Bytes scanned for newlines so far: up to the end of the last line taken. */
  scanned = 0;
  /** Bytes copied into the partial-line buffer so far (growth included). */
  copied = 0;
  /** Longest line accepted, in bytes. */
  maxLine: number;
  /** A line went over `maxLine`: close the connection; nothing more comes out. */
  oversize = false;
  /** Received, not yet scanned: queue[0] from `offset` on. */
  private readonly queue: Buffer[] = [];
  private offset = 0;
  private pending = Buffer.alloc(0);
  private pendingLen = 0;

  constructor(maxLine = MAX_FRAME_BYTES) {
    this.maxLine = maxLine;
  }

  /** Takes a chunk off the wire; lines come out of next(). */
  feed(chunk: Buffer | string): void {
    if (this.oversize || chunk.length === 0) return;
    this.queue.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
  }

  /** The next complete line, or undefined when there is none yet (or after `oversize`). */
  next(): string | undefined {
    for (;;) {
      const data = this.queue[0];
      if (this.oversize || data === undefined) return undefined;
      const start = this.offset;
      const nl = data.indexOf(0x0a, start);
      const end = nl < 0 ? data.length : nl;
      this.scanned += (nl < 0 ? end : nl + 1) - start;
      if (this.pendingLen + (end - start) > this.maxLine) {
        this.oversize = true;
        this.queue.length = 0;
        this.pending = Buffer.alloc(0);
        this.pendingLen = 0;
        return undefined;
      }
      if (nl < 0 || nl + 1 === data.length) {
        this.queue.shift();
        this.offset = 0;
      } else this.offset = nl + 1;
      if (nl < 0) {
        this.append(data, start, end);
        continue;
      }
      // A newline byte never occurs inside a multi-byte UTF-8 sequence: cutting here is safe.
      let line: string;
      if (this.pendingLen === 0) line = data.toString("utf8", start, end);
      else {
        this.append(data, start, end);
        line = this.pending.toString("utf8", 0, this.pendingLen);
        this.pendingLen = 0;
        // A connection that once sent a long line does not keep its buffer for good.
        if (this.pending.length > MAX_HELLO_BYTES) this.pending = Buffer.alloc(0);
      }
      if (line.length > 0) return line;
    }
  }

  /** feed() then next() until dry: every line complete so far. */
  push(chunk: Buffer | string): { lines: string[]; oversize: boolean } {
    this.feed(chunk);
    const lines: string[] = [];
    for (let l = this.next(); l !== undefined; l = this.next()) lines.push(l);
    return { lines, oversize: this.oversize };
  }

  private append(data: Buffer, start: number, end: number): void {
    const need = this.pendingLen + (end - start);
    if (need === this.pendingLen) return;
    if (need > this.pending.length) {
      // need <= maxLine: next() checked it.
      const size = Math.min(Math.max(need, 2 * this.pending.length, 256), this.maxLine);
      const grown = Buffer.allocUnsafe(size);
      this.pending.copy(grown, 0, 0, this.pendingLen);
      this.copied += this.pendingLen;
      this.pending = grown;
    }
    data.copy(this.pending, this.pendingLen, start, end);
    this.copied += end - start;
    this.pendingLen = need;
  }
}

export type RejectReason =
  | "bad_frame"
  | "oversize"
  | "unauthenticated"
  | "bad_mac"
  | "replay"
  | "not_owner"
  | "unknown_host"
  | "source_mismatch"
  | "key_revoked"
  /** Refused at accept: too many connections not yet authenticated (all or from one source). */
  | "unauthenticated_limit";

export interface HealthServerOptions {
  /** The keys `host` may authenticate with (current and, while rotating, next). */
  keysFor: (host: string) => readonly string[];
  /** Name sent in the challenge, for the agent's logs. */
  mux: string;
  /** Which backend keys a host (by PA) may report: only its own DIPs. */
  owns: (host: string, key: string) => boolean;
  /** Hosts that may connect at all (their PA); others are refused after hello. */
  knownHost: (host: string) => boolean;
  /** Connections not yet authenticated, in all (MAX_UNAUTHENTICATED) ... */
  maxUnauthenticated?: number;
  /** ... and from one source address (MAX_UNAUTHENTICATED_PER_SOURCE); more are refused. */
  maxUnauthenticatedPerSource?: number;
  /** Bytes a connection may send before it has authenticated (MAX_HELLO_BYTES). */
  maxHelloBytes?: number;
}

export interface HealthServerEvents {
  report: [host: string, backends: BackendReport, full: boolean];
  connected: [host: string];
  disconnected: [host: string];
  rejected: [reason: RejectReason, peer: string];
}

/** The MUX side: accepts agent connections and emits authenticated reports. */
export class HealthStreamServer extends EventEmitter<HealthServerEvents> {
  readonly server: net.Server;
  readonly rejects = new Map<RejectReason, number>();
  /** Last time each host was heard from (ms since epoch). */
  readonly lastHeard = new Map<string, number>();
  private readonly opts: HealthServerOptions;
  private readonly sockets = new Set<net.Socket>();
  /** Connections that have not authenticated yet, and how many per source address. */
  private readonly unauthenticated = new Set<net.Socket>();
  private readonly unauthenticatedBySource = new Map<string, number>();
  /** Authenticated connections: the host and the key it proved. */
  private readonly authed = new Map<net.Socket, { host: string; key: string }>();

  constructor(opts: HealthServerOptions) {
    super();
    this.opts = opts;
    this.server = net.createServer((sock) => this.accept(sock));
  }

  listen(port: number, host: string): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, host, () => resolve(this.server.address() as net.AddressInfo));
    });
  }

  /** Stops listening and drops every agent connection. */
  close(): Promise<void> {
    for (const sock of this.sockets) sock.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /**
   * After the keys changed (reload, rotation): drops every connection whose key is no
   * longer accepted, so a revoked key stops working at once, not at the next reconnect.
   */
  /**
   * Asks every authenticated agent for a full report: after a reload changed which DIPs
   * each host owns, entries dropped as not yet owned are reported again.
   */
  resync(): void {
    for (const sock of this.authed.keys()) sock.write(`${JSON.stringify({ t: "resync" })}\n`);
  }

  revalidate(): number {
    let dropped = 0;
    for (const [sock, a] of this.authed)
      if (!this.opts.keysFor(a.host).includes(a.key)) {
        this.reject("key_revoked", sock);
        dropped++;
      }
    return dropped;
  }

  private reject(reason: RejectReason, sock: net.Socket): void {
    this.count(reason);
    this.emit("rejected", reason, `${sock.remoteAddress}:${sock.remotePort}`);
    sock.destroy();
  }

  private count(reason: RejectReason): void {
    this.rejects.set(reason, (this.rejects.get(reason) ?? 0) + 1);
  }

  /** Unauthenticated connections, in all and per source address (for status and tests). */
  unauthenticatedCount(source?: string): number {
    return source === undefined
      ? this.unauthenticated.size
      : (this.unauthenticatedBySource.get(source) ?? 0);
  }

  /** Counts `sock` as unauthenticated, or refuses it when a cap is reached. */
  private admit(sock: net.Socket, source: string): boolean {
    const perSource = this.unauthenticatedBySource.get(source) ?? 0;
    if (
      this.unauthenticated.size >= (this.opts.maxUnauthenticated ?? MAX_UNAUTHENTICATED) ||
      perSource >= (this.opts.maxUnauthenticatedPerSource ?? MAX_UNAUTHENTICATED_PER_SOURCE)
    )
      return false;
    this.unauthenticated.add(sock);
    this.unauthenticatedBySource.set(source, perSource + 1);
    return true;
  }

  /** `sock` authenticated or closed: it no longer counts against the caps. */
  private settle(sock: net.Socket, source: string): void {
    if (!this.unauthenticated.delete(sock)) return;
    const n = (this.unauthenticatedBySource.get(source) ?? 1) - 1;
    if (n > 0) this.unauthenticatedBySource.set(source, n);
    else this.unauthenticatedBySource.delete(source);
  }

  private accept(sock: net.Socket): void {
    sock.on("error", () => {});
    // Connections that have not authenticated are capped in number and in bytes, so
    // anyone who can reach the port cannot hold the MUX's memory or sockets
    // (docs/security.md, "Health stream limits"). Authenticated ones do not count.
    const source = sock.remoteAddress ?? "";
    if (!this.admit(sock, source)) {
      this.reject("unauthenticated_limit", sock);
      return;
    }
    const serverNonce = randomBytes(16).toString("hex");
    // Before authentication the only line accepted is a hello: at most maxHello bytes in
    // all (empty lines included), checked per line as the framer scans.
    const maxHello = this.opts.maxHelloBytes ?? MAX_HELLO_BYTES;
    const framer = new LineFramer(maxHello);
    let host: string | undefined;
    let clientNonce = "";
    let key = "";
    let lastSeq = -1;
    this.sockets.add(sock);
    sock.setNoDelay(true);
    // An agent that does not authenticate promptly is dropped.
    const helloTimer = setTimeout(() => this.reject("unauthenticated", sock), 5000);
    sock.write(`${JSON.stringify({ t: "challenge", nonce: serverNonce, mux: this.opts.mux })}\n`);
    sock.on("data", (chunk: Buffer) => {
      framer.feed(chunk);
      for (let line = framer.next(); line !== undefined; line = framer.next()) {
        if (host === undefined && framer.scanned > maxHello) return this.reject("oversize", sock);
        let msg: Record<string, unknown>;
        try {
          msg = JSON.parse(line) as Record<string, unknown>;
        } catch {
          return this.reject("bad_frame", sock);
        }
        if (host === undefined) {
          if (msg.t !== "hello" || typeof msg.host !== "string" || typeof msg.nonce !== "string")
            return this.reject("unauthenticated", sock);
          const claimed = msg.host;
          const nonce = msg.nonce;
          const proved = this.opts
            .keysFor(claimed)
            .find((k) => macEqual(msg.mac, helloMac(k, serverNonce, claimed, nonce)));
          if (proved === undefined) return this.reject("bad_mac", sock);
          if (!this.opts.knownHost(claimed)) return this.reject("unknown_host", sock);
          // A host speaks only from its own PA: a key holder elsewhere cannot claim it.
          if (canonicalHost(sock.remoteAddress ?? "") !== canonicalHost(claimed))
            return this.reject("source_mismatch", sock);
          clearTimeout(helloTimer);
          this.settle(sock, source);
          framer.maxLine = MAX_FRAME_BYTES;
          key = proved;
          this.authed.set(sock, { host: claimed, key });
          host = msg.host;
          clientNonce = msg.nonce;
          this.lastHeard.set(host, Date.now());
          sock.write(`${JSON.stringify({ t: "welcome" })}\n`);
          this.emit("connected", host);
          continue;
        }
        if (msg.t !== "health" || typeof msg.seq !== "number" || !Array.isArray(msg.backends))
          return this.reject("bad_frame", sock);
        const backends = msg.backends as BackendReport;
        const full = msg.full === true;
        if (!macEqual(msg.mac, reportMac(key, serverNonce, clientNonce, msg.seq, full, backends)))
          return this.reject("bad_mac", sock);
        if (msg.seq <= lastSeq) return this.reject("replay", sock);
        lastSeq = msg.seq;
        for (const entry of backends) {
          if (
            !Array.isArray(entry) ||
            typeof entry[0] !== "string" ||
            typeof entry[1] !== "boolean"
          )
            return this.reject("bad_frame", sock);
        }
        // An authenticated host may still name DIPs that are not its own here: during a
        // rolling reload its config runs ahead of (or behind) this MUX's. Those entries are
        // dropped and counted; the stream, and the host's other DIPs, stay.
        let own: BackendReport = backends;
        if (!backends.every(([key]) => this.opts.owns(host!, key))) {
          own = backends.filter(([key]) => this.opts.owns(host!, key));
          this.count("not_owner");
        }
        this.lastHeard.set(host, Date.now());
        this.emit("report", host, own, full);
      }
      if (framer.oversize || (host === undefined && framer.scanned > maxHello))
        this.reject("oversize", sock);
    });
    sock.on("close", () => {
      this.sockets.delete(sock);
      this.settle(sock, source);
      this.authed.delete(sock);
      clearTimeout(helloTimer);
      if (host !== undefined) this.emit("disconnected", host);
    });
  }
}

export interface HealthClientOptions {
  /** This host's key (keys.ts). */
  key: string;
  /** This host's PA: its identity towards the MUXes, and the connection's source address. */
  host: string;
  /** Bind the connection to `host` (default true; the MUX checks the source). */
  bindSource?: boolean;
  mux: { address: string; port: number };
  heartbeatMs?: number;
  /** The current full state, sent after every (re)connect. */
  snapshot: () => BackendReport;
}

/** Why the agent closed a connection itself: what the MUX side sent broke the protocol. */
export type ClientDropReason = "oversize" | "bad_frame";

/** The agent side of one MUX connection: reconnects with back-off, sends changes at once. */
export class HealthStreamClient extends EventEmitter<{
  up: [];
  down: [reason: string];
  /** The agent closed the connection (whether or not it was up); "down" follows if it was. */
  dropped: [reason: ClientDropReason];
}> {
  /** Connections the agent closed, by reason. */
  readonly drops = new Map<ClientDropReason, number>();
  private readonly opts: HealthClientOptions;
  private sock?: net.Socket;
  private authed = false;
  private serverNonce = "";
  private clientNonce = "";
  private seq = 0;
  private stopped = false;
  private backoffMs = 200;
  private heartbeat?: NodeJS.Timeout;
  private retry?: NodeJS.Timeout;

  constructor(opts: HealthClientOptions) {
    super();
    this.opts = opts;
  }

  start(): void {
    this.connect();
  }

  get connected(): boolean {
    return this.authed;
  }

  /** Sends a change (or, with full, the whole state) now if connected. */
  send(backends: BackendReport, full = false): void {
    if (!this.authed || !this.sock) return;
    const seq = ++this.seq;
    const mac = reportMac(this.opts.key, this.serverNonce, this.clientNonce, seq, full, backends);
    this.sock.write(`${JSON.stringify({ t: "health", seq, full, backends, mac })}\n`);
  }

  stop(): void {
    this.stopped = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    if (this.retry) clearTimeout(this.retry);
    this.sock?.destroy();
  }

  private connect(): void {
    if (this.stopped) return;
    const sock = net.connect({
      host: this.opts.mux.address,
      port: this.opts.mux.port,
      ...(this.opts.bindSource === false ? {} : { localAddress: this.opts.host }),
    });
    this.sock = sock;
    this.authed = false;
    // Whatever answers at the MUX address gets the same caps as the MUX gives agents: until
    // its welcome, MAX_HELLO_BYTES in all (challenge and welcome are far smaller); then
    // lines of MAX_FRAME_BYTES.
    const framer = new LineFramer(MAX_HELLO_BYTES);
    let dropReason: ClientDropReason | undefined;
    const drop = (reason: ClientDropReason) => {
      dropReason = reason;
      this.drops.set(reason, (this.drops.get(reason) ?? 0) + 1);
      this.emit("dropped", reason);
      sock.destroy();
    };
    sock.setNoDelay(true);
    sock.on("data", (chunk: Buffer) => {
      framer.feed(chunk);
      for (let line = framer.next(); line !== undefined; line = framer.next()) {
        if (!this.authed && framer.scanned > MAX_HELLO_BYTES) return drop("oversize");
        let msg: Record<string, unknown>;
        try {
          msg = JSON.parse(line) as Record<string, unknown>;
        } catch {
          return drop("bad_frame");
        }
        if (msg.t === "challenge" && typeof msg.nonce === "string") {
          this.serverNonce = msg.nonce;
          this.clientNonce = randomBytes(16).toString("hex");
          const mac = helloMac(this.opts.key, this.serverNonce, this.opts.host, this.clientNonce);
          sock.write(
            `${JSON.stringify({ t: "hello", host: this.opts.host, nonce: this.clientNonce, mac })}\n`,
          );
        } else if (msg.t === "welcome" && !this.authed) {
          // Once per connection: a repeated welcome would start another heartbeat timer.
          this.authed = true;
          framer.maxLine = MAX_FRAME_BYTES;
          this.seq = 0;
          this.backoffMs = 200;
          this.send(this.opts.snapshot(), true);
          this.heartbeat = setInterval(() => this.send([]), this.opts.heartbeatMs ?? 1000);
          this.emit("up");
        } else if (msg.t === "resync" && this.authed) {
          // The MUX's view of what this host owns changed (its reload): the whole picture.
          this.send(this.opts.snapshot(), true);
        }
      }
      if (framer.oversize || (!this.authed && framer.scanned > MAX_HELLO_BYTES)) drop("oversize");
    });
    sock.on("error", () => {});
    sock.on("close", () => {
      const wasUp = this.authed;
      this.authed = false;
      if (this.heartbeat) clearInterval(this.heartbeat);
      if (wasUp) this.emit("down", dropReason ?? "connection closed");
      if (this.stopped) return;
      this.retry = setTimeout(() => this.connect(), this.backoffMs);
      this.backoffMs = Math.min(this.backoffMs * 2, 5000);
    });
  }
}
