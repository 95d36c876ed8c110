// Passive peers (PassiveTcpEstablishment, docs/bgp.md "Under the speaker"): never a
// connection attempt, only accepted sessions; and the listener follows the peers, so a
// passive peer added at run time can connect (with `onlyWithPassivePeers` it opens the
// socket, and removing the last passive peer closes it).
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type { Speaker } from "../../../src/bgp/speaker.ts";
import { freePort, RawPeer, sleep, speaker, until } from "./helpers.ts";

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
const keep = <T extends Speaker | RawPeer>(x: T): T => {
  cleanups.push(() => (x instanceof RawPeer ? x.close() : x.shutdown("test over")));
  return x;
};

const state = (s: Speaker, addr: string) => s.peers().find((p) => p.address === addr)?.state;

/** Whether something accepts TCP at host:port. */
const accepts = (host: string, port: number) =>
  new Promise<boolean>((resolve) => {
    const c = net.connect({ host, port, localAddress: "127.0.0.9" });
    c.once("connect", () => {
      c.destroy();
      resolve(true);
    });
    c.once("error", () => resolve(false));
  });

describe("passive peers", () => {
  it("never connect, over many connect-retry intervals, and accept the peer's session", async () => {
    // The peer listens where the speaker would connect; every attempt would show there.
    const peerPort = freePort();
    const peer = keep(new RawPeer(65000));
    await peer.listen("127.0.0.4", peerPort);
    let dialled = 0;
    peer.server.on("connection", () => dialled++);
    const listenPort = freePort();
    const s = keep(
      speaker({
        asn: 65101,
        routerId: "192.0.2.2",
        listen: { host: "127.0.0.2", port: listenPort },
        connectRetryMs: 20,
        idleHoldMs: 20,
        idleHoldMaxMs: 40,
        peers: [{ address: "127.0.0.4", asn: 65000, port: peerPort, passive: true }],
      }),
    );
    await s.start();
    await sleep(600); // 30 connect-retry intervals
    expect(dialled).toBe(0);
    expect(s.peers()[0]!.counters.connectAttempts).toBe(0);
    expect(state(s, "127.0.0.4")).toBe("Active");
    // The router connects: accepted and Established.
    await peer.dial("127.0.0.2", listenPort, "127.0.0.4");
    await until(() => state(s, "127.0.0.4") === "Established", 5000, "Established");
    // The session ends; the speaker still waits instead of dialling.
    peer.socket!.destroy();
    await until(() => state(s, "127.0.0.4") !== "Established", 3000, "down");
    await sleep(600);
    expect(dialled).toBe(0);
    expect(s.peers()[0]!.counters.connectAttempts).toBe(0);
    await peer.dial("127.0.0.2", listenPort, "127.0.0.4");
    await until(() => state(s, "127.0.0.4") === "Established", 5000, "Established again");
  });

  it("a passive peer added at run time opens the listener (onlyWithPassivePeers) and is accepted", async () => {
    const listenPort = freePort();
    const s = keep(
      speaker({
        asn: 65101,
        routerId: "192.0.2.2",
        listen: { host: "127.0.0.2", port: listenPort, onlyWithPassivePeers: true },
        connectRetryMs: 20,
        // An active peer nobody answers: no reason to listen yet.
        peers: [{ address: "127.0.0.7", asn: 65007, port: freePort() }],
      }),
    );
    await s.start();
    expect(s.listenPort).toBeUndefined();
    expect(await accepts("127.0.0.2", listenPort)).toBe(false);

    const peer = keep(new RawPeer(65000));
    await s.addPeer({ address: "127.0.0.4", asn: 65000, port: freePort(), passive: true });
    expect(s.listenPort).toBe(listenPort);
    await peer.dial("127.0.0.2", listenPort, "127.0.0.4");
    await until(() => state(s, "127.0.0.4") === "Established", 5000, "Established");
    expect(s.peers().find((p) => p.address === "127.0.0.4")!.counters.connectAttempts).toBe(0);

    // The last passive peer goes: the socket closes (the port is free for others again).
    await s.removePeer("127.0.0.4");
    expect(s.listenPort).toBeUndefined();
    expect(await accepts("127.0.0.2", listenPort)).toBe(false);
  });

  it("with an always-open listener, a peer added at run time is accepted too", async () => {
    const listenPort = freePort();
    const s = keep(
      speaker({
        asn: 65101,
        routerId: "192.0.2.2",
        listen: { host: "127.0.0.2", port: listenPort },
        peers: [],
      }),
    );
    await s.start();
    const peer = keep(new RawPeer(65000));
    await s.addPeer({ address: "127.0.0.4", asn: 65000, port: freePort(), passive: true });
    await peer.dial("127.0.0.2", listenPort, "127.0.0.4");
    await until(() => state(s, "127.0.0.4") === "Established", 5000, "Established");
  });
});
