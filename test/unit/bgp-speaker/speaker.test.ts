// The speaker over real loopback TCP: vipmux against vipmux (collisions, drain, shutdown,
// refresh) and against scripted peers (packing, coalescing, malformed input, hold expiry,
// RST, flaps). The zero-window case needs small kernel buffers: test/integration/bgp-robustness.test.ts.
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type { LocRib } from "../../../src/bgp/loc-rib.ts";
import type { Speaker } from "../../../src/bgp/speaker.ts";
import {
  encodeMessage,
  encodeRouteRefresh,
  KEEPALIVE,
  prefixesToStrings,
} from "../../../src/bgp/wire/index.ts";
import { freePort, RawPeer, sleep, speaker, until } from "./helpers.ts";

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
const keep = <T extends Speaker | RawPeer>(x: T): T => {
  cleanups.push(() => (x instanceof RawPeer ? x.close() : x.shutdown("test over")));
  return x;
};

/** Two speakers on 127.0.0.2 and 127.0.0.3 that both connect and listen. */
function pair(extraA: object = {}, extraB: object = {}) {
  const pa = freePort();
  const pb = freePort();
  const a = keep(
    speaker({
      asn: 65001,
      routerId: "1.1.1.1",
      listen: { host: "127.0.0.2", port: pa },
      nextHop6: "2001:db8::1",
      peers: [
        {
          address: "127.0.0.3",
          asn: 65002,
          port: pb,
          localAddress: "127.0.0.2",
          export: { nextHop: "192.0.2.2" },
        },
      ],
      ...extraA,
    }),
  );
  const b = keep(
    speaker({
      asn: 65002,
      routerId: "2.2.2.2",
      listen: { host: "127.0.0.3", port: pb },
      peers: [{ address: "127.0.0.2", asn: 65001, port: pa, localAddress: "127.0.0.3" }],
      ...extraB,
    }),
  );
  return { a, b };
}

const established = (s: Speaker) => s.peers()[0]?.state === "Established";

describe("speaker to speaker", () => {
  it("simultaneous open: the collision ends with one session on each side (RFC 4271 §6.8)", async () => {
    const logs: string[] = [];
    const { a, b } = pair(
      { log: (_l: string, m: string) => logs.push(`A ${m}`) },
      { log: (_l: string, m: string) => logs.push(`B ${m}`) },
    );
    await Promise.all([a.start(), b.start()]);
    await until(() => established(a) && established(b), 5000, "both Established");
    await sleep(300);
    expect(a.peers()[0]!.counters.established).toBe(1);
    expect(b.peers()[0]!.counters.established).toBe(1);
    // Both kept the same TCP connection: B's (higher identifier) outgoing one.
    expect(logs.some((l) => l.includes("connection collision, keeping the incoming"))).toBe(true);
    expect(logs.some((l) => l.includes("B") && l.includes("keeping the outgoing"))).toBe(true);
    expect(a.peers()[0]!.state).toBe("Established");
  });

  it("announces IPv4 and IPv6 (with the configured IPv6 next hop over IPv4), withdraws", async () => {
    const { a, b } = pair();
    a.announce("20.20.20.100", {
      med: 7,
      communities: ["65000:100"],
      largeCommunities: ["65001:1:2"],
    });
    a.announce("2001:db8:f::100/128");
    await Promise.all([a.start(), b.start()]);
    await until(() => b.adjRibIn("127.0.0.2").length === 2, 5000, "2 routes at B");
    const v4 = b.adjRibIn("127.0.0.2").find((r) => r.prefix === "20.20.20.100/32")!;
    expect(v4.attrs.med).toBe(7);
    expect(v4.attrs.communities).toEqual([((65000 << 16) | 100) >>> 0]);
    expect(v4.attrs.largeCommunities).toEqual([[65001, 1, 2]]);
    expect(v4.attrs.nextHop).toBe(0xc0000202);
    expect(v4.attrs.asPath).toEqual([{ type: 2, asns: [65001] }]);
    const v6 = b.adjRibIn("127.0.0.2").find((r) => r.prefix === "2001:db8:f::100/128")!;
    expect(Buffer.from(v6.attrs.mpReach!.nextHop).toString("hex")).toBe(
      "20010db8000000000000000000000001",
    );
    a.withdraw("20.20.20.100/32");
    await until(() => b.adjRibIn("127.0.0.2").length === 1, 5000, "withdrawal at B");
    expect(a.adjRibOut("127.0.0.3")).toEqual(["2001:db8:f::100/128"]);
  });

  it("drain re-announces with GRACEFUL_SHUTDOWN and the prepend, waits, then withdraws", async () => {
    const { a, b } = pair();
    a.announce("20.20.20.100/32");
    await Promise.all([a.start(), b.start()]);
    await until(() => b.adjRibIn("127.0.0.2").length === 1);
    // A wait long enough that a busy machine still sees the route during it.
    const done = a.drain({ prepend: 2, waitMs: 1500 });
    const drained = await until(() => {
      const r = b.adjRibIn("127.0.0.2")[0];
      return r?.attrs.communities?.includes(0xffff0000) ? r : undefined;
    });
    expect(drained.attrs.asPath).toEqual([{ type: 2, asns: [65001, 65001, 65001] }]);
    expect(b.adjRibIn("127.0.0.2")).toHaveLength(1); // still announced during the wait
    await done;
    await until(() => b.adjRibIn("127.0.0.2").length === 0, 2000, "withdrawn after the drain");
    expect(a.peers()[0]!.state).toBe("Established");
    a.undrain();
    await until(
      () =>
        b.adjRibIn("127.0.0.2")[0]?.attrs.communities === undefined &&
        b.adjRibIn("127.0.0.2").length === 1,
    );
  });

  it("shutdown withdraws and closes with Cease / Administrative Shutdown and the communication", async () => {
    const { a, b } = pair();
    a.announce("20.20.20.100/32");
    const downs: string[] = [];
    b.on("peer-down", (e) => downs.push(e.reason));
    await Promise.all([a.start(), b.start()]);
    await until(() => b.adjRibIn("127.0.0.2").length === 1);
    const updatesBefore = b.peers()[0]!.counters.updatesIn;
    await a.shutdown("maintenance window 42");
    await until(() => downs.length === 1);
    expect(downs[0]).toBe('peer sent NOTIFICATION 6/2 "maintenance window 42"');
    expect(b.peers()[0]!.counters.updatesIn).toBeGreaterThan(updatesBefore); // the withdrawal came first
  });

  it("route refresh and enhanced route refresh re-send the table (BoRR ... EoRR)", async () => {
    const { a, b } = pair();
    for (let i = 0; i < 300; i++) a.announce(`10.0.${i >> 8}.${i & 255}/32`);
    await Promise.all([a.start(), b.start()]);
    await until(() => b.adjRibIn("127.0.0.2").length === 300);
    const refreshes: number[] = [];
    b.on("route-refresh", (e) => refreshes.push(e.subtype));
    const before = a.peers()[0]!.counters.updatesOut;
    b.refresh();
    await until(() => refreshes.includes(2), 3000, "EoRR");
    expect(refreshes).toEqual([1, 1, 2, 2]); // BoRR and EoRR for IPv4 and IPv6
    expect(a.peers()[0]!.counters.routeRefreshIn).toBe(2);
    expect(a.peers()[0]!.counters.updatesOut).toBeGreaterThan(before);
    expect(b.adjRibIn("127.0.0.2")).toHaveLength(300);
  });

  it("refuses connections from addresses that are not configured peers", async () => {
    const { a } = pair();
    await a.start();
    const port = a.listenPort!;
    const closed = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: "127.0.0.2", port, localAddress: "127.0.0.9" });
      s.on("error", () => resolve(true));
      s.on("close", () => resolve(true));
      s.on("data", () => resolve(false));
    });
    expect(closed).toBe(true);
  });
});

describe("speaker against scripted peers", () => {
  async function withPeer(o: { hold?: number; extra?: object; peerExtra?: object } = {}) {
    const port = freePort();
    const peer = keep(new RawPeer(65000, o.hold ?? 9));
    await peer.listen("127.0.0.4", port);
    const events: string[] = [];
    const s = keep(
      speaker({
        asn: 65101,
        routerId: "192.0.2.2",
        listen: false,
        nextHop6: "2001:db8:0:1::2",
        peers: [
          {
            address: "127.0.0.4",
            asn: 65000,
            port,
            export: { nextHop: "192.0.2.2" },
            ...o.peerExtra,
          },
        ],
        ...o.extra,
      }),
    );
    s.on("peer-up", () => events.push("up"));
    s.on("peer-down", (e) => events.push(`down: ${e.reason}`));
    return { peer, s, events };
  }

  it("packs the initial table into the fewest UPDATEs, then sends End-of-RIB", async () => {
    const { peer, s } = await withPeer();
    for (let i = 0; i < 20_000; i++)
      s.announce(`10.${(i >> 16) + 1}.${(i >> 8) & 255}.${i & 255}/32`);
    await s.start();
    await until(
      () => peer.of("update").filter((u) => u.endOfRib).length === 2,
      10_000,
      "End-of-RIB",
    );
    const updates = peer.of("update").filter((u) => !u.endOfRib);
    const total = updates.reduce((n, u) => n + u.nlri.count, 0);
    expect(total).toBe(20_000);
    // Extended messages: 65535 octets minus header and attributes, 5 octets per /32.
    expect(updates.length).toBe(2);
    const eors = peer.of("update").filter((u) => u.endOfRib);
    expect(eors.map((u) => u.endOfRib!.afi).sort()).toEqual([1, 2]);
    // End-of-RIB comes after the table.
    expect(peer.received.findIndex((m) => m.type === "update" && m.endOfRib)).toBeGreaterThan(
      peer.received.findIndex((m) => m.type === "update" && m.nlri.count > 0),
    );
  });

  it("coalesces: announce then withdraw inside the window sends nothing", async () => {
    const { peer, s } = await withPeer({ extra: { coalesceMs: 50 } });
    await s.start();
    await until(() => peer.of("update").filter((u) => u.endOfRib).length === 2);
    const n = peer.of("update").length;
    for (let i = 0; i < 100; i++) {
      s.announce("20.20.20.1/32");
      s.withdraw("20.20.20.1/32");
    }
    s.announce("20.20.20.2/32", { med: 1 });
    s.announce("20.20.20.2/32", { med: 2 }); // only the last attributes go out
    // Wait for the window's UPDATE however slow the machine is, then a while longer for
    // anything else it would (wrongly) send.
    await until(() => peer.of("update").length > n, 5000, "the coalesced UPDATE");
    await sleep(200);
    const sent = peer.of("update").slice(n);
    expect(sent).toHaveLength(1);
    expect(prefixesToStrings(sent[0]!.nlri)).toEqual(["20.20.20.2/32"]);
    expect(sent[0]!.attrs.med).toBe(2);
  });

  it("per-peer export policy: prefix filter, MED, prepend, communities, explicit next hops", async () => {
    const { peer, s } = await withPeer({
      peerExtra: {
        export: {
          allow: [
            { prefix: "20.20.0.0/16", ge: 32 },
            { prefix: "2001:db8:f::/48", ge: 128 },
          ],
          med: 50,
          prepend: 1,
          communities: ["65000:7", "no-export"],
          largeCommunities: [[65101, 0, 1]],
          nextHop: "192.0.2.99",
          nextHop6: "2001:db8:99::1",
        },
      },
    });
    s.announce("20.20.1.1/32");
    s.announce("20.20.0.0/24"); // not a /32: filtered
    s.announce("30.0.0.1/32"); // outside: filtered
    s.announce("2001:db8:f::1/128");
    await s.start();
    await until(() => peer.of("update").filter((u) => u.endOfRib).length === 2);
    const ann = peer.of("update").filter((u) => !u.endOfRib);
    expect(ann).toHaveLength(2);
    const v4 = ann.find((u) => u.nlri.count > 0)!;
    expect(prefixesToStrings(v4.nlri)).toEqual(["20.20.1.1/32"]);
    expect(v4.attrs.med).toBe(50);
    expect(v4.attrs.asPath).toEqual([{ type: 2, asns: [65101, 65101] }]);
    expect(v4.attrs.communities).toEqual([((65000 << 16) | 7) >>> 0, 0xffffff01]);
    expect(v4.attrs.largeCommunities).toEqual([[65101, 0, 1]]);
    expect(v4.attrs.nextHop).toBe(0xc0000263);
    const v6 = ann.find((u) => u.attrs.mpReach)!;
    expect(prefixesToStrings(v6.attrs.mpReach!.nlri)).toEqual(["2001:db8:f::1/128"]);
    expect(Buffer.from(v6.attrs.mpReach!.nextHop).toString("hex")).toBe(
      "20010db8009900000000000000000001",
    );
  });

  it("keeps received routes and RFC 7606 outcomes in the Adj-RIB-In", async () => {
    const { peer, s } = await withPeer();
    await s.start();
    await until(() => s.peers()[0]?.state === "Established");
    const nlri = {
      afi: 1 as const,
      count: 1,
      addrs: Uint32Array.of(0x0a000001),
      lens: Uint8Array.of(32),
      pathIds: null,
    };
    const none = {
      afi: 1 as const,
      count: 0,
      addrs: new Uint32Array(0),
      lens: new Uint8Array(0),
      pathIds: null,
    };
    peer.send(
      encodeMessage(
        {
          type: "update",
          withdrawn: none,
          attrs: { origin: 0, asPath: [{ type: 2, asns: [65000] }], nextHop: 0xc0000201 },
          nlri,
        },
        peer.ctx,
      ),
    );
    await until(() => s.adjRibIn("127.0.0.4").length === 1);
    // The same route with a martian NEXT_HOP: RFC 7606 treat-as-withdraw, session stays.
    peer.send(
      encodeMessage(
        {
          type: "update",
          withdrawn: none,
          attrs: { origin: 0, asPath: [{ type: 2, asns: [65000] }], nextHop: 0x7f000001 },
          nlri,
        },
        peer.ctx,
      ),
    );
    await until(() => s.adjRibIn("127.0.0.4").length === 0);
    expect(s.adjRibInIssues("127.0.0.4")[0]).toMatchObject({
      action: "treat-as-withdraw",
      attrCode: 3,
      prefixes: ["10.0.0.1/32"],
    });
    expect(s.peers()[0]!.state).toBe("Established");
  });

  it("a malformed header gets NOTIFICATION 1/x, the session drops and comes back after back-off", async () => {
    const { peer, s, events } = await withPeer();
    await s.start();
    await until(() => events.includes("up"));
    const bad = Buffer.from(KEEPALIVE);
    bad[0] = 0; // marker not all ones
    peer.send(bad);
    await until(() => events.some((e) => e.startsWith("down")));
    expect(peer.of("notification").at(-1)).toMatchObject({ code: 1, subcode: 1 });
    await until(() => events.filter((e) => e === "up").length === 2, 5000, "reconnect");
    expect(peer.connections).toBe(2);
  });

  it("a peer that goes silent is dropped at hold expiry with NOTIFICATION 4/0", async () => {
    const { peer, s, events } = await withPeer({ hold: 3 });
    await s.start();
    await until(() => events.includes("up"));
    peer.socket!.pause(); // stop reading; stop sending keepalives (the raw peer sends none)
    const t0 = Date.now();
    await until(() => events.some((e) => e.startsWith("down")), 6000, "hold expiry");
    expect(Date.now() - t0).toBeGreaterThan(2000);
    expect(events.find((e) => e.startsWith("down"))).toBe("down: hold timer expired");
  });

  it("a peer RST is a clean peer-down and a reconnect", async () => {
    const { peer, s, events } = await withPeer();
    await s.start();
    await until(() => events.includes("up"));
    peer.socket!.resetAndDestroy();
    await until(() => events.filter((e) => e === "up").length === 2, 5000, "reconnect");
    expect(events[1]).toMatch(/^down: (TCP error|peer closed|TCP connection closed)/);
  });

  it("rapid flaps: reconnects follow the back-off and the process stays up", async () => {
    const { peer, s, events } = await withPeer({ extra: { idleHoldMs: 100, idleHoldMaxMs: 800 } });
    await s.start();
    const times: number[] = [];
    peer.server.on("connection", (c) => {
      times.push(Date.now());
      setTimeout(() => c.destroy(), 30);
    });
    await until(() => times.length >= 6, 10_000, "six connections");
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    // 100, 200, 400, 800, 800 ms (+ the 30 ms each connection lived), never faster.
    expect(gaps[0]!).toBeGreaterThanOrEqual(100);
    expect(gaps[3]!).toBeGreaterThanOrEqual(700);
    expect(events.filter((e) => e === "up").length).toBeLessThanOrEqual(6);
  });

  it("answers a ROUTE-REFRESH with the whole table", async () => {
    const { peer, s } = await withPeer();
    for (let i = 0; i < 10; i++) s.announce(`20.20.20.${i}/32`);
    await s.start();
    await until(() => peer.of("update").filter((u) => u.endOfRib).length === 2);
    const n = peer.received.length;
    peer.send(encodeRouteRefresh({ afi: 1, safi: 1, subtype: 0 }));
    await until(() =>
      peer.received.slice(n).some((m) => m.type === "route-refresh" && m.subtype === 2),
    );
    const after = peer.received.slice(n);
    expect(after.map((m) => (m.type === "route-refresh" ? `rr${m.subtype}` : m.type))).toEqual([
      "rr1",
      "update",
      "rr2",
    ]);
    const u = after[1] as Extract<(typeof after)[number], { type: "update" }>;
    expect(u.nlri.count).toBe(10);
  });
});

describe("memory", () => {
  it("attribute sets no route uses are dropped: changing MEDs forever stays bounded", () => {
    const s = speaker({ asn: 65101, routerId: "192.0.2.2", listen: false, peers: [] });
    for (let i = 0; i < 20_000; i++) s.announce(`10.0.${(i >> 8) & 7}.${i & 255}/32`, { med: i });
    const table = (s as unknown as { routes: LocRib }).routes;
    // 2,048 routes are announced at any time, so at most about twice that many sets live.
    expect(table.attributeSets).toBeLessThanOrEqual(2 * 2048 + 1);
    expect(s.announced()).toHaveLength(2048);
    // Re-announcing with the same attributes still finds them.
    s.announce("10.0.7.255/32", { med: 19_999 });
    expect(s.isAnnounced("10.0.7.255/32")).toBe(true);
  });
});
