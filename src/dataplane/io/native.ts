// The packet I/O half of the native addon (native/packet_io.c): TUN, raw IP sockets with
// sendmmsg, AF_PACKET with recvmmsg, and uv_poll readiness. Loaded with createRequire so it
// loads in any worker_thread (the addon is context-aware).
//
// packet_io.c is part of the one native addon (build/Release/vipmux_native.node), loaded
// by src/native/index.ts.
import { addonPath, nativeAvailable, nativeLoadError, rawAddon } from "../../native/index.ts";

export interface PacketIoAddon {
  tunOpen(name: string, mtu: number): { fd: number; name: string };
  linkUp(name: string): void;
  rawOpen(family: 4 | 6, sndbufBytes: number): number;
  packetOpen(ifname: string, rcvbufBytes: number): number;
  readBatch(fd: number, arena: Uint8Array, slotSize: number, lens: Int32Array, max: number): number;
  recvBatch(fd: number, arena: Uint8Array, slotSize: number, lens: Int32Array, max: number): number;
  sendBatch(
    fd4: number,
    fd6: number,
    arena: Uint8Array,
    slotSize: number,
    lens: Int32Array,
    count: number,
    result: Int32Array,
  ): number;
  closeFd(fd: number): void;
  pollStart(fd: number, callback: (errno: number) => void): object;
  pollStop(handle: object): void;
  readonly PACKET_IO_MAX_BATCH: number;
}

/** The native error shape (errno and syscall set by the addon). */
export interface NativeError extends Error {
  errno?: number;
  syscall?: string;
}

let cached: PacketIoAddon | undefined;

/** Loads the addon (once per thread); throws with the reason when it is not built. */
export function packetIo(): PacketIoAddon {
  if (cached) return cached;
  const mod = nativeAvailable() ? (rawAddon() as Partial<PacketIoAddon>) : undefined;
  if (typeof mod?.tunOpen !== "function")
    throw new Error(
      `vipmux packet I/O addon not available (${addonPath}: ${nativeLoadError() ?? "no packet I/O functions"}); build it with npm install or node-gyp rebuild`,
    );
  cached = mod as PacketIoAddon;
  return cached;
}
