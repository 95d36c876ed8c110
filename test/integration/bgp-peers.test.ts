// vipmux establishes and exchanges IPv4 and IPv6 routes with BIRD 2 and GoBGP.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pollUntil, startLab, type TestLab } from "../../src/lab/testing.ts";
import {
  bgpFixture,
  type SpeakerHandle,
  startSpeaker,
  waitEstablished,
} from "../fixtures/bgp-lab/control.ts";
import { isRoot } from "./helpers.ts";

const V4 = "20.20.20.100/32";
const V6 = "2001:db8:f::100/128";

describe.skipIf(!isRoot)("vipmux with BIRD 2 and GoBGP", () => {
  let lab: TestLab;
  let vip: SpeakerHandle;
  let birdSock: string;
  const gobgp = (args: string[]) =>
    lab.must("gobgp", ["gobgp", "-u", "127.0.0.1", "-p", "50051", ...args]);
  // birdc exits 1 when a route is not found; the output says what happened.
  const birdc = async (cmd: string) =>
    (await lab.exec("bird", ["birdc", "-s", birdSock, ...cmd.split(" ")])).stdout;

  beforeAll(async () => {
    lab = await startLab(bgpFixture("peers.clab.yml"), "bgppeers");
    birdSock = join(lab.plan.dir, "bird.ctl");
    lab.spawn("bird", ["bird", "-f", "-c", bgpFixture("peers/bird.conf"), "-s", birdSock], "bird");
    lab.spawn(
      "gobgp",
      [
        "gobgpd",
        "-f",
        bgpFixture("peers/gobgp.toml"),
        "-t",
        "toml",
        "--api-hosts",
        "127.0.0.1:50051",
      ],
      "gobgpd",
    );
    vip = await startSpeaker(lab, "vip", {
      asn: 65101,
      routerId: "10.0.1.1",
      holdTimeSec: 9,
      idleHoldMs: 300,
      peers: [
        {
          address: "10.0.1.2",
          asn: 65201,
          localAddress: "10.0.1.1",
          name: "bird",
          export: { nextHop6: "2001:db8:1::1" },
        },
        // IPv6 transport: IPv6 VIPs take the session's own address as next hop ("self"),
        // IPv4 VIPs an explicit IPv4 one.
        {
          address: "2001:db8:2::2",
          asn: 65202,
          localAddress: "2001:db8:2::1",
          name: "gobgp",
          export: { nextHop: "10.0.2.1" },
        },
      ],
      announce: [V4, V6],
    });
  });
  afterAll(async () => {
    await lab?.down();
  });

  it("establishes with both (BIRD over IPv4, GoBGP over IPv6 transport)", async () => {
    const st = await waitEstablished(vip, 2, 30_000);
    expect(st.peers.map((p) => p.state)).toEqual(["Established", "Established"]);
    expect(st.peers.map((p) => p.address)).toEqual(["10.0.1.2", "2001:db8:2::2"]);
  });

  it("BIRD receives the IPv4 and IPv6 VIPs with vipmux's next hops", async () => {
    const v4 = await pollUntil(
      async () => {
        const out = await birdc(`show route ${V4} all`);
        return out.includes("20.20.20.100/32") ? out : undefined;
      },
      { timeoutMs: 15_000, what: "BIRD to hold the IPv4 VIP" },
    );
    expect(v4).toMatch(/BGP\.next_hop: 10\.0\.1\.1/);
    expect(v4).toMatch(/BGP\.as_path: 65101/);
    const v6 = await pollUntil(
      async () => {
        const out = await birdc(`show route ${V6} all`);
        return out.includes("2001:db8:f::100/128") ? out : undefined;
      },
      { timeoutMs: 15_000, what: "BIRD to hold the IPv6 VIP" },
    );
    expect(v6).toMatch(/BGP\.next_hop: 2001:db8:1::1/);
  });

  it("GoBGP receives the IPv4 and IPv6 VIPs", async () => {
    await pollUntil(
      async () => (await gobgp(["global", "rib", "-a", "ipv4"])).includes("20.20.20.100/32"),
      {
        timeoutMs: 15_000,
        what: "GoBGP to hold the IPv4 VIP",
      },
    );
    const v4 = await gobgp(["global", "rib", "-a", "ipv4"]);
    expect(v4).toMatch(/20\.20\.20\.100\/32\s+10\.0\.2\.1\s+65101/);
    await pollUntil(
      async () => (await gobgp(["global", "rib", "-a", "ipv6"])).includes("2001:db8:f::100/128"),
      {
        timeoutMs: 15_000,
        what: "GoBGP to hold the IPv6 VIP",
      },
    );
    expect(await gobgp(["global", "rib", "-a", "ipv6"])).toMatch(
      /2001:db8:f::100\/128\s+2001:db8:2::1/,
    );
  });

  it("vipmux keeps what BIRD and GoBGP send in its Adj-RIB-In", async () => {
    await gobgp([
      "global",
      "rib",
      "add",
      "40.40.40.0/24",
      "-a",
      "ipv4",
      "nexthop",
      "10.0.2.2",
      "community",
      "65202:7",
    ]);
    await gobgp([
      "global",
      "rib",
      "add",
      "2001:db8:40::/48",
      "-a",
      "ipv6",
      "nexthop",
      "2001:db8:2::2",
    ]);
    const fromBird = await pollUntil(
      async () => {
        const r = await vip.call<{ routes: { prefix: string }[] }>("adj-rib-in", {
          peer: "10.0.1.2",
        });
        return r.routes.length === 2 ? r.routes.map((x) => x.prefix).sort() : undefined;
      },
      { timeoutMs: 15_000, what: "BIRD's two static routes at vipmux" },
    );
    expect(fromBird).toEqual(["2001:db8:30::/48", "30.30.30.0/24"]);
    const fromGobgp = await pollUntil(
      async () => {
        const r = await vip.call<{
          routes: { prefix: string; attrs: { communities?: number[] } }[];
        }>("adj-rib-in", { peer: "2001:db8:2::2" });
        return r.routes.length === 2 ? r.routes : undefined;
      },
      { timeoutMs: 15_000, what: "GoBGP's two routes at vipmux" },
    );
    expect(fromGobgp.map((r) => r.prefix).sort()).toEqual(["2001:db8:40::/48", "40.40.40.0/24"]);
    expect(fromGobgp.find((r) => r.prefix === "40.40.40.0/24")?.attrs.communities).toEqual([
      ((65202 << 16) | 7) >>> 0,
    ]);
    await gobgp(["global", "rib", "del", "40.40.40.0/24", "-a", "ipv4"]);
    await pollUntil(
      async () =>
        (await vip.call<{ routes: unknown[] }>("adj-rib-in", { peer: "2001:db8:2::2" })).routes
          .length === 1,
      { timeoutMs: 10_000, what: "GoBGP's withdrawal at vipmux" },
    );
  });

  it("withdrawals reach both", async () => {
    await vip.call("withdraw", { prefixes: [V4, V6] });
    await pollUntil(async () => !(await birdc(`show route ${V4}`)).includes("20.20.20.100/32"), {
      timeoutMs: 10_000,
      what: "BIRD to drop the VIP",
    });
    await pollUntil(
      async () => !(await gobgp(["global", "rib", "-a", "ipv4"])).includes("20.20.20.100"),
      {
        timeoutMs: 10_000,
        what: "GoBGP to drop the VIP",
      },
    );
    expect(await gobgp(["global", "rib", "-a", "ipv6"])).not.toContain("2001:db8:f::100");
  });
});
