// `npm run fuzz:codec -- [seed] [count]`: feeds random and mutated BGP messages to the
// decoder (default 1,000,000, seeded and reproducible). Asserts that no exception escapes,
// that no message takes longer than a per-message bound, and that the heap stays bounded.
// Decoded UPDATEs and OPENs are re-encoded and decoded again, which must also not throw.
// A 20k sample runs in `npm test` (test/unit/bgp/fuzz.test.ts).

import { pathToFileURL } from "node:url";
import {
  type CodecContext,
  contextWith,
  decodeFrame,
  decodeMessage,
  encodeEndOfRib,
  encodeNotification,
  encodeOpen,
  encodeRouteRefresh,
  encodeUpdate,
  Framer,
  KEEPALIVE,
  type PathAttributes,
  packAnnouncements,
  packWithdrawals,
  prefixListFromStrings,
} from "../src/bgp/wire/index.ts";

/** mulberry32: small, fast, good enough to drive mutations reproducibly. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const CONTEXTS: CodecContext[] = [
  contextWith({}),
  contextWith({ as4: false }),
  contextWith({ ibgp: true, maxMessageLength: 65535 }),
  contextWith({ addPath: { ipv4: true, ipv6: true }, extendedNextHop: true }),
  contextWith({ as4: false, addPath: { ipv4: true, ipv6: false }, ibgp: true }),
];

/** Valid messages of every type and attribute: the mutation corpus. */
function corpus(): Uint8Array[] {
  const out: Uint8Array[] = [];
  const ctx = CONTEXTS[0]!;
  const v4 = prefixListFromStrings(1, [
    "10.0.0.0/8",
    "192.0.2.1/32",
    "198.51.100.0/24",
    "0.0.0.0/0",
  ]);
  const v6 = prefixListFromStrings(2, ["2001:db8::/32", "2001:db8::1/128", "::/0"]);
  const full: PathAttributes = {
    origin: 2,
    asPath: [
      { type: 2, asns: [65001, 4200000000, 23456] },
      { type: 1, asns: [1, 2] },
    ],
    nextHop: 0x0a000001,
    med: 10,
    localPref: 100,
    atomicAggregate: true,
    aggregator: { asn: 4200000001, address: 0x0a000002 },
    communities: [0xfde80064, 0xffffff01],
    originatorId: 0x01020304,
    clusterList: [1, 2],
    extendedCommunities: [0x0002fde800000064n],
    largeCommunities: [[4200000000, 1, 2]],
    unknown: [{ flags: 0xe0, code: 99, value: Uint8Array.of(1, 2, 3) }],
  };
  for (const c of [ctx, CONTEXTS[1]!, CONTEXTS[3]!]) {
    out.push(...packAnnouncements(v4, full, c).messages.map((m) => m.slice()));
    out.push(
      ...packAnnouncements(v6, full, c, new Uint8Array(32).fill(0xfe)).messages.map((m) =>
        m.slice(),
      ),
    );
    out.push(...packWithdrawals(v4, c).messages.map((m) => m.slice()));
    out.push(...packWithdrawals(v6, c).messages.map((m) => m.slice()));
  }
  out.push(
    encodeUpdate(
      {
        withdrawn: v4,
        nlri: v4,
        attrs: {
          ...full,
          mpReach: { afi: 2, safi: 1, nextHop: new Uint8Array(16).fill(0x20), nlri: v6 },
          mpUnreach: { afi: 2, safi: 1, withdrawn: v6 },
        },
      },
      ctx,
    ),
  );
  out.push(encodeEndOfRib(1, ctx), encodeEndOfRib(2, ctx));
  out.push(
    encodeOpen({
      version: 4,
      myAs: 23456,
      holdTime: 90,
      bgpId: 0x0a000001,
      capabilities: [
        { kind: "multiprotocol", afi: 1, safi: 1 },
        { kind: "multiprotocol", afi: 2, safi: 1 },
        { kind: "route-refresh" },
        { kind: "enhanced-route-refresh" },
        { kind: "extended-message" },
        { kind: "four-octet-as", asn: 4200000000 },
        {
          kind: "graceful-restart",
          restartFlags: 8,
          restartTimeSec: 120,
          families: [{ afi: 1, safi: 1, flags: 0x80 }],
        },
        { kind: "extended-next-hop", entries: [{ afi: 1, safi: 1, nextHopAfi: 2 }] },
        { kind: "add-path", families: [{ afi: 1, safi: 1, sendReceive: 3 }] },
        { kind: "fqdn", hostname: "mux1", domain: "example.net" },
        { kind: "unknown", code: 71, value: Uint8Array.of(0, 1, 1, 0, 0, 0, 0) },
      ],
    }),
  );
  out.push(
    encodeOpen({
      version: 4,
      myAs: 65000,
      holdTime: 9,
      bgpId: 1,
      capabilities: [{ kind: "four-octet-as", asn: 65000 }],
      layout: { capsPerParam: [1], extended: true },
    }),
  );
  out.push(encodeNotification({ code: 6, subcode: 2, communication: "maintenance ✓" }));
  out.push(encodeNotification({ code: 3, subcode: 1, data: Uint8Array.of(1, 2, 3) }));
  out.push(KEEPALIVE.slice(), encodeRouteRefresh({ afi: 2, safi: 1, subtype: 1 }));
  return out;
}

const INTERESTING = [
  0, 1, 2, 3, 4, 0x0f, 0x10, 0x20, 0x40, 0x7f, 0x80, 0x90, 0xc0, 0xe0, 0xfe, 0xff,
];

/** One fuzz input: a mutated corpus message or random bytes behind a plausible header. */
function makeInput(next: () => number, seeds: Uint8Array[]): Uint8Array {
  const pick = (n: number) => Math.floor(next() * n);
  let m: Uint8Array;
  if (next() < 0.1) {
    // Random body behind a valid marker and type.
    const len = pick(next() < 0.9 ? 200 : 5000);
    m = new Uint8Array(19 + len);
    m.fill(0xff, 0, 16);
    for (let i = 19; i < m.length; i++) m[i] = pick(256);
    m[18] = 1 + pick(5);
  } else {
    m = seeds[pick(seeds.length)]!.slice();
  }
  const rounds = 1 + pick(6);
  for (let r = 0; r < rounds; r++) {
    const op = pick(7);
    const at = 19 + pick(Math.max(1, m.length - 19));
    if (op === 0 && m.length > 19) m[at] = (m[at] ?? 0) ^ (1 << pick(8));
    else if (op === 1 && m.length > 19) m[at] = INTERESTING[pick(INTERESTING.length)]!;
    else if (op === 2)
      m = m.slice(0, Math.max(19, at)); // truncate
    else if (op === 3) {
      // Insert random bytes.
      const ins = new Uint8Array(1 + pick(16)).map(() => pick(256));
      const n = new Uint8Array(m.length + ins.length);
      n.set(m.subarray(0, at));
      n.set(ins, at);
      n.set(m.subarray(at), at + ins.length);
      m = n;
    } else if (op === 4 && m.length > 21) {
      // Overwrite a 2-octet big-endian field with an interesting length.
      const v = [0, 1, 0xff, 0x100, 0xffff, m.length, m.length - 19, pick(0x10000)][pick(8)]!;
      m[at] = v >> 8;
      if (at + 1 < m.length) m[at + 1] = v & 255;
    } else if (op === 5 && m.length > 40) {
      // Duplicate a slice (repeats attributes or NLRI).
      const s = 19 + pick(m.length - 19);
      const e = Math.min(m.length, s + 1 + pick(40));
      const n = new Uint8Array(m.length + (e - s));
      n.set(m.subarray(0, e));
      n.set(m.subarray(s), e);
      m = n;
    } else if (op === 6 && m.length > 19) {
      m[at] = pick(256);
    }
  }
  if (m.length > 65535) m = m.slice(0, 65535);
  // Mostly keep the header consistent so the body decoders get exercised.
  if (next() < 0.9) {
    m[16] = m.length >> 8;
    m[17] = m.length & 255;
  }
  if (next() < 0.02) m[pick(16)] = pick(256);
  return m;
}

export interface FuzzReport {
  seed: number;
  count: number;
  failures: { index: number; error: string; hex: string }[];
  outcomes: Record<string, number>;
  maxMessageMs: number;
  /** The input that took longest, to reproduce a slow case. */
  slowest: { index: number; hex: string };
  slowMessages: number;
  elapsedMs: number;
  heapBeforeMb: number;
  heapAfterMb: number;
}

export function fuzz(seed: number, count: number, perMessageBoundMs = 50): FuzzReport {
  const next = rng(seed);
  const seeds = corpus();
  const failures: FuzzReport["failures"] = [];
  const outcomes: Record<string, number> = {};
  const bump = (k: string) => {
    outcomes[k] = (outcomes[k] ?? 0) + 1;
  };
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  let maxMessageMs = 0;
  let slowMessages = 0;
  let slowest = { index: -1, hex: "" };
  const start = performance.now();
  const framer = new Framer(65535);
  for (let i = 0; i < count; i++) {
    const input = makeInput(next, seeds);
    const ctx = CONTEXTS[Math.floor(next() * CONTEXTS.length)]!;
    const t0 = performance.now();
    try {
      // Every 8th input goes through the framer in random chunks, the rest straight in.
      let r: ReturnType<typeof decodeMessage>;
      if ((i & 7) === 0) {
        const f = new Framer(ctx.maxMessageLength, 64);
        let p = 0;
        let got: ReturnType<Framer["next"]>;
        do {
          const n = 1 + Math.floor(next() * 64);
          f.push(input.subarray(p, p + n));
          p += n;
          got = f.next();
        } while (got === undefined && p < input.length);
        r =
          got === undefined
            ? decodeMessage(input, ctx)
            : got.ok
              ? decodeFrame(got.value, ctx)
              : got;
      } else {
        r = decodeMessage(input, ctx);
      }
      if (!r.ok) {
        bump(`reset ${r.error.code}/${r.error.subcode}`);
      } else {
        const v = r.value;
        if (v.type === "update") {
          bump(
            v.treatAsWithdraw
              ? "update treat-as-withdraw"
              : v.issues.length > 0
                ? "update attribute-discard"
                : "update ok",
          );
          // Whatever decoded must re-encode and decode again.
          const again = decodeMessage(
            encodeUpdate(v, contextWith({ ...ctx, maxMessageLength: 65535 })),
            contextWith({ ...ctx, maxMessageLength: 65535 }),
          );
          if (!again.ok)
            throw new Error(`re-encoded UPDATE does not decode: ${again.error.reason}`);
        } else if (v.type === "open") {
          bump("open ok");
          const again = decodeMessage(encodeOpen(v), ctx);
          if (!again.ok) throw new Error(`re-encoded OPEN does not decode: ${again.error.reason}`);
        } else {
          bump(`${v.type} ok`);
        }
      }
    } catch (e) {
      if (failures.length < 20)
        failures.push({
          index: i,
          error: String((e as Error).stack ?? e),
          hex: Buffer.from(input).toString("hex"),
        });
      else failures.length++;
    }
    let dt = performance.now() - t0;
    if (dt > perMessageBoundMs) {
      // A GC pause or JIT deopt can land on any message: re-time the input before calling
      // it a hang, and keep the fastest of three runs.
      for (let k = 0; k < 3; k++) {
        const t1 = performance.now();
        try {
          decodeMessage(input, ctx);
        } catch {}
        dt = Math.min(dt, performance.now() - t1);
      }
    }
    if (dt > maxMessageMs) {
      maxMessageMs = dt;
      slowest = { index: i, hex: Buffer.from(input).toString("hex") };
    }
    if (dt > perMessageBoundMs) slowMessages++;
  }
  framer.push(new Uint8Array(0));
  const elapsedMs = performance.now() - start;
  gc?.();
  const heapAfter = process.memoryUsage().heapUsed;
  return {
    seed,
    count,
    failures,
    outcomes,
    maxMessageMs,
    slowest,
    slowMessages,
    elapsedMs,
    heapBeforeMb: heapBefore / 2 ** 20,
    heapAfterMb: heapAfter / 2 ** 20,
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const seed = Number(process.argv[2] ?? 1);
  const count = Number(process.argv[3] ?? 1_000_000);
  console.log(
    `fuzzing the BGP decoder: seed ${seed}, ${count} messages${(globalThis as { gc?: unknown }).gc ? "" : " (run with --expose-gc for exact heap figures)"}`,
  );
  const r = fuzz(seed, count);
  console.log(
    `done in ${(r.elapsedMs / 1000).toFixed(1)} s (${Math.round(count / (r.elapsedMs / 1000))} messages/s)`,
  );
  console.log(
    `slowest message ${r.maxMessageMs.toFixed(2)} ms; over the 50 ms bound: ${r.slowMessages}`,
  );
  console.log(`heap ${r.heapBeforeMb.toFixed(1)} MB before, ${r.heapAfterMb.toFixed(1)} MB after`);
  console.log("outcomes:");
  for (const [k, v] of Object.entries(r.outcomes).sort((a, b) => b[1] - a[1]))
    console.log(`  ${k.padEnd(28)} ${v}`);
  const grew = r.heapAfterMb - r.heapBeforeMb;
  if (r.failures.length > 0) {
    console.log(`FAILED: ${r.failures.length} exceptions escaped; first ones:`);
    for (const f of r.failures.slice(0, 5)) console.log(`  #${f.index}: ${f.error}\n    ${f.hex}`);
  }
  const ok = r.failures.length === 0 && r.slowMessages === 0 && grew < 64;
  console.log(
    ok
      ? "OK: no exception, no slow message, heap bounded"
      : `FAILED (heap grew ${grew.toFixed(1)} MB)`,
  );
  process.exit(ok ? 0 : 1);
}
