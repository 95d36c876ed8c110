// The packet I/O half of the native addon (native/packet_io.c): TUN, raw IP sockets with
// sendmmsg, AF_PACKET with recvmmsg, and uv_poll readiness. Loaded with createRequire so it
// loads in any worker_thread (the addon is context-aware).
//
// packet_io.c is compiled into build/Release/vipmux_native.node (when that addon's init
// registers it) and into its own build/Release/vipmux_packet_io.node; the first that has
// the functions wins.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

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

const root = fileURLToPath(new URL("../../../", import.meta.url));
const candidates = [
  `${root}build/Release/vipmux_native.node`,
  `${root}build/Release/vipmux_packet_io.node`,
];

let cached: PacketIoAddon | undefined;

/** Loads the addon (once per thread); throws with the paths tried when it is not built. */
export function packetIo(): PacketIoAddon {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  const tried: string[] = [];
  for (const file of candidates) {
    if (!existsSync(file)) {
      tried.push(`${file} (missing)`);
      continue;
    }
    const mod = require(file) as Partial<PacketIoAddon>;
    if (typeof mod.tunOpen === "function") {
      cached = mod as PacketIoAddon;
      return cached;
    }
    tried.push(`${file} (no packet I/O functions)`);
  }
  throw new Error(
    `vipmux packet I/O addon not available; build it with \`npm exec node-gyp -- rebuild\`. Tried: ${tried.join(", ")}`,
  );
}
