// Run by allocation.test.ts as `node --expose-gc alloc-child.ts`: forwards a mix of packets
// in rounds and prints how many heap bytes each round allocated. A round's allocation is
// counted with V8's GC profiler: heap in use at its end minus at its start, plus what every
// garbage collection during the round freed. So collected garbage counts too, and the
// figure depends on what the code allocates, not on when or how often the collector runs,
// nor on how busy the machine is. Rounds go on until the optimising compiler has caught up
// (on a loaded machine it takes longer): a forwarder that allocates per packet allocates in
// every round, one that does not allocates nothing once optimised.
import { GCProfiler, getHeapStatistics } from "node:v8";
import { Forwarder, Verdict } from "../../../src/dataplane/forwarder.ts";
import { buildForwardingTable } from "../../../src/lb/forwarding-table.ts";
import { buildIcmpError, buildPacket } from "../packet/packets.ts";

/** Bytes a round may allocate and still count as allocating nothing (the profiler's own). */
const CLEAN_ROUND_BYTES = 64 * 1024;
const PACKETS_PER_ROUND = 100_000;
const MIN_ROUNDS = 20;
const MAX_ROUNDS = 150;
/** Consecutive clean rounds that end the run. */
const CLEAN_STREAK = 3;

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with node --expose-gc");

const table = buildForwardingTable({
  services: [
    {
      name: "v4",
      vip: "20.20.20.100",
      ports: [{ protocol: "tcp", port: 80 }, { protocol: "udp", port: 53 }, { protocol: "icmp" }],
      vni: 1,
      backends: [
        { dip: "10.0.0.1", host: "192.168.0.1" },
        { dip: "10.0.0.2", host: "192.168.0.2" },
      ],
    },
    {
      name: "v6",
      vip: "2001:db8::10",
      ports: [{ protocol: "tcp", port: 443 }],
      vni: 2,
      backends: [{ dip: "fd00::1", host: "fd01::1" }],
    },
  ],
});
if (!table.ok) throw new Error(table.error.join());
const fwd = new Forwarder({
  localV4: "192.168.1.1",
  localV6: "fd01::2",
  innerDstMac: "02:00:00:00:00:01",
  innerSrcMac: "02:00:00:00:00:02",
});
fwd.setTable(table.value);
const packets: Uint8Array[] = [];
for (let i = 0; i < 256; i++) {
  packets.push(
    buildPacket({
      src: `198.51.100.${i}`,
      dst: "20.20.20.100",
      proto: "tcp",
      sport: 1000 + i,
      dport: 80,
      flags: i % 3 === 0 ? 0x02 : 0x10,
    }),
  );
  packets.push(
    buildPacket({
      src: `198.51.100.${i}`,
      dst: "20.20.20.100",
      proto: "udp",
      sport: 2000 + i,
      dport: 53,
    }),
  );
  packets.push(
    buildPacket({
      src: `2001:db8:1::${i.toString(16)}`,
      dst: "2001:db8::10",
      proto: "tcp",
      sport: 3000 + i,
      dport: 443,
    }),
  );
  packets.push(buildPacket({ src: `198.51.100.${i}`, dst: "20.20.20.100", proto: "icmp" }));
  packets.push(
    buildPacket({ src: `198.51.100.${i}`, dst: "20.20.20.99", proto: "tcp", sport: 1, dport: 80 }),
  ); // dropped: no service
  const quoted = buildPacket({
    src: "20.20.20.100",
    dst: `198.51.100.${i}`,
    proto: "tcp",
    sport: 80,
    dport: 1000 + i,
  });
  packets.push(buildIcmpError("203.0.113.1", "20.20.20.100", 3, 4, quoted, 28, 1400));
}
let forwarded = 0;
const run = (n: number, now: number) => {
  for (let i = 0; i < n; i++) {
    const p = packets[i % packets.length]!;
    if (fwd.forward(p, p.length, now) === Verdict.forward) forwarded++;
  }
  fwd.expire(now, 64);
};

/** Heap bytes allocated while `fn` runs, garbage included. */
function allocatedDuring(fn: () => void): number {
  const profiler = new GCProfiler();
  profiler.start();
  const before = getHeapStatistics().used_heap_size;
  fn();
  const after = getHeapStatistics().used_heap_size;
  let freed = 0;
  for (const s of profiler.stop().statistics)
    freed += s.beforeGC.heapStatistics.usedHeapSize - s.afterGC.heapStatistics.usedHeapSize;
  return after - before + freed;
}

for (let r = 0; r < 10; r++) run(PACKETS_PER_ROUND, r); // warm-up
forwarded = 0;
gc();
const heapBefore = getHeapStatistics().used_heap_size;
const rounds: number[] = [];
let streak = 0;
while (rounds.length < MAX_ROUNDS && (rounds.length < MIN_ROUNDS || streak < CLEAN_STREAK)) {
  const now = 1000 + rounds.length;
  const bytes = allocatedDuring(() => run(PACKETS_PER_ROUND, now));
  rounds.push(bytes);
  streak = bytes <= CLEAN_ROUND_BYTES ? streak + 1 : 0;
}
gc();
const retainedGrowth = getHeapStatistics().used_heap_size - heapBefore;
console.log(
  JSON.stringify({
    rounds,
    cleanRoundBytes: CLEAN_ROUND_BYTES,
    cleanStreak: CLEAN_STREAK,
    packets: rounds.length * PACKETS_PER_ROUND,
    forwarded,
    retainedGrowth,
  }),
);
