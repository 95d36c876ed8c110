// vipmux speakers against FRR 8.4 in the canonical lab: IPv4 and IPv6 VIPs into the edge
// RIB and kernel FIB, ECMP across two MUXes, withdraw, route refresh both ways, an FRR
// restart, collisions, and SIGTERM.
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFrr, stopFrr } from "../../src/lab/frr.ts";
import { fibNextHops, pollUntil, startLab, type TestLab } from "../../src/lab/testing.ts";
import {
  type PeerStatusJson,
  type SpeakerHandle,
  startSpeaker,
  waitEstablished,
} from "../fixtures/bgp-lab/control.ts";
import { canonicalTopology, isRoot } from "./helpers.ts";

interface Summary {
  ipv4Unicast?: { peers: Record<string, { state: string; pfxRcd?: number }> };
}
type RouteJson = Record<string, { nexthops: { ip?: string; fib?: boolean }[] }[]>;

const V4 = "20.20.20.100/32";
const V6 = "2001:db8:f::100/128";

const muxOptions = (n: 1 | 2) => ({
  asn: 65100 + n,
  routerId: n === 1 ? "192.0.2.2" : "192.0.2.6",
  nextHop6: `2001:db8:0:${n}::2`,
  holdTimeSec: 9,
  idleHoldMs: 300,
  idleHoldMaxMs: 2000,
  connectRetryMs: 2000,
  peers: [
    {
      address: n === 1 ? "192.0.2.1" : "192.0.2.5",
      asn: 65000,
      localAddress: n === 1 ? "192.0.2.2" : "192.0.2.6",
      name: "edge",
    },
  ],
});

async function frrPeerState(lab: TestLab, addr: string): Promise<string | undefined> {
  const s = await lab.vtyshJson<Summary>("edge", "show bgp summary json");
  return s.ipv4Unicast?.peers[addr]?.state;
}

async function ribHops(lab: TestLab, prefix: string): Promise<string[]> {
  const cmd = prefix.includes(":")
    ? `show ipv6 route ${prefix} json`
    : `show ip route ${prefix} json`;
  const r = await lab.vtyshJson<RouteJson>("edge", cmd);
  return (r[prefix]?.[0]?.nexthops ?? [])
    .filter((h) => h.fib)
    .map((h) => h.ip ?? "")
    .sort();
}

/** Polls until the edge's FRR RIB and kernel FIB both hold exactly `hops` for `prefix`. */
async function expectHops(lab: TestLab, prefix: string, hops: string[], timeoutMs = 20_000) {
  const want = JSON.stringify([...hops].sort());
  await pollUntil(
    async () =>
      JSON.stringify(await ribHops(lab, prefix)) === want &&
      JSON.stringify(await fibNextHops(lab, "edge", prefix)) === want,
    { timeoutMs, what: `${prefix} via [${hops.join(", ")}] in the edge RIB and FIB` },
  );
}

const v6Hop = (n: 1 | 2) => `2001:db8:0:${n}::2`;

describe.skipIf(!isRoot)("vipmux speaker with FRR (canonical lab)", () => {
  let lab: TestLab;
  let mux1: SpeakerHandle;
  let mux2: SpeakerHandle;

  beforeAll(async () => {
    lab = await startLab(canonicalTopology, "bgpfrr", { skipCmd: true });
  });
  afterAll(async () => {
    await lab?.down();
  });

  it("establishes with FRR (datacenter profile) and announces a /32 and a /128", async () => {
    mux1 = await startSpeaker(lab, "mux1", muxOptions(1));
    const st = await waitEstablished(mux1);
    expect(st.peers[0]?.state).toBe("Established");
    await pollUntil(async () => (await frrPeerState(lab, "192.0.2.2")) === "Established", {
      timeoutMs: 10_000,
      what: "FRR sees mux1 Established",
    });
    await mux1.call("announce", { prefixes: [V4, V6] });
    await expectHops(lab, V4, ["192.0.2.2"]);
    await expectHops(lab, V6, [v6Hop(1)]);
  });

  it("a second speaker in another AS makes both routes 2-way ECMP", async () => {
    mux2 = await startSpeaker(lab, "mux2", { ...muxOptions(2), announce: [V4, V6] });
    await waitEstablished(mux2);
    await expectHops(lab, V4, ["192.0.2.2", "192.0.2.6"]);
    await expectHops(lab, V6, [v6Hop(1), v6Hop(2)]);
  });

  it("route refresh: FRR `clear bgp * soft in` gets the whole table again; soft out keeps the session", async () => {
    const before = (await mux1.call<{ peers: PeerStatusJson[] }>("status")).peers[0]!;
    await lab.must("edge", ["vtysh", "-c", "clear bgp * soft in"]);
    await pollUntil(
      async () => {
        const p = (await mux1.call<{ peers: PeerStatusJson[] }>("status")).peers[0]!;
        return p.counters.routeRefreshIn > before.counters.routeRefreshIn &&
          p.counters.updatesOut > before.counters.updatesOut
          ? p
          : undefined;
      },
      { timeoutMs: 10_000, what: "mux1 to answer FRR's ROUTE-REFRESH with UPDATEs" },
    );
    await lab.must("edge", ["vtysh", "-c", "clear bgp * soft out"]);
    await lab.must("edge", ["vtysh", "-c", "clear bgp * soft"]);
    await new Promise((r) => setTimeout(r, 1500));
    const after = (await mux1.call<{ peers: PeerStatusJson[] }>("status")).peers[0]!;
    expect(after.state).toBe("Established");
    expect(after.counters.established).toBe(before.counters.established);
    await expectHops(lab, V4, ["192.0.2.2", "192.0.2.6"]);
    await expectHops(lab, V6, [v6Hop(1), v6Hop(2)]);
  });

  it("withdraw removes a MUX from the ECMP set, then the route", async () => {
    await mux1.call("withdraw", { prefixes: [V4, V6] });
    await expectHops(lab, V4, ["192.0.2.6"]);
    await expectHops(lab, V6, [v6Hop(2)]);
    await mux2.call("withdraw", { prefixes: [V4, V6] });
    await expectHops(lab, V4, []);
    await expectHops(lab, V6, []);
    await mux1.call("announce", { prefixes: [V4, V6] });
    await mux2.call("announce", { prefixes: [V4, V6] });
    await expectHops(lab, V4, ["192.0.2.2", "192.0.2.6"]);
  });

  it("FRR restarted: sessions come back and the routes reappear", async () => {
    const edge = lab.node("edge");
    await stopFrr(edge.frr!.pathspace);
    await pollUntil(
      async () => {
        const s = await mux1.call<{ peers: PeerStatusJson[] }>("status");
        return s.peers[0]?.state !== "Established";
      },
      { timeoutMs: 15_000, what: "mux1 to notice FRR went away" },
    );
    await startFrr(edge.netns, edge.frr!, `${lab.plan.dir}/frr/edge`);
    await waitEstablished(mux1, 1, 40_000);
    await waitEstablished(mux2, 1, 40_000);
    await expectHops(lab, V4, ["192.0.2.2", "192.0.2.6"], 30_000);
    await expectHops(lab, V6, [v6Hop(1), v6Hop(2)], 30_000);
  });

  it("simultaneous open with FRR (collision) ends with exactly one session", async () => {
    const nft = (script: string) => lab.must("mux1", ["nft", "-f", "-"], { input: script });
    const before = readFileSync(mux1.log, "utf8").length;
    // Reset the session; once both sides know (the NOTIFICATION got through), let TCP
    // handshakes through but hold every segment that carries a BGP message: both sides
    // connect, each connection sits in OpenSent with its OPEN held, and when the path
    // opens both OPENs arrive on both connections at once (RFC 4271 §6.8).
    await lab.must("edge", ["vtysh", "-c", "clear bgp 192.0.2.2"]);
    await new Promise((r) => setTimeout(r, 50));
    await nft(
      "table inet blk {\n chain o { type filter hook output priority 0; tcp dport 179 ip length > 60 drop; tcp sport 179 ip length > 60 drop; }\n chain i { type filter hook input priority 0; tcp dport 179 ip length > 60 drop; tcp sport 179 ip length > 60 drop; }\n}\n",
    );
    await new Promise((r) => setTimeout(r, 4000));
    await nft("delete table inet blk");
    await pollUntil(async () => (await frrPeerState(lab, "192.0.2.2")) === "Established", {
      timeoutMs: 30_000,
      what: "mux1 session back",
    });
    await waitEstablished(mux1, 1, 30_000);
    await new Promise((r) => setTimeout(r, 1500));
    const ss = await lab.must("mux1", [
      "ss",
      "-Htn",
      "state",
      "established",
      "( dport = :179 or sport = :179 )",
    ]);
    expect(ss.trim().split("\n").filter(Boolean)).toHaveLength(1);
    expect(await frrPeerState(lab, "192.0.2.2")).toBe("Established");
    const log = readFileSync(mux1.log, "utf8").slice(before);
    if (process.env.BGP_DEBUG) console.log(log);
    // The collision was resolved by one side or the other with Cease / 7.
    expect(log).toMatch(/Connection Collision Resolution|connection collision/);
    await expectHops(lab, V4, ["192.0.2.2", "192.0.2.6"], 20_000);
  });

  it("SIGTERM withdraws and closes with Cease / Administrative Shutdown", async () => {
    process.kill(mux2.pid!, "SIGTERM");
    await expectHops(lab, V4, ["192.0.2.2"]);
    await expectHops(lab, V6, [v6Hop(1)]);
    const n = await lab.vtyshJson<
      Record<
        string,
        {
          lastNotificationReason?: string;
          lastResetDueTo?: string;
          lastShutdownDescription?: string;
        }
      >
    >("edge", "show bgp neighbors 192.0.2.6 json");
    const peer = n["192.0.2.6"];
    expect(JSON.stringify(peer)).toMatch(/Administrative Shutdown/i);
  });
});
