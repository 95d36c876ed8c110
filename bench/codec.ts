// `npm run bench:codec`: BGP wire codec throughput on a 100k-prefix table of /32s (and
// /128s): packing announcements and withdrawals into UPDATEs, and framing + decoding them
// back. Target: encoding 100k announcements in under 100 ms.

import {
  type CodecContext,
  contextWith,
  decodeFrame,
  Framer,
  type Ipv4PrefixList,
  type Ipv6PrefixList,
  type PackedUpdates,
  type PathAttributes,
  type PrefixList,
  packAnnouncements,
  packWithdrawals,
  parseIpv4,
  parseIpv6,
} from "../src/bgp/wire/index.ts";

const N = Number(process.argv[2] ?? 100_000);
const ROUNDS = 15;

function v4Table(n: number): Ipv4PrefixList {
  const addrs = new Uint32Array(n);
  for (let i = 0; i < n; i++) addrs[i] = (0x14000000 + i) >>> 0; // 20.0.0.0 upwards
  return { afi: 1, count: n, addrs, lens: new Uint8Array(n).fill(32), pathIds: null };
}

function v6Table(n: number): Ipv6PrefixList {
  const addrs = new Uint8Array(16 * n);
  for (let i = 0; i < n; i++) {
    addrs.set([0x20, 0x01, 0x0d, 0xb8], 16 * i);
    new DataView(addrs.buffer).setUint32(16 * i + 12, i);
  }
  return { afi: 2, count: n, addrs, lens: new Uint8Array(n).fill(128), pathIds: null };
}

const attrs: PathAttributes = {
  origin: 0,
  asPath: [{ type: 2, asns: [65101] }],
  nextHop: parseIpv4("10.0.1.2")!,
  communities: [(65101 << 16) | 100],
  largeCommunities: [[65101, 1, 1]],
};

/** Median and best of `ROUNDS` timed runs after warm-up. */
function time<T>(fn: () => T): { median: number; best: number; cold: number; result: T } {
  const c = performance.now();
  let result = fn();
  const cold = performance.now() - c;
  for (let i = 0; i < 5; i++) result = fn();
  const t: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const s = performance.now();
    result = fn();
    t.push(performance.now() - s);
  }
  t.sort((a, b) => a - b);
  return { median: t[Math.floor(t.length / 2)]!, best: t[0]!, cold, result };
}

function decodeAll(packed: PackedUpdates, ctx: CodecContext): number {
  const framer = new Framer(ctx.maxMessageLength, packed.buffer.length);
  framer.push(packed.buffer);
  let prefixes = 0;
  for (let f = framer.next(); f; f = framer.next()) {
    if (!f.ok) throw new Error(f.error.reason);
    const m = decodeFrame(f.value, ctx);
    if (!m.ok || m.value.type !== "update") throw new Error("decode failed");
    prefixes += m.value.nlri.count + m.value.withdrawn.count;
    prefixes +=
      (m.value.attrs.mpReach?.nlri.count ?? 0) + (m.value.attrs.mpUnreach?.withdrawn.count ?? 0);
  }
  return prefixes;
}

const rate = (n: number, ms: number) => `${(((n / ms) * 1000) / 1e6).toFixed(2)} M prefixes/s`;
const row = (
  label: string,
  n: number,
  ms: { median: number; best: number; cold: number },
  extra: string,
) =>
  console.log(
    `${label.padEnd(26)} ${ms.median.toFixed(2).padStart(7)} ms median (best ${ms.best.toFixed(2)}, first run ${ms.cold.toFixed(1)})  ${rate(n, ms.median).padStart(19)}  ${extra}`,
  );

console.log(
  `BGP wire codec, ${N} prefixes, node ${process.version}, ${ROUNDS} timed rounds after warm-up\n`,
);
let targetMet = true;
for (const max of [4096, 65535]) {
  const ctx = contextWith({ maxMessageLength: max });
  const nh6 = parseIpv6("2001:db8::1")!;
  const tables: [string, PrefixList][] = [
    ["IPv4 /32", v4Table(N)],
    ["IPv6 /128", v6Table(N)],
  ];
  console.log(`max message length ${max}${max > 4096 ? " (RFC 8654 extended messages)" : ""}`);
  for (const [name, table] of tables) {
    const enc = time(() => packAnnouncements(table, attrs, ctx, nh6));
    const p = enc.result;
    row(
      `  encode announce ${name}`,
      N,
      enc,
      `${p.messages.length} UPDATEs, ${p.buffer.length} bytes`,
    );
    if (max === 4096 && table.afi === 1 && enc.median >= 100) targetMet = false;
    const dec = time(() => decodeAll(p, ctx));
    if (dec.result !== N) throw new Error(`decoded ${dec.result} prefixes, expected ${N}`);
    row(
      `  decode announce ${name}`,
      N,
      dec,
      `${(p.buffer.length / dec.median / 1000).toFixed(0)} MB/s`,
    );
    const wenc = time(() => packWithdrawals(table, ctx));
    row(
      `  encode withdraw ${name}`,
      N,
      wenc,
      `${wenc.result.messages.length} UPDATEs, ${wenc.result.buffer.length} bytes`,
    );
    const wdec = time(() => decodeAll(wenc.result, ctx));
    row(`  decode withdraw ${name}`, N, wdec, "");
  }
  console.log("");
}
console.log(
  `target: encode ${N} IPv4 /32 announcements (4096-octet UPDATEs) in < 100 ms: ${targetMet ? "met" : "NOT met"}`,
);
