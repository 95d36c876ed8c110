// RFC 4486 maximum prefixes: the Adj-RIB-In is bounded per peer (`maxPrefixes`) and for all
// peers together (`maxPrefixesTotal`). Counting is exact (withdrawals decrement,
// re-announcements count once, IPv4 and IPv6 together); a warning is logged once per
// crossing of the warning threshold; a peer that sends more gets Cease 6/1 with AFI, SAFI
// and the bound, and stays down for restart-after before the session starts again.
import { afterEach, describe, expect, it } from "vitest";
import { AdjRibIn } from "../../../src/bgp/adj-rib-in.ts";
import type { PeerOptions, Speaker, SpeakerOptions } from "../../../src/bgp/speaker.ts";
import {
  contextWith,
  type DecodedUpdate,
  decodeUpdate,
  type Message,
} from "../../../src/bgp/wire/index.ts";
import {
  freePort,
  RawPeer,
  sleep,
  speaker,
  until,
  updateV4,
  updateV6,
  v4Prefixes,
  v6Prefixes,
} from "./helpers.ts";

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
const keep = <T extends Speaker | RawPeer>(x: T): T => {
  cleanups.push(() => (x instanceof RawPeer ? x.close() : x.shutdown("test over")));
  return x;
};

type Notification = Extract<Message, { type: "notification" }>;

/** A speaker connecting to scripted peers on 127.0.0.4, 127.0.0.5, ... */
async function setup(
  peers: Partial<PeerOptions>[],
  extra: Partial<SpeakerOptions> = {},
): Promise<{ raw: RawPeer[]; s: Speaker; logs: string[]; events: string[] }> {
  const raw: RawPeer[] = [];
  const options: PeerOptions[] = [];
  for (const [i, p] of peers.entries()) {
    const port = freePort();
    const r = keep(new RawPeer(65000 + i));
    await r.listen(`127.0.0.${4 + i}`, port);
    raw.push(r);
    options.push({ address: `127.0.0.${4 + i}`, asn: 65000 + i, port, ...p });
  }
  const logs: string[] = [];
  const events: string[] = [];
  const s = keep(
    speaker({
      asn: 65101,
      routerId: "192.0.2.2",
      listen: false,
      peers: options,
      log: (level, m) => {
        if (level === "warn") logs.push(m);
      },
      ...extra,
    }),
  );
  s.on("peer-up", (e) => events.push(`up ${e.address}`));
  s.on("peer-down", (e) => events.push(`down ${e.address}: ${e.reason}`));
  await s.start();
  for (const [i] of peers.entries())
    await until(() => events.includes(`up 127.0.0.${4 + i}`), 5000, `peer ${i} up`);
  return { raw, s, logs, events };
}

const received = (s: Speaker, addr: string) =>
  s.peers().find((p) => p.address === addr)?.prefixesReceived;
const state = (s: Speaker, addr: string) => s.peers().find((p) => p.address === addr)?.state;
const ceases = (r: RawPeer) =>
  r.of("notification").filter((n: Notification) => n.code === 6 && n.subcode === 1);
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("Adj-RIB-In counting (exact, bounded)", () => {
  const ctx = contextWith({ as4: true, maxMessageLength: 65535 });
  /** The UPDATE as the session hands it over (body after the 19-octet header). */
  const decoded = (bytes: Uint8Array): DecodedUpdate => {
    const r = decodeUpdate(bytes.subarray(19), ctx);
    if (!r.ok) throw new Error(r.error.reason);
    return r.value;
  };

  it("withdrawals decrement, re-announcements count once, both families count", () => {
    const rib = new AdjRibIn();
    expect(rib.apply(decoded(updateV4(ctx, v4Prefixes(5))), 0, 10)).toBeUndefined();
    expect(rib.apply(decoded(updateV4(ctx, v4Prefixes(5), [], 7)), 0, 10)).toBeUndefined();
    expect(rib.routes.size).toBe(5);
    expect(rib.apply(decoded(updateV6(ctx, v6Prefixes(5))), 0, 10)).toBeUndefined();
    expect(rib.routes.size).toBe(10);
    // Full: the same prefixes again are no new entries.
    expect(rib.apply(decoded(updateV6(ctx, v6Prefixes(5))), 0, 10)).toBeUndefined();
    // Withdrawals come first in an UPDATE, so they make room for its announcements.
    expect(
      rib.apply(decoded(updateV4(ctx, v4Prefixes(2, 100), v4Prefixes(2))), 0, 10),
    ).toBeUndefined();
    expect(rib.routes.size).toBe(10);
    expect(rib.apply(decoded(updateV6(ctx, [], v6Prefixes(3))), 0, 10)).toBeUndefined();
    expect(rib.routes.size).toBe(7);
  });

  it("never stores past the bound: the prefix that would pass it is refused with its AFI", () => {
    const rib = new AdjRibIn();
    // 2,000 /128s in one UPDATE against a bound of 1,000: the table stops at 1,000.
    expect(rib.apply(decoded(updateV6(ctx, v6Prefixes(2000))), 0, 1000)).toBe(2);
    expect(rib.routes.size).toBe(1000);
    const v4 = new AdjRibIn();
    expect(v4.apply(decoded(updateV4(ctx, v4Prefixes(3000))), 0, 1000)).toBe(1);
    expect(v4.routes.size).toBe(1000);
  });
});

describe("maxPrefixes on a session", () => {
  it("more than the limit: Cease 6/1 with AFI/SAFI and the limit (RFC 4486 §4)", async () => {
    const { raw, s, events } = await setup([{ maxPrefixes: { limit: 10, restartAfterMs: 5000 } }]);
    const peer = raw[0]!;
    // Exact counting on a live session: re-announcing and replacing stays at the limit.
    peer.send(updateV4(peer.ctx, v4Prefixes(6)));
    peer.send(updateV6(peer.ctx, v6Prefixes(4)));
    await until(() => received(s, "127.0.0.4") === 10, 3000, "10 routes");
    peer.send(updateV4(peer.ctx, v4Prefixes(6), [], 5));
    peer.send(updateV6(peer.ctx, v6Prefixes(2, 100), v6Prefixes(2)));
    await sleep(100);
    expect(state(s, "127.0.0.4")).toBe("Established");
    expect(received(s, "127.0.0.4")).toBe(10);
    expect(ceases(peer)).toHaveLength(0);
    // The eleventh distinct prefix (an IPv6 one) ends the session.
    peer.send(updateV6(peer.ctx, v6Prefixes(1, 200)));
    await until(() => ceases(peer).length === 1, 3000, "Cease 6/1");
    // AFI 2 (IPv6), SAFI 1 (unicast), upper bound 10.
    expect(hex(ceases(peer)[0]!.data)).toBe("0002010000000a");
    await until(() => events.some((e) => e.startsWith("down")));
    expect(events.find((e) => e.startsWith("down"))).toMatch(/max-prefixes 10/);
    expect(received(s, "127.0.0.4")).toBe(0);
  });

  it("warns at 75 % once per crossing, and again after falling below", async () => {
    const { raw, s, logs } = await setup([{ maxPrefixes: 8 }]);
    const peer = raw[0]!;
    const warnings = () => logs.filter((l) => l.includes("75% of max-prefixes 8"));
    peer.send(updateV4(peer.ctx, v4Prefixes(5)));
    await until(() => received(s, "127.0.0.4") === 5);
    expect(warnings()).toHaveLength(0);
    peer.send(updateV4(peer.ctx, v4Prefixes(1, 5))); // 6 of 8: 75 %
    await until(() => warnings().length === 1, 3000, "the warning");
    peer.send(updateV4(peer.ctx, v4Prefixes(6), [], 3)); // the same 6 again
    peer.send(updateV4(peer.ctx, v4Prefixes(1, 6))); // 7
    await until(() => received(s, "127.0.0.4") === 7);
    await sleep(50);
    expect(warnings()).toHaveLength(1);
    peer.send(updateV4(peer.ctx, [], v4Prefixes(3))); // 4: below again
    await until(() => received(s, "127.0.0.4") === 4);
    peer.send(updateV4(peer.ctx, v4Prefixes(2, 10))); // 6: a second crossing
    await until(() => warnings().length === 2, 3000, "the second warning");
    expect(warnings()[0]).toMatch(/6 prefixes received/);
    expect(state(s, "127.0.0.4")).toBe("Established");
  });

  it("stays down for restart-after (refusing the peer meanwhile), then reconnects", async () => {
    const listenPort = freePort();
    const { raw, s, events } = await setup([{ maxPrefixes: { limit: 2, restartAfterMs: 1500 } }], {
      listen: { host: "127.0.0.2", port: listenPort },
      idleHoldMs: 20,
      idleHoldMaxMs: 40,
    });
    const peer = raw[0]!;
    const connections: number[] = [];
    peer.server.on("connection", () => connections.push(Date.now()));
    peer.send(updateV4(peer.ctx, v4Prefixes(3)));
    await until(() => ceases(peer).length === 1, 3000, "Cease 6/1");
    const t0 = Date.now();
    expect(hex(ceases(peer)[0]!.data)).toBe("00010100000002");
    // The peer's own attempt during the hold-down is refused: Cease / Connection Rejected.
    const probe = new RawPeer(65000);
    probe.autoOpen = false;
    await probe.dial("127.0.0.2", listenPort, "127.0.0.4");
    await until(() => probe.of("notification").length > 0, 3000, "refusal");
    expect(probe.of("notification")[0]).toMatchObject({ code: 6, subcode: 5 });
    await probe.close();
    // Many back-off periods (20 ms) pass; no connection before restart-after.
    await sleep(1000);
    expect(connections).toHaveLength(0);
    expect(state(s, "127.0.0.4")).toBe("Idle");
    await until(() => events.filter((e) => e === "up 127.0.0.4").length === 2, 5000, "back up");
    expect(connections).toHaveLength(1);
    expect(connections[0]! - t0).toBeGreaterThanOrEqual(1400);
    // A normal session again: routes up to the limit are kept.
    peer.send(updateV4(peer.ctx, v4Prefixes(2)));
    await until(() => received(s, "127.0.0.4") === 2);
    expect(state(s, "127.0.0.4")).toBe("Established");
  });

  it("a BFD hold (peerDown) during the hold-down keeps the session down after restart-after", async () => {
    const { raw, s, events } = await setup([{ maxPrefixes: { limit: 1, restartAfterMs: 300 } }]);
    const peer = raw[0]!;
    peer.send(updateV4(peer.ctx, v4Prefixes(2)));
    await until(() => ceases(peer).length === 1, 3000, "Cease 6/1");
    s.peerDown("127.0.0.4", "BFD down");
    await sleep(600);
    expect(events.filter((e) => e === "up 127.0.0.4")).toHaveLength(1);
    s.peerStart("127.0.0.4");
    await until(() => events.filter((e) => e === "up 127.0.0.4").length === 2, 5000, "back up");
  });
});

describe("maxPrefixesTotal: all peers together", () => {
  it("the peer that would pass the total is closed with the bound it had; the others stay", async () => {
    const { raw, s, logs } = await setup(
      [{ maxPrefixes: 100 }, { maxPrefixes: { limit: 100, restartAfterMs: 5000 } }],
      { maxPrefixesTotal: 10 },
    );
    const [a, b] = [raw[0]!, raw[1]!];
    a.send(updateV4(a.ctx, v4Prefixes(6)));
    await until(() => received(s, "127.0.0.4") === 6);
    expect(logs.filter((l) => l.includes("total bound 10"))).toHaveLength(0);
    b.send(updateV6(b.ctx, v6Prefixes(2)));
    await until(() => received(s, "127.0.0.5") === 2);
    // 8 of 10: the total's warning.
    expect(logs.filter((l) => l.includes("75% of the total bound 10"))).toHaveLength(1);
    b.send(updateV6(b.ctx, v6Prefixes(3, 2)));
    await until(() => ceases(b).length === 1, 3000, "Cease 6/1 to the second peer");
    // What the first peer left of the total: 10 − 6 = 4.
    expect(hex(ceases(b)[0]!.data)).toBe("00020100000004");
    expect(ceases(a)).toHaveLength(0);
    expect(state(s, "127.0.0.4")).toBe("Established");
    expect(received(s, "127.0.0.4")).toBe(6);
    expect(received(s, "127.0.0.5")).toBe(0);
  });

  it("memory is bounded by entries: a flood of UPDATEs leaves at most the bound", async () => {
    const { raw, s } = await setup([{ maxPrefixes: { limit: 50_000, restartAfterMs: 60_000 } }], {
      maxPrefixesTotal: 20_000,
    });
    const peer = raw[0]!;
    let most = 0;
    const watch = setInterval(() => {
      most = Math.max(most, received(s, "127.0.0.4") ?? 0);
    }, 1);
    // 60,000 /32s in UPDATEs of 1,000: three times the bound.
    for (let i = 0; i < 60; i++) peer.send(updateV4(peer.ctx, v4Prefixes(1000, i * 1000)));
    await until(() => ceases(peer).length === 1, 5000, "Cease 6/1");
    clearInterval(watch);
    expect(most).toBeLessThanOrEqual(20_000);
    expect(hex(ceases(peer)[0]!.data)).toBe(`000101${(20_000).toString(16).padStart(8, "0")}`);
  });
});
