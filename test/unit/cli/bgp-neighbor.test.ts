// `vipmux bgp neighbor` end to end without root: a MUX daemon (fake dataplane, real BGP
// speaker, admin socket) peering over loopback with a second speaker that plays the edge
// router and sends routes back; the CLI (text and --json) against the daemon's socket.
// The CLI's main() runs in this process but for one run as a user does (a process of its
// own costs a second or more on a busy machine).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type {
  BgpAdjIn,
  BgpAdjOut,
  BgpNeighborDetail,
  BgpNeighbors,
} from "../../../src/api/status.ts";
import type { Speaker } from "../../../src/bgp/speaker.ts";
import { loadConfig } from "../../../src/config/index.ts";
import { MuxDaemon } from "../../../src/controller/mux.ts";
import { pollUntil } from "../../../src/lab/testing.ts";
import { freePort, speaker } from "../bgp-speaker/helpers.ts";
import { fakeDataplane } from "../controller/fake-dataplane.ts";
import { vipmux, vipmuxHere } from "./run-cli.ts";

const V6_VIP = "2001:db8:ffff:ffff:ffff:ffff:ffff:100";

describe("vipmux bgp neighbor", () => {
  const dir = mkdtempSync(join(tmpdir(), "vipmux-bgp-neighbor-"));
  const socket = join(dir, "admin.sock");
  const port = freePort();
  let daemon: MuxDaemon | undefined;
  let edge: Speaker | undefined;
  const cli = (...args: string[]) => vipmuxHere("bgp", "neighbor", ...args, "-s", socket);

  beforeAll(async () => {
    // The "edge router": 4-octet AS, sends an IPv4 and an IPv6 route with attributes.
    edge = speaker({
      asn: 4200000000,
      routerId: "10.0.0.3",
      listen: { host: "127.0.0.3", port },
      nextHop6: "2001:db8::3",
      peers: [{ address: "127.0.0.2", asn: 4200000001, passive: true }],
    });
    edge.announce("198.51.100.0/24", {
      nextHop: "192.0.2.3",
      med: 50,
      communities: ["65000:7", "no-export"],
      largeCommunities: ["4200000000:1:2"],
    });
    edge.announce("2001:db8:aaaa::/48");
    // Next hop self, on loopback: not a host address, so the MUX treats it as withdrawn
    // (RFC 7606) and keeps the outcome.
    edge.announce("203.0.113.0/24");
    await edge.start();

    const file = join(dir, "mux.yml");
    writeFileSync(
      file,
      `node: { name: bgptest, router-id: 192.0.2.2 }
bgp:
  asn: 4200000001
  next-hop-v6: 2001:db8::2
  peers:
    - address: 127.0.0.3
      asn: 4200000000
      description: edge
      port: ${port}
      local-address: 127.0.0.2
      hold-time: 9
      max-prefixes: { limit: 100, warning: 80 }
      export: { med: 7, communities: ["65000:100"] }
health: { listen: "off" }
api: { socket: ${socket} }
services:
  - name: web
    vip: 20.20.20.100
    ports: [{ protocol: tcp, port: 80 }]
    vni: 100
    health: { type: none }
    backends: [{ dip: 10.10.1.11, host: 198.51.100.2 }]
  - name: web6
    vip: ${V6_VIP}
    ports: [{ protocol: tcp, port: 80 }]
    vni: 101
    health: { type: none }
    backends: [{ dip: 2001:db8:1::11, host: 198.51.100.2 }]
`,
    );
    const cfg = loadConfig(file);
    if (!cfg.ok) throw new Error(JSON.stringify(cfg.error));
    daemon = new MuxDaemon(cfg.value, {
      configFile: file,
      dataplane: fakeDataplane,
      log: () => {},
    });
    await daemon.start();
    await pollUntil(
      async () => {
        const p = daemon!.speaker.peers()[0];
        return (
          p?.prefixesSent === 2 &&
          p.prefixesReceived === 2 &&
          daemon!.speaker.adjRibInIssues("127.0.0.3").length === 1
        );
      },
      { timeoutMs: 20_000, what: "both routes each way, and the refused one" },
    );
  }, 40_000);

  afterAll(async () => {
    await daemon?.stop();
    await edge?.shutdown("test over");
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it("lists the peers: state, uptime, prefixes sent and received, BFD, last error", async () => {
    // As a user runs it, in a process of its own.
    const json = await vipmux("bgp", "neighbor", "-s", socket, "--json");
    expect(json.code).toBe(0);
    const v = JSON.parse(json.stdout) as BgpNeighbors;
    expect(v.neighbors).toEqual([
      {
        name: "edge",
        address: "127.0.0.3",
        asn: 4200000000,
        state: "Established",
        uptimeSeconds: expect.any(Number),
        prefixesSent: 2,
        prefixesPending: 0,
        prefixesReceived: 2,
        bfd: null,
        lastError: "",
      },
    ]);
    const text = await cli();
    expect(text.code).toBe(0);
    const [header, row] = text.stdout.trimEnd().split("\n");
    expect(header).toMatch(/^PEER +AS +STATE +UPTIME +SENT +RCVD +BFD +LAST ERROR$/);
    expect(row).toMatch(/^127\.0\.0\.3 \(edge\) +4200000000 +Established +\d+s +2 +2 +-$/);
  }, 60_000);

  it("one peer in detail: capabilities, negotiated families, hold time, max-prefixes, counters", async () => {
    const r = await cli("127.0.0.3", "--json");
    expect(r.code).toBe(0);
    const d = JSON.parse(r.stdout) as BgpNeighborDetail;
    expect(d).toMatchObject({
      name: "edge",
      address: "127.0.0.3",
      asn: 4200000000,
      state: "Established",
      local: { asn: 4200000001, routerId: "192.0.2.2", address: "127.0.0.2" },
      remote: { port, routerId: "10.0.0.3" },
      config: { passive: false, localAddress: "127.0.0.2", md5: false, ttlSecurityHops: null },
      holdTime: { configuredSec: 9, negotiatedSec: 9, keepaliveSec: 3 },
      negotiated: {
        families: ["ipv4-unicast", "ipv6-unicast"],
        fourOctetAs: true,
        routeRefresh: true,
        enhancedRouteRefresh: true,
        extendedMessages: true,
        addPath: [],
      },
      maxPrefixes: { limit: 100, warningPercent: 80 },
      prefixesSent: 2,
      prefixesReceived: 2,
      bfd: null,
      bfdSession: null,
    });
    expect(d.capabilities.advertised).toContain("4-octet-as(4200000001)");
    expect(d.capabilities.received).toEqual(
      expect.arrayContaining([
        "multiprotocol(ipv4-unicast)",
        "multiprotocol(ipv6-unicast)",
        "4-octet-as(4200000000)",
        "route-refresh",
      ]),
    );
    expect(d.messages.received.updates).toBeGreaterThanOrEqual(2);
    expect(d.updatesReceived).toMatchObject({ announced: 2, treatAsWithdraw: 1 });
    expect(d.updatesReceived.endOfRib.sort()).toEqual(["ipv4-unicast", "ipv6-unicast"]);

    // By its description too; the text names what the JSON has.
    const byName = await cli("edge", "--json");
    expect((JSON.parse(byName.stdout) as BgpNeighborDetail).address).toBe("127.0.0.3");
    const text = await cli("127.0.0.3");
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^BGP neighbor 127\.0\.0\.3 \(edge\), remote AS 4200000000\n/);
    expect(text.stdout).toMatch(/ BGP state: +Established, up for \d+s\n/);
    expect(text.stdout).toMatch(/ Hold time: +9 s negotiated, 9 s configured, keepalive 3 s\n/);
    expect(text.stdout).toMatch(/ Families: +ipv4-unicast, ipv6-unicast\n/);
    expect(text.stdout).toMatch(/ Max prefixes: +100 \(warning at 80%, restart after 60 s\)/);
    expect(text.stdout).toMatch(/ BFD: +not configured\n/);
  }, 60_000);

  it("adj-out: what the peer holds from us, with the attributes it was sent", async () => {
    const r = await cli("127.0.0.3", "adj-out", "--json");
    expect(r.code).toBe(0);
    const v = JSON.parse(r.stdout) as BgpAdjOut;
    const common = {
      asPath: "4200000001",
      origin: "igp",
      med: 7,
      localPref: null,
      communities: ["65000:100"],
      largeCommunities: [],
      extendedCommunities: [],
      other: [],
      pending: false,
    };
    expect(v).toEqual({
      neighbor: "127.0.0.3",
      routes: [
        { prefix: "20.20.20.100/32", nextHop: "127.0.0.2", ...common },
        { prefix: `${V6_VIP}/128`, nextHop: "2001:db8::2", ...common },
      ],
    });
    const text = await cli("127.0.0.3", "adj-out");
    const lines = text.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^PREFIX +NEXT HOP +AS PATH +ORIGIN +ATTRIBUTES$/);
    expect(lines[1]).toMatch(
      /^20\.20\.20\.100\/32 +127\.0\.0\.2 +4200000001 +igp +med 7, communities 65000:100$/,
    );
    expect(lines[2]).toMatch(new RegExp(`^${V6_VIP}/128 +2001:db8::2 +4200000001 +igp `));
    expect(lines.at(-1)).toBe("2 prefixes sent to 127.0.0.3");
  }, 60_000);

  it("adj-in: what the peer sent, with its attributes", async () => {
    const r = await cli("127.0.0.3", "adj-in", "--json");
    expect(r.code).toBe(0);
    const v = JSON.parse(r.stdout) as BgpAdjIn;
    expect(v).toEqual({
      neighbor: "127.0.0.3",
      routes: [
        {
          prefix: "198.51.100.0/24",
          nextHop: "192.0.2.3",
          asPath: "4200000000",
          origin: "igp",
          med: 50,
          localPref: null,
          communities: ["65000:7", "65535:65281"],
          largeCommunities: ["4200000000:1:2"],
          extendedCommunities: [],
          other: [],
          ageSeconds: expect.any(Number),
        },
        {
          prefix: "2001:db8:aaaa::/48",
          nextHop: "2001:db8::3",
          asPath: "4200000000",
          origin: "igp",
          med: null,
          localPref: null,
          communities: [],
          largeCommunities: [],
          extendedCommunities: [],
          other: [],
          ageSeconds: expect.any(Number),
        },
      ],
      issues: [
        {
          action: "treat-as-withdraw",
          reason: "NEXT_HOP is not a valid host address",
          prefixes: ["203.0.113.0/24"],
          ageSeconds: expect.any(Number),
        },
      ],
    });
    const text = await cli("127.0.0.3", "adj-in");
    expect(text.stdout).toMatch(
      /\n198\.51\.100\.0\/24 +192\.0\.2\.3 +4200000000 +igp +\d+s +med 50, communities 65000:7 65535:65281, large 4200000000:1:2\n/,
    );
    expect(text.stdout).toContain("\n2 prefixes received from 127.0.0.3\n");
    expect(text.stdout).toMatch(
      /\nRFC 7606 outcomes \(last 1\):\n {2}\d+s ago: treat-as-withdraw: NEXT_HOP is not a valid host address \(203\.0\.113\.0\/24\)\n$/,
    );
  }, 60_000);

  it("an unknown neighbor: not-found, exit 1", async () => {
    const check = async (args: string[]) => {
      const text = await cli(...args);
      expect(text.code).toBe(1);
      expect(text.stderr).toBe(`vipmux: no BGP neighbor "${args[0]}"\n`);
      const json = await cli(...args, "--json");
      expect(json.code).toBe(1);
      expect(JSON.parse(json.stderr)).toEqual({
        error: {
          code: "not-found",
          message: `no BGP neighbor "${args[0]}"`,
          details: { status: 404, error: `no BGP neighbor "${args[0]}"` },
        },
      });
    };
    for (const args of [["192.0.2.99"], ["192.0.2.99", "adj-out"], ["nobody", "adj-in"]])
      await check(args);
  }, 60_000);
});
