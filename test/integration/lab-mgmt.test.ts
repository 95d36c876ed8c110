// The canonical lab on its management network, as on containerlab: every node has an eth0
// on one bridge with an address and (before the topology's exec lines) a default route via
// it. The lab's own traffic must not use it: default routes go through the data plane, route
// lookups to every peer pick data interfaces, and counters on the management bridge see no
// BGP, BFD, VXLAN, health or client packet while the whole system runs and carries traffic.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MgmtPlan } from "../../src/lab/plan.ts";
import { fibNextHops, pollUntil, startLab, type TestLab } from "../../src/lab/testing.ts";
import { run } from "../../src/util/proc.ts";
import { canonicalTopology, isRoot } from "./helpers.ts";

const V4 = "20.20.20.100";
const V6 = "2001:db8:f::100";
const COUNTERS = ["mgmt", "bgp", "bfd", "vxlan", "health", "other"] as const;

interface RouteGet {
  dst: string;
  dev?: string;
  type?: string;
}

describe.skipIf(!isRoot)("canonical lab: management on eth0, the data plane off it", () => {
  let lab: TestLab;
  let mgmt: MgmtPlan;
  const inMgmt = (argv: string[], input?: string) =>
    run(["ip", "netns", "exec", mgmt.netns, ...argv], input === undefined ? {} : { input });

  /** Packets that entered the management bridge from a node, by kind. */
  const counters = async (): Promise<Record<string, number>> => {
    const r = await inMgmt(["nft", "-j", "list", "counters", "table", "bridge", "mgmtwatch"]);
    expect(r.code, r.stderr).toBe(0);
    const out: Record<string, number> = {};
    for (const item of (JSON.parse(r.stdout) as { nftables: Record<string, unknown>[] }).nftables) {
      const c = item.counter as { name: string; packets: number } | undefined;
      if (c) out[c.name] = c.packets;
    }
    return out;
  };

  beforeAll(async () => {
    lab = await startLab(canonicalTopology, "mgmt");
    mgmt = lab.plan.mgmt as MgmtPlan;
    const v4 = mgmt.ipv4!.subnet;
    const v6 = mgmt.ipv6!.subnet;
    // Everything a node sends into the bridge, classified. Management traffic proper stays
    // between management addresses (IPv6 also link-local and multicast: ND, MLD).
    const ruleset = `table bridge mgmtwatch {
  ${COUNTERS.map((c) => `counter ${c} { }`).join("\n  ")}
  chain pre {
    type filter hook prerouting priority 0; policy accept;
    ip saddr ${v4} ip daddr ${v4} counter name mgmt accept
    ip6 saddr { ${v6}, fe80::/10, :: } ip6 daddr { ${v6}, fe80::/10, ff00::/8 } counter name mgmt accept
    tcp sport 179 counter name bgp accept
    tcp dport 179 counter name bgp accept
    udp dport { 3784, 3785, 4784 } counter name bfd accept
    udp dport 4789 counter name vxlan accept
    tcp sport 7946 counter name health accept
    tcp dport 7946 counter name health accept
    meta protocol { ip, ip6 } counter name other accept
  }
}
`;
    const r = await inMgmt(["nft", "-f", "-"], ruleset);
    if (r.code !== 0) throw new Error(`nft: ${r.stderr}`);
    // The whole system up: both MUXes announce (BGP, BFD, and the hosts' health streams
    // saying the backends are up).
    for (const [prefix, want] of [
      [`${V4}/32`, ["192.0.2.2", "192.0.2.6"]],
      [`${V6}/128`, ["2001:db8:0:1::2", "2001:db8:0:2::2"]],
    ] as const)
      await pollUntil(
        async () => JSON.stringify(await fibNextHops(lab, "edge", prefix)) === JSON.stringify(want),
        { timeoutMs: 60_000, what: `${prefix} via both MUXes` },
      );
  }, 120_000);
  afterAll(async () => {
    await lab?.down();
  });

  it("every node has eth0 on the management bridge with its planned addresses", async () => {
    for (const n of lab.plan.nodes) {
      const addrs = JSON.parse(
        await lab.must(n.name, ["ip", "-j", "addr", "show", "dev", "eth0"]),
      )[0].addr_info as { local: string; prefixlen: number; scope: string }[];
      expect(
        addrs.filter((a) => a.scope === "global").map((a) => `${a.local}/${a.prefixlen}`),
        n.name,
      ).toEqual(n.mgmt?.addresses);
      // The management network itself works: the gateway answers on both families.
      await lab.must(n.name, ["ping", "-c", "1", "-W", "2", "-I", "eth0", mgmt.ipv4!.gateway]);
      await lab.must(n.name, [
        "ping",
        "-6",
        "-c",
        "1",
        "-W",
        "2",
        "-I",
        "eth0",
        mgmt.ipv6!.gateway,
      ]);
    }
    // The management namespace holds the bridge and one port per node, nothing else: no
    // link to this machine's network, and it routes nothing.
    const links = JSON.parse((await inMgmt(["ip", "-j", "link", "show"])).stdout) as {
      ifname: string;
      master?: string;
    }[];
    expect(links.filter((l) => l.ifname !== "lo" && l.ifname !== mgmt.bridge)).toEqual(
      lab.plan.nodes.map((n) =>
        expect.objectContaining({ ifname: n.mgmt?.peer, master: mgmt.bridge }),
      ),
    );
    const fwd = await inMgmt([
      "sysctl",
      "-n",
      "net.ipv4.ip_forward",
      "net.ipv6.conf.all.forwarding",
    ]);
    expect(fwd.stdout.split("\n").filter(Boolean)).toEqual(["0", "0"]);
  });

  it("the exec lines replaced each management default route with a data-plane one (the edge: unreachable)", async () => {
    for (const n of lab.plan.nodes)
      for (const fam of ["-4", "-6"]) {
        const routes = JSON.parse(
          await lab.must(n.name, ["ip", fam, "-j", "route", "show", "default"]),
        ) as { dev?: string; type?: string; gateway?: string }[];
        expect(routes, `${n.name} ${fam}`).toHaveLength(1);
        if (n.name === "edge") expect(routes[0]?.type).toBe("unreachable");
        else expect(routes[0]?.dev, `${n.name} ${fam}`).not.toBe("eth0");
      }
  });

  it("route lookups from each node to its peers use the data interfaces", async () => {
    const get = async (node: string, dst: string): Promise<RouteGet | undefined> => {
      const r = await lab.exec(node, ["ip", "-j", "route", "get", dst]);
      return r.code === 0 ? (JSON.parse(r.stdout) as RouteGet[])[0] : undefined;
    };
    // Who talks to whom, and what for.
    const peers: [string, string, string | string[]][] = [
      ["edge", "192.0.2.2", "eth2"], // BGP, BFD to mux1
      ["edge", "192.0.2.6", "eth3"], // BGP, BFD to mux2
      ["edge", "2001:db8:0:1::2", "eth2"], // IPv6 VIP next hop
      ["edge", "203.0.113.10", "eth1"], // replies to the client
      ["edge", V4, ["eth2", "eth3"]], // ECMP to the MUXes
      ["mux1", "192.0.2.1", "eth1"], // BGP, BFD
      ["mux2", "192.0.2.5", "eth1"],
      ["mux1", "198.51.100.2", "eth1"], // VXLAN to host1's PA
      ["mux1", "198.51.100.6", "eth1"], // VXLAN to host2's PA
      ["mux2", "198.51.100.2", "eth1"],
      ["mux2", "198.51.100.6", "eth1"],
      ["host1", "192.0.2.2", "eth1"], // health stream to mux1
      ["host1", "192.0.2.6", "eth1"], // and mux2
      ["host2", "192.0.2.2", "eth1"],
      ["host2", "192.0.2.6", "eth1"],
      ["host1", "10.10.1.11", "br0"], // probes of its DIPs
      ["host1", "fd00:10:1::12", "br0"],
      ["host2", "10.10.2.21", "br0"],
      ["host1", "203.0.113.10", "eth1"], // DSR replies
      ["host2", "2001:db8:c::10", "eth1"],
      ["vm11", "203.0.113.10", "eth1"],
      ["vm22", "2001:db8:c::10", "eth1"],
      ["client", V4, "eth1"],
      ["client", V6, "eth1"],
    ];
    for (const [node, dst, dev] of peers) {
      const r = await get(node, dst);
      expect(r?.dev, `${node} -> ${dst}`).toSatisfy((d: string) =>
        Array.isArray(dev) ? dev.includes(d) : d === dev,
      );
    }
    // And the rest of the lab, and the world beyond it: never eth0 (the edge refuses what
    // it has no route for).
    const everyAddress = [
      ...new Set(
        lab.plan.links
          .flatMap((l) => [...l.a.addresses, ...l.b.addresses])
          .map((a) => a.split("/")[0]!),
      ),
      V4,
      V6,
      "8.8.8.8",
      "2001:4860:4860::8888",
    ];
    for (const n of lab.plan.nodes)
      for (const dst of everyAddress) {
        const r = await get(n.name, dst);
        expect(r?.dev, `${n.name} -> ${dst}`).not.toBe("eth0");
        if (n.name === "edge" && (dst === "8.8.8.8" || dst === "2001:4860:4860::8888"))
          expect(r === undefined || r.type === "unreachable", `edge -> ${dst}`).toBe(true);
      }
  });

  it("BGP, BFD, VXLAN, health and client traffic never enter the management bridge", async () => {
    // Client traffic through both VIPs: the edge hashes it onto the MUXes, which send it
    // over VXLAN to the hosts; the backends answer straight to the edge (DSR).
    for (let i = 0; i < 20; i++) {
      await lab.must("client", ["curl", "-s", "-m", "3", "-o", "/dev/null", `http://${V4}/`]);
      await lab.must("client", ["curl", "-s", "-m", "3", "-o", "/dev/null", `http://[${V6}]/`]);
    }
    // The counters do count: management traffic proper.
    await lab.must("client", ["ping", "-c", "1", "-W", "2", "-I", "eth0", mgmt.ipv4!.gateway]);
    const c = await counters();
    expect(c.mgmt).toBeGreaterThan(0);
    expect({ ...c, mgmt: 0 }).toEqual(Object.fromEntries(COUNTERS.map((k) => [k, 0])));
  });
});
