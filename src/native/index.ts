// TypeScript face of the native addon (native/vipmux_native.c, built by node-gyp from the
// root binding.gyp at `npm install` into build/Release/vipmux_native.node).
//
// Everything here is safe to import when the addon is missing (not built, not Linux): the
// module loads, `nativeAvailable()` says false with `nativeLoadError()`, and every call throws
// a NativeUnavailableError. The addon is context-aware, so it also loads in worker_threads.
import type * as dgram from "node:dgram";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import type * as net from "node:net";
import { constants as osConstants } from "node:os";
import { fileURLToPath } from "node:url";

/** Shape of the raw addon exports (see native/vipmux_native.c). */
interface RawUdpHandle {
  readonly fd: number;
  readonly port: number;
  readonly address: string;
}
interface RawAddon {
  setSocketOptionInt(fd: number, level: number, name: number, value: number): void;
  getSocketOptionInt(fd: number, level: number, name: number): number;
  setTcpMd5(fd: number, peer: string, key: string | null): void;
  connectTcp(
    remote: string,
    port: number,
    local: string | null,
    md5Key: string | null,
    ttl: number,
    minTtl: number,
    timeoutMs: number,
    callback: (errno: number, fd: number) => void,
  ): void;
  setThreadNice(nice: number): number;
  udpOpen(
    address: string,
    port: number,
    ttl: number,
    onMessage: UdpMessageCallback | null,
  ): RawUdpHandle;
  udpSend(handle: RawUdpHandle, data: Uint8Array, address: string, port: number): number;
  udpClose(handle: RawUdpHandle): void;
  sdNotify(socket: string, message: string): number;
  constants: NativeConstants;
}

export interface NativeConstants {
  SOL_SOCKET: number;
  IPPROTO_IP: number;
  IPPROTO_IPV6: number;
  IPPROTO_TCP: number;
  IP_TTL: number;
  IP_MINTTL: number;
  IP_RECVTTL: number;
  IP_TOS: number;
  IPV6_UNICAST_HOPS: number;
  IPV6_MINHOPCOUNT: number;
  IPV6_RECVHOPLIMIT: number;
  IPV6_V6ONLY: number;
  IPV6_TCLASS: number;
  TCP_NODELAY: number;
  TCP_MD5SIG: number;
  TCP_MD5SIG_MAXKEYLEN: number;
  SO_REUSEADDR: number;
  SO_BINDTODEVICE: number;
  SO_PRIORITY: number;
}

/** (data, srcAddress, srcPort, ttl or hop limit (-1 if unknown), dstAddress, ifindex) */
export type UdpMessageCallback = (
  data: Buffer,
  srcAddress: string,
  srcPort: number,
  ttl: number,
  dstAddress: string,
  ifindex: number,
) => void;

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
/** Where node-gyp puts the addon: build/ under the package root (dist/ and src/ both work). */
export const addonPath = `${repoRoot}build/Release/vipmux_native.node`;

let addon: RawAddon | undefined;
let loadError: string | undefined;
try {
  if (process.platform !== "linux") throw new Error(`not supported on ${process.platform}`);
  if (!existsSync(addonPath))
    throw new Error(`${addonPath} not built (run npm install, or node-gyp rebuild)`);
  addon = createRequire(import.meta.url)(addonPath) as RawAddon;
} catch (e) {
  loadError = (e as Error).message;
}

export class NativeUnavailableError extends Error {
  readonly code = "ENATIVE";
  constructor() {
    super(`vipmux native addon unavailable: ${loadError ?? "unknown"}`);
    this.name = "NativeUnavailableError";
  }
}

/** True when the addon loaded; otherwise see nativeLoadError(). */
export function nativeAvailable(): boolean {
  return addon !== undefined;
}

/** Why the addon did not load, or undefined when it did. */
export function nativeLoadError(): string | undefined {
  return loadError;
}

function raw(): RawAddon {
  if (!addon) throw new NativeUnavailableError();
  return addon;
}

/** The loaded module itself: the packet I/O half reads its own functions from it. */
export function rawAddon(): object {
  return raw();
}

/** Linux values of the socket option levels and names; undefined without the addon. */
export const constants: NativeConstants | undefined = addon?.constants;

const errnoNames = new Map<number, string>(
  Object.entries(osConstants.errno).map(([name, n]) => [n, name]),
);

/** A failed system call, with the Node-style `code` ("ECONNREFUSED", "ETIMEDOUT", ...). */
export class NativeSocketError extends Error {
  readonly code: string;
  readonly errno: number;
  readonly syscall: string;
  constructor(errno: number, syscall: string, message?: string) {
    const code = errnoNames.get(errno) ?? `E${errno}`;
    super(message ?? `${syscall} failed: ${code}`);
    this.name = "NativeSocketError";
    this.code = code;
    this.errno = errno;
    this.syscall = syscall;
  }
}

// Errors thrown by the addon carry errno and syscall; give them a code name.
function wrapNative<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    const err = e as { errno?: unknown; syscall?: unknown; message?: string };
    if (typeof err.errno === "number")
      throw new NativeSocketError(err.errno, String(err.syscall ?? "native"), err.message);
    throw e;
  }
}

function checkFd(fd: number): void {
  if (!Number.isInteger(fd) || fd < 0) throw new TypeError(`bad file descriptor ${fd}`);
}

/** setsockopt(fd, level, name, &int). */
export function setSocketOptionInt(fd: number, level: number, name: number, value: number): void {
  checkFd(fd);
  const a = raw();
  wrapNative(() => a.setSocketOptionInt(fd, level, name, value));
}

/** getsockopt(fd, level, name) as an int. */
export function getSocketOptionInt(fd: number, level: number, name: number): number {
  checkFd(fd);
  const a = raw();
  return wrapNative(() => a.getSocketOptionInt(fd, level, name));
}

/**
 * Installs (key) or removes (null) the RFC 2385 TCP-MD5 key for one peer address on a socket.
 * On a listening socket it applies to connections accepted from that peer; set it before the
 * peer connects. Keys are at most 80 bytes (TCP_MD5SIG_MAXKEYLEN).
 */
export function setTcpMd5(fd: number, peerAddress: string, key: string | null): void {
  checkFd(fd);
  const a = raw();
  wrapNative(() => a.setTcpMd5(fd, peerAddress, key));
}

/** Sets the outgoing TTL (IPv4) or unicast hop limit (IPv6) of a socket. */
export function setTtl(fd: number, family: 4 | 6, ttl: number): void {
  const c = raw().constants;
  if (family === 4) setSocketOptionInt(fd, c.IPPROTO_IP, c.IP_TTL, ttl);
  else setSocketOptionInt(fd, c.IPPROTO_IPV6, c.IPV6_UNICAST_HOPS, ttl);
}

/** RFC 5082 GTSM: the kernel drops received segments with a TTL / hop limit below minTtl. */
export function setMinTtl(fd: number, family: 4 | 6, minTtl: number): void {
  const c = raw().constants;
  if (family === 4) setSocketOptionInt(fd, c.IPPROTO_IP, c.IP_MINTTL, minTtl);
  else setSocketOptionInt(fd, c.IPPROTO_IPV6, c.IPV6_MINHOPCOUNT, minTtl);
}

/**
 * Sets the nice value of the calling thread only (Linux: nice is per thread) and returns the
 * value in force. Negative values need CAP_SYS_NICE (root): NativeSocketError EACCES/EPERM.
 */
export function setThreadNice(nice: number): number {
  const a = raw();
  return wrapNative(() => a.setThreadNice(nice));
}

export interface ConnectTcpOptions {
  remote: string;
  port: number;
  /** Local address to bind before connecting (same family as remote). */
  local?: string;
  /** RFC 2385 key for the remote address, set before the SYN. */
  md5Key?: string | null;
  /** Outgoing TTL / hop limit (255 for GTSM, RFC 5082). */
  ttl?: number;
  /** Minimum received TTL / hop limit (GTSM: 255 for directly connected peers). */
  minTtl?: number;
  timeoutMs: number;
}

/**
 * Opens a non-blocking TCP connection with MD5 / TTL / minimum TTL applied before connect and
 * resolves with the connected fd once the handshake completes (uv_poll on this thread's loop:
 * works in worker_threads too). Wrap it with `new net.Socket({ fd, readable: true, writable:
 * true })`, which then owns (and closes) the fd. Rejects with a NativeSocketError whose code
 * is ECONNREFUSED, ETIMEDOUT (timeoutMs elapsed: the fd is closed), EHOSTUNREACH, ...
 */
export function connectTcp(opts: ConnectTcpOptions): Promise<number> {
  const a = raw();
  return new Promise<number>((resolve, reject) => {
    try {
      wrapNative(() =>
        a.connectTcp(
          opts.remote,
          opts.port,
          opts.local ?? null,
          opts.md5Key ?? null,
          opts.ttl ?? 0,
          opts.minTtl ?? 0,
          Math.max(1, Math.floor(opts.timeoutMs)),
          (errno, fd) => {
            if (errno === 0) resolve(fd);
            else
              reject(
                new NativeSocketError(
                  errno,
                  "connect",
                  `connect ${opts.remote}:${opts.port} failed: ${errnoNames.get(errno) ?? errno}`,
                ),
              );
          },
        ),
      );
    } catch (e) {
      reject(e);
    }
  });
}

/**
 * sd_notify(3): sends `message` ("READY=1", "WATCHDOG=1\nSTATUS=...") as one datagram to a
 * service manager's notification socket: a filesystem path, or an abstract name written with
 * a leading '@' ($NOTIFY_SOCKET's two forms). Never blocks (a full socket is EAGAIN). Throws
 * NativeSocketError (EINVAL for a name that is neither, ENOENT, ECONNREFUSED, EAGAIN, ...).
 * Returns the bytes sent. See native/sd_notify.c and src/systemd/notify.ts.
 */
export function sdNotify(socket: string, message: string): number {
  const a = raw();
  return wrapNative(() => a.sdNotify(socket, message));
}

type WithHandle = { _handle?: { fd?: unknown } | null };

/**
 * The file descriptor behind a net.Server, net.Socket or dgram.Socket (bound / listening /
 * connected). Throws with the reason when there is none yet (not bound) or it is not an fd.
 */
export function socketFd(handle: net.Server | net.Socket | dgram.Socket): number {
  let inner: { fd?: unknown } | null | undefined;
  // dgram keeps its handle behind a private state symbol (its _handle getter is deprecated,
  // DEP0112, and warns); net keeps it on _handle.
  const stateSym = Object.getOwnPropertySymbols(handle).find(
    (s) => s.description === "state symbol",
  );
  if (stateSym) {
    const state = (handle as unknown as Record<symbol, { handle?: { fd?: unknown } | null }>)[
      stateSym
    ];
    inner = state?.handle;
  } else {
    inner = (handle as unknown as WithHandle)._handle;
  }
  if (!inner)
    throw new Error("socketFd: the socket has no handle yet (bind, listen or connect it first)");
  const fd = inner.fd;
  if (typeof fd !== "number" || fd < 0)
    throw new Error(`socketFd: the handle has no file descriptor (fd=${String(fd)})`);
  return fd;
}

/**
 * A UDP socket that reports the received TTL / hop limit and destination of every packet
 * (IP_RECVTTL + IP_PKTINFO / IPV6_RECVHOPLIMIT + IPV6_RECVPKTINFO, recvmsg) and sends with a
 * fixed TTL. Used by BFD (RFC 5881 §5: TTL 255 out, 255 required in). IPv6 sockets are
 * V6ONLY. Works in worker_threads: receive callbacks run on the creating thread's loop.
 */
export class TtlUdpSocket {
  readonly address: string;
  readonly port: number;
  readonly fd: number;
  private readonly handle: RawUdpHandle;
  private closed = false;

  /** Throws NativeSocketError (EADDRINUSE, EADDRNOTAVAIL, ...) when the bind fails. */
  constructor(opts: {
    address: string;
    port: number;
    ttl: number;
    onMessage?: UdpMessageCallback;
  }) {
    const a = raw();
    this.handle = wrapNative(() =>
      a.udpOpen(opts.address, opts.port, opts.ttl, opts.onMessage ?? null),
    );
    this.address = this.handle.address;
    this.port = this.handle.port;
    this.fd = this.handle.fd;
  }

  /** Sends one datagram now (non-blocking); throws NativeSocketError on failure. */
  send(data: Uint8Array, address: string, port: number): number {
    const a = raw();
    return wrapNative(() => a.udpSend(this.handle, data, address, port));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    raw().udpClose(this.handle);
  }
}
