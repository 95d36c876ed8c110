// Peers changed while the speaker runs: BFD hold-down (peerDown / peerStart), export policy
// replaced without a session reset, peers added and removed (config reload).
import { afterEach, describe, expect, it } from "vitest";
import type { Speaker } from "../../../src/bgp/speaker.ts";
import { freePort, sleep, speaker, until } from "./helpers.ts";

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
const keep = (s: Speaker) => {
  cleanups.push(() => s.shutdown("test over"));
  return s;
};

function pair() {
  const pa = freePort();
  const pb = freePort();
  const a = keep(
    speaker({
      asn: 65001,
      routerId: "1.1.1.1",
      listen: { host: "127.0.0.2", port: pa },
      peers: [
        {
          address: "127.0.0.3",
          asn: 65002,
          port: pb,
          localAddress: "127.0.0.2",
          // A loopback next hop is treated as withdraw by the receiver: use a real one.
          export: { nextHop: "192.0.2.2" },
        },
      ],
    }),
  );
  const b = keep(
    speaker({
      asn: 65002,
      routerId: "2.2.2.2",
      listen: { host: "127.0.0.3", port: pb },
      peers: [
        {
          address: "127.0.0.2",
          asn: 65001,
          port: pa,
          localAddress: "127.0.0.3",
        },
      ],
    }),
  );
  return { a, b, pa, pb };
}

const state = (s: Speaker, addr: string) => s.peers().find((p) => p.address === addr)?.state;

describe("peers at run time", () => {
  it("peerDown takes the session down at once and keeps it down until peerStart", async () => {
    const { a, b } = pair();
    a.announce("20.20.20.100/32");
    await Promise.all([a.start(), b.start()]);
    await until(() => b.adjRibIn("127.0.0.2").length === 1, 5000, "route at B");
    expect(a.peerDown("127.0.0.3", "BFD down (control detection time expired)")).toBe(true);
    expect(a.isHeld("127.0.0.3")).toBe(true);
    await until(() => state(b, "127.0.0.2") !== "Established", 3000, "B sees the session go");
    // B keeps trying; A refuses while held.
    await sleep(800);
    expect(state(a, "127.0.0.3")).toBe("Idle");
    expect(b.adjRibIn("127.0.0.2")).toHaveLength(0);
    expect(a.peerStart("127.0.0.3")).toBe(true);
    await until(() => b.adjRibIn("127.0.0.2").length === 1, 5000, "route back after peerStart");
    expect(a.peerStart("127.0.0.3")).toBe(false); // not held any more
  });

  it("setExportPolicy changes what the peer gets without resetting the session", async () => {
    const { a, b } = pair();
    a.announce("20.20.20.100/32");
    a.announce("20.20.20.101/32");
    await Promise.all([a.start(), b.start()]);
    await until(() => b.adjRibIn("127.0.0.2").length === 2, 5000, "two routes at B");
    a.setExportPolicy("127.0.0.3", {
      allow: [{ prefix: "20.20.20.101/32" }],
      med: 42,
      nextHop: "192.0.2.2",
    });
    await until(() => b.adjRibIn("127.0.0.2").length === 1, 5000, "policy applied");
    const r = b.adjRibIn("127.0.0.2")[0]!;
    expect(r.prefix).toBe("20.20.20.101/32");
    expect(r.attrs.med).toBe(42);
    expect(a.peers()[0]!.counters.established).toBe(1);
  });

  it("addPeer connects a new peer and sends it the table; removePeer closes only that session", async () => {
    const { a, b, pa } = pair();
    a.announce("20.20.20.100/32");
    await Promise.all([a.start(), b.start()]);
    await until(() => b.adjRibIn("127.0.0.2").length === 1, 5000, "route at B");
    const pc = freePort();
    const c = keep(
      speaker({
        asn: 65003,
        routerId: "3.3.3.3",
        listen: { host: "127.0.0.4", port: pc },
        peers: [
          { address: "127.0.0.2", asn: 65001, port: pa, localAddress: "127.0.0.4", passive: true },
        ],
      }),
    );
    await c.start();
    a.addPeer({
      address: "127.0.0.4",
      asn: 65003,
      port: pc,
      localAddress: "127.0.0.2",
      export: { nextHop: "192.0.2.2" },
    });
    await until(() => c.adjRibIn("127.0.0.2").length === 1, 5000, "table at the new peer");
    expect(await a.removePeer("127.0.0.4")).toBe(true);
    await until(
      () => state(c, "127.0.0.2") !== "Established",
      3000,
      "removed peer's session closed",
    );
    expect(state(a, "127.0.0.3")).toBe("Established");
    expect(a.peers().map((p) => p.address)).toEqual(["127.0.0.3"]);
    expect(b.peers()[0]!.counters.established).toBe(1);
  });
});
