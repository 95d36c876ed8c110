// The protocol between the Dataplane (main thread) and its forwarding worker: the worker's
// options, the messages both ways, and the shared status words both read without messages
// (so a stalled worker is visible even though it answers nothing).
import type { FlowLookup, ForwarderCounters, ForwarderOptions } from "../forwarder.ts";
import type { TableSnapshot } from "../tables.ts";

/** Where packets come from and go to. */
export type IoOptions =
  /** VIP routes point into a TUN device; VXLAN leaves through raw IP sockets (sendmmsg). */
  | { readonly kind: "tun"; readonly name: string; readonly mtu: number }
  /** AF_PACKET on the uplink (recvmmsg); VXLAN leaves through raw IP sockets (sendmmsg). */
  | { readonly kind: "packet"; readonly interface: string }
  /** No device: packets arrive by `Dataplane.inject` (tests, offline replay). */
  | { readonly kind: "memory" };

export interface WorkerOptions {
  readonly io: IoOptions;
  readonly forwarder: ForwarderOptions;
  /** Packets per batch (≤ 256). */
  readonly batchSize: number;
  /** Bytes per packet slot: the largest inner packet plus VXLAN overhead. */
  readonly slotSize: number;
  readonly heartbeatIntervalMs: number;
  /** Socket buffers (bytes) for the raw send sockets and AF_PACKET. */
  readonly socketBufferBytes: number;
}

/** Int32 words of the status SharedArrayBuffer. */
export const StatusWord = {
  /** Version of the table the worker forwards with (0: none yet). */
  appliedVersion: 0,
  /** WorkerState. */
  state: 1,
} as const;
/** BigInt64 words (after the Int32 words): milliseconds since the epoch. */
export const StatusTime = {
  /** Last time the worker's loop ran (heartbeat tick or batch). */
  aliveAt: 2,
  /** Last batch that forwarded at least one packet. */
  forwardedAt: 3,
} as const;
export const STATUS_BYTES = 32;

export const WorkerState = { starting: 0, running: 1, stopping: 2, stopped: 3, failed: 4 } as const;
export type WorkerState = (typeof WorkerState)[keyof typeof WorkerState];

/** Batch latency histogram: bucket i counts batches that took < 2^i µs (last: the rest). */
export const LATENCY_BUCKETS = 24;

export interface IoCounters {
  /** Batches handled (readiness callbacks that found packets). */
  batches: number;
  /** Packets read from the device / socket. */
  rxPackets: number;
  rxBytes: number;
  /** VXLAN packets handed to the kernel / failed. */
  txPackets: number;
  txBytes: number;
  txFailed: number;
  /** errno of the last failed send (0: none). */
  lastTxErrno: number;
  /** Packets larger than a slot (cut by the read), dropped. */
  rxOversize: number;
  /** Read errors other than EAGAIN. */
  rxErrors: number;
  /** Latency of a batch, read to send, in log2 µs buckets. */
  batchLatencyUs: number[];
  /** Largest batch seen, in packets (mean: rxPackets / batches). */
  maxBatch: number;
}

export interface EngineCounters extends ForwarderCounters {
  tableVersion: number;
  io: IoCounters;
}

export type ToWorker =
  | { readonly type: "table"; readonly snapshot: TableSnapshot }
  | { readonly type: "counters"; readonly id: number }
  | {
      readonly type: "inject";
      readonly id: number;
      readonly packets: Uint8Array;
      readonly lengths: Int32Array;
    }
  /** What the forwarder would do with `packet` now (read-only: `Forwarder.lookup`). */
  | { readonly type: "lookup"; readonly id: number; readonly packet: Uint8Array }
  | { readonly type: "stop" };

export type FromWorker =
  | { readonly type: "ready" }
  | { readonly type: "failed"; readonly message: string }
  | {
      readonly type: "applied";
      readonly version: number;
      readonly ok: boolean;
      readonly problems: readonly string[];
    }
  | { readonly type: "counters"; readonly id: number; readonly counters: EngineCounters }
  | {
      readonly type: "injected";
      readonly id: number;
      /** One Verdict per injected packet. */
      readonly verdicts: Uint8Array;
      /** The forwarded packets, back to back, with their lengths (in order). */
      readonly out: Uint8Array;
      readonly outLengths: Int32Array;
      /** Table version the batch was forwarded with. */
      readonly version: number;
    }
  | { readonly type: "lookup"; readonly id: number; readonly result: FlowLookup }
  | { readonly type: "stopped" };

/** Bucket index of a duration in µs. */
export function latencyBucket(us: number): number {
  let b = 0;
  let limit = 1;
  while (us >= limit && b < LATENCY_BUCKETS - 1) {
    limit *= 2;
    b++;
  }
  return b;
}

/** Quantile (0..1) of a log2 histogram, as the upper bound of its bucket in µs. */
export function histogramQuantileUs(buckets: readonly number[], q: number): number {
  const total = buckets.reduce((a, b) => a + b, 0);
  if (total === 0) return 0;
  let seen = 0;
  for (let i = 0; i < buckets.length; i++) {
    seen += buckets[i]!;
    if (seen >= q * total) return 2 ** i;
  }
  return 2 ** (buckets.length - 1);
}
