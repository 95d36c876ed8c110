// `npm run bench:lb`: the load-balancing core's figures. Every number is measured here,
// after a warm-up, on this machine. Ratios compare with the Maglev paper (NSDI 2016, §5.3:
// table generation 1.8 ms for M = 65537 and 22.9 ms for M = 655373 with 1,000 backends).
import { PerformanceObserver } from "node:perf_hooks";
import { Forwarder, Verdict } from "../src/dataplane/forwarder.ts";
import { ConnectionTable, FlowKind } from "../src/lb/conn-table.ts";
import { Distribution, FLOW_HASH_MASK, FLOW_KEY_WORDS, flowHash } from "../src/lb/flow-hash.ts";
import { buildForwardingTable } from "../src/lb/forwarding-table.ts";
import { buildMaglevTable, MAGLEV_SIZE_DEFAULT, MAGLEV_SIZE_LARGE } from "../src/lb/maglev.ts";
import { ParsedPacket, parseIpPacket } from "../src/packet/parse.ts";

const PAPER_MS: Record<number, number> = { [MAGLEV_SIZE_DEFAULT]: 1.8, [MAGLEV_SIZE_LARGE]: 22.9 };
let sink = 0; // results feed this so the JIT cannot drop the measured work

function line(label: string, value: string, note = ""): void {
  console.log(`${label.padEnd(52)} ${value.padStart(14)}${note ? `  ${note}` : ""}`);
}

/** Runs `fn(i)` for i in [0, n) `rounds` times after one warm-up round; best ns per op. */
function nsPerOp(n: number, rounds: number, fn: (i: number) => void): number {
  for (let i = 0; i < n; i++) fn(i);
  let best = Number.POSITIVE_INFINITY;
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) fn(i);
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / n);
  }
  return best;
}

// --- Maglev table build --------------------------------------------------------------
const backends = Array.from({ length: 1000 }, (_, i) => ({
  name: `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`,
  weight: 1,
}));
console.log("Maglev table build, 1,000 backends (median of runs after 3 warm-ups)");
for (const m of [MAGLEV_SIZE_DEFAULT, MAGLEV_SIZE_LARGE]) {
  for (let i = 0; i < 3; i++) sink ^= buildMaglevTable(backends, m)[0]!;
  const runs = m === MAGLEV_SIZE_DEFAULT ? 21 : 9;
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    sink ^= buildMaglevTable(backends, m)[1]!;
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const median = times[runs >> 1]!;
  const ratio = median / PAPER_MS[m]!;
  line(
    `  build M=${m}`,
    `${median.toFixed(2)} ms`,
    `paper ${PAPER_MS[m]} ms, ratio ${ratio.toFixed(2)}x (target <= 3x) ${ratio <= 3 ? "OK" : "OVER"}`,
  );
}

// --- Maglev lookup and flow hash ---------------------------------------------------------
const table = buildMaglevTable(backends, MAGLEV_SIZE_DEFAULT);
const hashes = new Uint32Array(1 << 20);
for (let i = 0; i < hashes.length; i++) hashes[i] = Math.imul(i + 1, 0x9e3779b1) >>> 0;
const mask = hashes.length - 1;
console.log("\nPer-packet primitives (best of 5 runs)");
line(
  "  maglev lookup (table[hash % M])",
  `${nsPerOp(1 << 22, 5, (i) => {
    sink ^= table[hashes[i & mask]! % table.length]!;
  }).toFixed(2)} ns/op`,
);

function parsed(bytes: number[]): [Uint8Array, ParsedPacket] {
  const b = Uint8Array.from(bytes);
  const p = new ParsedPacket();
  if (parseIpPacket(b, b.length, p) !== 0) throw new Error("bench packet does not parse");
  return [b, p];
}
const tcp4 = (sport: number) => [
  0x45,
  0,
  0,
  40,
  0,
  0,
  0x40,
  0,
  64,
  6,
  0,
  0,
  198,
  51,
  100,
  7,
  20,
  20,
  20,
  100,
  sport >> 8,
  sport & 255,
  0,
  80,
  0,
  0,
  0,
  1,
  0,
  0,
  0,
  0,
  0x50,
  0x02,
  0xff,
  0xff,
  0,
  0,
  0,
  0,
];
function fixIpv4Checksum(b: number[], count: number): number[] {
  for (let i = 0; i < count; i++) {
    const off = i * 40;
    b[off + 10] = 0;
    b[off + 11] = 0;
    let s = 0;
    for (let j = 0; j < 20; j += 2) s += (b[off + j]! << 8) | b[off + j + 1]!;
    while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
    b[off + 10] = (~s >> 8) & 255;
    b[off + 11] = ~s & 255;
  }
  return b;
}
const [b4, p4] = parsed(fixIpv4Checksum(tcp4(40000), 1));
const v6 = [
  0x60,
  0,
  0,
  0,
  0,
  20,
  6,
  64,
  0x20,
  0x01,
  0x0d,
  0xb8,
  ...Array(11).fill(0),
  0x77,
  0x20,
  0x01,
  0x0d,
  0xb8,
  1,
  0,
  ...Array(9).fill(0),
  0x10,
  0x9c,
  0x40,
  1,
  0xbb,
  0,
  0,
  0,
  1,
  0,
  0,
  0,
  0,
  0x50,
  0x02,
  0xff,
  0xff,
  0,
  0,
  0,
  0,
];
const [b6, p6] = parsed(v6);
line(
  "  flow hash, IPv4 5-tuple",
  `${nsPerOp(1 << 22, 5, (i) => {
    p4.flowSrcPort = i & 0xffff;
    sink ^= flowHash(b4, p4, Distribution.fiveTuple, 7);
  }).toFixed(2)} ns/op`,
);
line(
  "  flow hash, IPv6 5-tuple",
  `${nsPerOp(1 << 22, 5, (i) => {
    p6.flowSrcPort = i & 0xffff;
    sink ^= flowHash(b6, p6, Distribution.fiveTuple, 7);
  }).toFixed(2)} ns/op`,
);
line(
  "  parse IPv4 TCP packet",
  `${nsPerOp(1 << 22, 5, () => {
    sink ^= parseIpPacket(b4, b4.length, p4);
  }).toFixed(2)} ns/op`,
);

// --- Connection table at 1M flows -------------------------------------------------------
const FLOWS = 1_000_000;
const keys = new Uint32Array(FLOWS * FLOW_KEY_WORDS);
const keyHashes = new Uint32Array(FLOWS);
for (let i = 0; i < FLOWS; i++) {
  const o = i * FLOW_KEY_WORDS;
  keys[o] = (0xc6336400 + (i >>> 16)) >>> 0;
  keys[o + 4] = 0x14141464;
  keys[o + 8] = (((i & 0xffff) << 16) | 80) >>> 0;
  keys[o + 9] = 6;
  keyHashes[i] = (Math.imul(i + 1, 0x9e3779b1) ^ (i >>> 7)) & FLOW_HASH_MASK; // 30-bit, as flowHash gives
}
const key = new Uint32Array(FLOW_KEY_WORDS);
const load = (i: number) => {
  const o = i * FLOW_KEY_WORDS;
  for (let w = 0; w < FLOW_KEY_WORDS; w++) key[w] = keys[o + w]!;
};
console.log(
  `\nConnection table, ${FLOWS.toLocaleString("en")} flows (capacity 1M, untrusted quota = capacity)`,
);
let insertNs = Number.POSITIVE_INFINITY;
let conn = new ConnectionTable({ capacity: FLOWS, untrustedQuota: FLOWS });
for (let round = 0; round < 3; round++) {
  conn = new ConnectionTable({ capacity: FLOWS, untrustedQuota: FLOWS });
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < FLOWS; i++) {
    load(i);
    if (conn.insert(keyHashes[i]!, key, i & 1023, FlowKind.tcp, 0) < 0)
      throw new Error("insert failed");
  }
  insertNs = Math.min(insertNs, Number(process.hrtime.bigint() - t0) / FLOWS);
}
line("  insert (table filling 0 -> 1M)", `${insertNs.toFixed(1)} ns/op`);
const hitNs = nsPerOp(FLOWS, 3, (i) => {
  load(i);
  sink ^= conn.find(keyHashes[i]!, key, 1);
});
line("  lookup, hit (table full)", `${hitNs.toFixed(1)} ns/op`);
const missNs = nsPerOp(FLOWS, 3, (i) => {
  load(i);
  key[1] = 1; // never inserted
  sink ^= conn.find(keyHashes[i]! ^ 0x5a5a5a5a, key, 1);
});
line("  lookup, miss (table full)", `${missNs.toFixed(1)} ns/op`);
line(
  "  memory per flow",
  `${(conn.bytes / FLOWS).toFixed(1)} B/flow`,
  `(${(conn.bytes / 2 ** 20).toFixed(0)} MiB for 1M, load <= 75%)`,
);

// --- Forwarder --------------------------------------------------------------------------
const model = {
  services: [
    {
      name: "web",
      vip: "20.20.20.100",
      ports: [{ protocol: "tcp" as const, port: 80 }],
      vni: 100,
      backends: Array.from({ length: 100 }, (_, i) => ({
        dip: `10.10.${i >> 8}.${i & 255}`,
        host: `192.168.30.${i + 1}`,
      })),
    },
  ],
};
const built = buildForwardingTable(model);
if (!built.ok) throw new Error(built.error.join("\n"));
const fwd = new Forwarder({
  localV4: "192.168.1.2",
  innerDstMac: "02:00:00:00:01:00",
  innerSrcMac: "02:00:00:00:00:01",
});
fwd.setTable(built.value);
const PKTS = 4096;
const pool = fixIpv4Checksum(Array.from({ length: PKTS }, (_, i) => tcp4(1024 + i)).flat(), PKTS);
const packets = Array.from({ length: PKTS }, (_, i) =>
  Uint8Array.from(pool.slice(i * 40, i * 40 + 40)),
);
let gcs = 0;
const obs = new PerformanceObserver((list) => {
  gcs += list.getEntries().length;
});
console.log("\nForwarder (IPv4 TCP, 100 backends, 4,096 flows in the connection table)");
const fwdNs = nsPerOp(1 << 21, 5, (i) => {
  const pkt = packets[i & (PKTS - 1)]!;
  if (fwd.forward(pkt, 40, 1000) !== Verdict.forward) throw new Error("dropped");
  sink ^= fwd.outLength;
});
obs.observe({ entryTypes: ["gc"] });
const heap0 = process.memoryUsage().heapUsed;
const N = 1 << 22;
const t0 = process.hrtime.bigint();
for (let i = 0; i < N; i++) sink ^= fwd.forward(packets[i & (PKTS - 1)]!, 40, 2000);
const steadyNs = Number(process.hrtime.bigint() - t0) / N;
const heapDelta = process.memoryUsage().heapUsed - heap0;
await new Promise((r) => setTimeout(r, 50));
obs.disconnect();
line(
  "  forward (parse, conn lookup, Maglev, VXLAN encap)",
  `${fwdNs.toFixed(1)} ns/packet`,
  `${(1000 / fwdNs).toFixed(2)} Mpps on one core`,
);
line(
  `  allocation check over ${N.toLocaleString("en")} packets`,
  `${gcs} GCs`,
  `heap delta ${(heapDelta / 1024).toFixed(0)} KiB, ${steadyNs.toFixed(1)} ns/packet`,
);

// A full table: 1M established flows, packets drawn at random among them. Each packet is
// written into one buffer first (source address and port, IPv4 checksum): that rewrite,
// about 10 ns, is included.
const big = new Forwarder({
  localV4: "192.168.1.2",
  innerDstMac: "02:00:00:00:01:00",
  innerSrcMac: "02:00:00:00:00:01",
  conn: { capacity: 1_100_000 },
});
big.setTable(built.value);
const pb = Uint8Array.from(fixIpv4Checksum(tcp4(1), 1));
const setFlow = (i: number) => {
  pb[20] = (i >>> 8) & 0xff;
  pb[21] = i & 0xff;
  pb[14] = 100 + ((i >>> 16) & 0x3f);
  pb[10] = 0;
  pb[11] = 0;
  let s = 0;
  for (let j = 0; j < 20; j += 2) s += (pb[j]! << 8) | pb[j + 1]!;
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  pb[10] = (~s >>> 8) & 0xff;
  pb[11] = ~s & 0xff;
};
const FLOWS_FWD = 1_000_000;
for (let i = 0; i < FLOWS_FWD; i++) {
  setFlow(i);
  big.forward(pb, 40, 0); // SYN: untrusted entry
  pb[33] = 0x10;
  big.forward(pb, 40, 1); // ACK: established
  pb[33] = 0x02;
}
pb[33] = 0x10;
const bigNs = nsPerOp(1 << 21, 5, (i) => {
  setFlow((Math.imul(i, 2654435761) >>> 0) % FLOWS_FWD);
  sink ^= big.forward(pb, 40, 2);
});
line(
  `  forward, ${(big.conn.size / 1e6).toFixed(2)}M flows in the table, random flow order`,
  `${bigNs.toFixed(1)} ns/packet`,
  `${(1000 / bigNs).toFixed(2)} Mpps on one core`,
);
// Second chance: after a table change (a backend added), mid-flow packets of flows this
// MUX has no entry for (what it gets after another MUX failed) look up the previous table
// too. Same packets, same tables, with and without it; the tracked path does not run it.
console.log("\nSecond chance (IPv4 TCP ACKs of 4,096 flows without an entry, backend added)");
const grown = buildForwardingTable(
  {
    services: [
      {
        ...model.services[0]!,
        backends: [...model.services[0]!.backends, { dip: "10.10.1.0", host: "192.168.31.1" }],
      },
    ],
  },
  built.value,
);
if (!grown.ok) throw new Error(grown.error.join("\n"));
const acks = packets.map((p) => {
  const a = Uint8Array.from(p);
  a[33] = 0x10;
  return a;
});
const untracked = (secondChanceMs: number) => {
  const f = new Forwarder({
    localV4: "192.168.1.2",
    innerDstMac: "02:00:00:00:01:00",
    innerSrcMac: "02:00:00:00:00:01",
    secondChanceMs,
  });
  f.setTable(built.value);
  f.setTable(grown.value);
  return f;
};
const scOff = untracked(0);
const scOn = untracked(600_000);
const ackNs = (f: Forwarder) =>
  nsPerOp(1 << 21, 5, (i) => {
    if (f.forward(acks[i & (PKTS - 1)]!, 40, 1000) !== Verdict.forward) throw new Error("dropped");
    sink ^= f.outLength;
  });
const offNs = ackNs(scOff);
const onNs = ackNs(scOn);
line("  forward, second chance off", `${offNs.toFixed(1)} ns/packet`);
line(
  "  forward, second chance on (previous table looked up)",
  `${onNs.toFixed(1)} ns/packet`,
  `${(onNs / offNs).toFixed(2)}x; ${scOn.secondChanceHints.toLocaleString("en")} packets named an earlier owner`,
);
const kept = built.value.services.reduce(
  (n, s) => n + s.maglev.byteLength + s.maglevBackends.byteLength,
  0,
);
line(
  "  kept for it: the previous table's Maglev arrays",
  `${(kept / 1024).toFixed(0)} KiB`,
  "per table change, for the grace period; no per-flow state (the same at 1M flows)",
);
if (sink === 42) console.log("");
