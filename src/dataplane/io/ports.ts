// Packet ports of the forwarding worker: where a batch is read from and where the VXLAN
// output goes. All run on the worker's loop; none blocks (non-blocking fds, one batch per
// readiness callback).
//
// Output, whatever the input: raw IP sockets (IPPROTO_RAW, header included) with sendmmsg.
// The forwarder writes the whole outer IPv4/IPv6 + UDP header, so the per-flow UDP source
// port (RFC 7348 §5 entropy) and the outer flow label go out exactly as computed, and the
// kernel routes the packet to the host PA (neighbour resolution, qdisc) as for any local
// packet. A UDP socket cannot vary its source port per packet without one socket per port.

import { writeFileSync } from "node:fs";
import { type PacketIoAddon, packetIo } from "./native.ts";
import type { IoOptions } from "./protocol.ts";

export interface PacketPort {
  /** Reads up to `max` packets into the arena slots; returns how many. */
  read(arena: Uint8Array, slotSize: number, lens: Int32Array, max: number): number;
  /** Sends `count` IP packets from the arena; result[0] = sent, result[1] = last errno. */
  send(
    arena: Uint8Array,
    slotSize: number,
    lens: Int32Array,
    count: number,
    result: Int32Array,
  ): void;
  /**
   * Calls `cb(0)` (on this thread's loop) whenever packets may be waiting, `cb(errno)` once
   * if the fd fails (polling then stops).
   */
  start(cb: (errno: number) => void): void;
  close(): void;
}

/** Raw IPv4 + IPv6 senders shared by the device ports. */
class RawSender {
  private readonly io: PacketIoAddon;
  readonly fd4: number;
  readonly fd6: number;
  constructor(io: PacketIoAddon, bufferBytes: number) {
    this.io = io;
    this.fd4 = io.rawOpen(4, bufferBytes);
    try {
      this.fd6 = io.rawOpen(6, bufferBytes);
    } catch (e) {
      io.closeFd(this.fd4);
      throw e;
    }
  }
  send(arena: Uint8Array, slotSize: number, lens: Int32Array, count: number, result: Int32Array) {
    if (count === 0) {
      result[0] = 0;
      result[1] = 0;
      return;
    }
    this.io.sendBatch(this.fd4, this.fd6, arena, slotSize, lens, count, result);
  }
  close() {
    this.io.closeFd(this.fd4);
    this.io.closeFd(this.fd6);
  }
}

/**
 * A device port: one fd read in batches (how, the subclass says), VXLAN out through the
 * raw sockets, readiness from a uv_poll on the fd.
 */
abstract class FdPort implements PacketPort {
  protected readonly io: PacketIoAddon;
  protected readonly fd: number;
  private readonly tx: RawSender;
  private poll: object | undefined;
  /** Takes ownership of `fd`: closed here if the sender cannot be opened. */
  constructor(io: PacketIoAddon, fd: number, bufferBytes: number, setup: () => void = () => {}) {
    this.io = io;
    this.fd = fd;
    try {
      setup();
      this.tx = new RawSender(io, bufferBytes);
    } catch (e) {
      io.closeFd(fd);
      throw e;
    }
  }
  abstract read(arena: Uint8Array, slotSize: number, lens: Int32Array, max: number): number;
  send(arena: Uint8Array, slotSize: number, lens: Int32Array, count: number, result: Int32Array) {
    this.tx.send(arena, slotSize, lens, count, result);
  }
  start(cb: (errno: number) => void): void {
    this.poll = this.io.pollStart(this.fd, cb);
  }
  close(): void {
    if (this.poll) this.io.pollStop(this.poll);
    this.poll = undefined;
    this.io.closeFd(this.fd);
    this.tx.close();
  }
}

/** TUN: the kernel routes VIP traffic into the device; one read per packet, all per batch. */
class TunPort extends FdPort {
  readonly name: string;
  constructor(name: string, mtu: number, bufferBytes: number) {
    const io = packetIo();
    const t = io.tunOpen(name, mtu);
    super(io, t.fd, bufferBytes, () => {
      // No IPv6 link-local address on the device: the kernel would otherwise send MLD
      // reports and router solicitations into it, which the forwarder can only drop.
      writeFileSync(`/proc/sys/net/ipv6/conf/${t.name}/addr_gen_mode`, "1");
      io.linkUp(t.name);
    });
    this.name = t.name;
  }
  read(arena: Uint8Array, slotSize: number, lens: Int32Array, max: number): number {
    return this.io.readBatch(this.fd, arena, slotSize, lens, max);
  }
}

/** AF_PACKET on the uplink: recvmmsg, one syscall per batch. */
class AfPacketPort extends FdPort {
  constructor(ifname: string, bufferBytes: number) {
    const io = packetIo();
    super(io, io.packetOpen(ifname, bufferBytes), bufferBytes);
  }
  read(arena: Uint8Array, slotSize: number, lens: Int32Array, max: number): number {
    return this.io.recvBatch(this.fd, arena, slotSize, lens, max);
  }
}

/**
 * No device: `push` queues packets (from `Dataplane.inject`), `send` keeps the last
 * batch's output for the caller to collect. Same batch path as the devices.
 */
export class MemoryPort implements PacketPort {
  private queue: { packets: Uint8Array; lengths: Int32Array; next: number; off: number }[] = [];
  private cb: ((errno: number) => void) | undefined;
  /** Output of the last `send`: copies of the packets. */
  sent: Uint8Array[] = [];

  push(packets: Uint8Array, lengths: Int32Array): void {
    this.queue.push({ packets, lengths, next: 0, off: 0 });
  }
  get pending(): boolean {
    return this.queue.length > 0;
  }
  read(arena: Uint8Array, slotSize: number, lens: Int32Array, max: number): number {
    let n = 0;
    while (n < max && this.queue.length > 0) {
      const q = this.queue[0]!;
      if (q.next >= q.lengths.length) {
        this.queue.shift();
        continue;
      }
      const len = q.lengths[q.next]!;
      const take = Math.min(len, slotSize);
      arena.set(q.packets.subarray(q.off, q.off + take), n * slotSize);
      lens[n] = len > slotSize ? slotSize + 1 : len;
      q.off += len;
      q.next++;
      n++;
    }
    return n;
  }
  send(arena: Uint8Array, slotSize: number, lens: Int32Array, count: number, result: Int32Array) {
    this.sent = [];
    for (let i = 0; i < count; i++)
      this.sent.push(arena.slice(i * slotSize, i * slotSize + lens[i]!));
    result[0] = count;
    result[1] = 0;
  }
  start(cb: (errno: number) => void): void {
    this.cb = cb;
  }
  /** Runs the batch callback (the worker calls it after a push). */
  kick(): void {
    this.cb?.(0);
  }
  close(): void {
    this.queue = [];
    this.cb = undefined;
  }
}

export function openPort(io: IoOptions, bufferBytes: number): PacketPort {
  switch (io.kind) {
    case "tun":
      return new TunPort(io.name, io.mtu, bufferBytes);
    case "packet":
      return new AfPacketPort(io.interface, bufferBytes);
    case "memory":
      return new MemoryPort();
  }
}
