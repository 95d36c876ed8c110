// TCP for BGP sessions: outgoing connections (per-peer local address, TTL for eBGP
// multihop, GTSM, TCP-MD5) and one listening socket shared by all peers. The socket options
// Node lacks (RFC 2385 TCP-MD5, RFC 5082 IP_MINTTL, IP_TTL) come from the native addon in
// `src/native/` when it is built; without it only plain TCP is available and asking for
// those options is an error, never a silent downgrade.

import net, { type AddressInfo, isIPv6 } from "node:net";

/** The part of the native addon's API (src/native/index.ts) the transport uses. */
interface NativeTcp {
  nativeAvailable(): boolean;
  connectTcp(o: {
    remote: string;
    port: number;
    local?: string;
    md5Key?: string;
    ttl?: number;
    minTtl?: number;
    timeoutMs: number;
  }): Promise<number>;
  setTcpMd5(fd: number, peerAddress: string, key: string | null): void;
  setSocketOptionInt(fd: number, level: number, name: number, value: number): void;
  socketFd(handle: net.Server | net.Socket): number;
}

let nativeModule: NativeTcp | null | undefined;

/** Loads the native addon once; null when it is not built (or not written yet). */
export async function loadNative(): Promise<NativeTcp | null> {
  if (nativeModule !== undefined) return nativeModule;
  try {
    // A computed specifier (the addon is optional at build and type-check time), with this
    // file's own extension: .ts when run from source, .js from the build.
    const ext = import.meta.url.endsWith(".ts") ? "ts" : "js";
    const spec = new URL(`../native/index.${ext}`, import.meta.url).href;
    const m = (await import(spec)) as NativeTcp;
    nativeModule = typeof m.nativeAvailable === "function" && m.nativeAvailable() ? m : null;
  } catch {
    nativeModule = null;
  }
  return nativeModule;
}

/** Linux socket option numbers (linux/in.h, linux/in6.h). */
const SOL_IP = 0;
const SOL_IPV6 = 41;
const IP_TTL = 2;
const IP_MINTTL = 21;
const IPV6_UNICAST_HOPS = 16;
const IPV6_MINHOPCOUNT = 73;

export interface ConnectOptions {
  readonly remote: string;
  readonly port: number;
  readonly local?: string;
  /** RFC 2385 key. */
  readonly md5Password?: string;
  /** Outgoing TTL / hop limit (eBGP multihop); GTSM forces 255. */
  readonly ttl?: number;
  /** RFC 5082: accept only packets with TTL >= 256 - hops. */
  readonly gtsmHops?: number;
  readonly timeoutMs: number;
}

export const needsNative = (o: {
  md5Password?: string | undefined;
  ttl?: number | undefined;
  gtsmHops?: number | undefined;
}): boolean => o.md5Password !== undefined || o.ttl !== undefined || o.gtsmHops !== undefined;

/** Opens a TCP connection to a peer; rejects on failure or timeout. */
export async function connect(o: ConnectOptions): Promise<net.Socket> {
  if (needsNative(o)) {
    const native = await loadNative();
    if (!native) throw new Error("TCP-MD5 / TTL / GTSM need the native addon, which is not built");
    const fd = await native.connectTcp({
      remote: o.remote,
      port: o.port,
      ...(o.local !== undefined ? { local: o.local } : {}),
      ...(o.md5Password !== undefined ? { md5Key: o.md5Password } : {}),
      ...(o.gtsmHops !== undefined ? { ttl: 255, minTtl: 256 - o.gtsmHops } : {}),
      ...(o.ttl !== undefined && o.gtsmHops === undefined ? { ttl: o.ttl } : {}),
      timeoutMs: o.timeoutMs,
    });
    return new net.Socket({ fd, readable: true, writable: true });
  }
  return new Promise((resolve, reject) => {
    const socket = net.connect({
      host: o.remote,
      port: o.port,
      ...(o.local !== undefined ? { localAddress: o.local } : {}),
      noDelay: true,
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`connect to ${o.remote}:${o.port} timed out after ${o.timeoutMs} ms`));
    }, o.timeoutMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.removeAllListeners("error");
      resolve(socket);
    });
    socket.once("error", (e) => {
      clearTimeout(timer);
      socket.destroy();
      reject(e);
    });
  });
}

/** Applies GTSM / TTL to an accepted socket (the listener's MD5 keys are set per peer). */
export async function secureAccepted(
  socket: net.Socket,
  o: { ttl?: number | undefined; gtsmHops?: number | undefined },
): Promise<void> {
  if (o.ttl === undefined && o.gtsmHops === undefined) return;
  const native = await loadNative();
  if (!native) throw new Error("TTL / GTSM need the native addon, which is not built");
  const fd = native.socketFd(socket);
  const v6 =
    isIPv6(socket.localAddress ?? "") && !(socket.localAddress ?? "").startsWith("::ffff:");
  const ttl = o.gtsmHops !== undefined ? 255 : o.ttl!;
  native.setSocketOptionInt(fd, v6 ? SOL_IPV6 : SOL_IP, v6 ? IPV6_UNICAST_HOPS : IP_TTL, ttl);
  if (o.gtsmHops !== undefined) {
    native.setSocketOptionInt(
      fd,
      v6 ? SOL_IPV6 : SOL_IP,
      v6 ? IPV6_MINHOPCOUNT : IP_MINTTL,
      256 - o.gtsmHops,
    );
  }
}

/** Normalizes an IPv4-mapped IPv6 address ("::ffff:192.0.2.1") to its IPv4 form. */
export const plainAddress = (a: string | undefined): string =>
  a === undefined ? "" : a.startsWith("::ffff:") && a.includes(".") ? a.slice(7) : a;

export interface Listener {
  readonly server: net.Server;
  readonly port: number;
  /**
   * Installs (key) or removes (null) the RFC 2385 key for one peer address on the listening
   * socket. Connections accepted later inherit the keys the listener has at their SYN; a
   * session already accepted keeps the key it was accepted with.
   */
  setMd5(peerAddress: string, key: string | null): Promise<void>;
  close(): Promise<void>;
}

/** Listens on `host:port` (dual-stack `::` by default) and hands each socket to `onSocket`. */
export function listen(
  host: string | undefined,
  port: number,
  onSocket: (s: net.Socket) => void,
): Promise<Listener> {
  return new Promise((resolve, reject) => {
    const server = net.createServer({ noDelay: true, pauseOnConnect: true }, onSocket);
    server.once("error", reject);
    server.listen({ host: host ?? "::", port, ipv6Only: false }, () => {
      server.removeListener("error", reject);
      server.on("error", () => {});
      resolve({
        server,
        port: (server.address() as AddressInfo).port,
        setMd5: async (peerAddress, key) => {
          const native = await loadNative();
          if (!native) throw new Error("TCP-MD5 needs the native addon, which is not built");
          // TCP_MD5SIG with a zero-length key deletes the peer's key (the addon does that
          // for null).
          native.setTcpMd5(native.socketFd(server), peerAddress, key);
        },
        close: () => new Promise((r) => server.close(() => r())),
      });
    });
  });
}
