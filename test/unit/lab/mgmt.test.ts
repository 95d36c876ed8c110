// The management network: containerlab's eth0 on every node, as the namespace runner plans
// it (addresses, gateway routes, the commands), and the canonical topology's routing policy
// on top of it (every default route through the data plane, no test switches).
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { planFromFile } from "../../../src/lab/index.ts";
import { prefixesOverlap, resolveMgmt } from "../../../src/lab/mgmt.ts";
import {
  type MgmtPlan,
  mgmtNetnsName,
  mgmtNetworkCommands,
  mgmtNodeCommands,
  planLab,
} from "../../../src/lab/plan.ts";
import { formatTopologyError, parseTopology, type Topology } from "../../../src/lab/topology.ts";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const canonical = `${root}containerlab/vipmux.clab.yml`;
const self = ["/usr/bin/node", "/opt/vipmux/dist/cli/main.js"];

function topology(yaml: string): Topology {
  const r = parseTopology(yaml, `${root}containerlab/test.clab.yml`);
  if (!r.ok) throw new Error(r.error.map(formatTopologyError).join("\n"));
  return r.value;
}

function errorsOf(yaml: string): string[] {
  const r = parseTopology(yaml, `${root}containerlab/test.clab.yml`);
  expect(r.ok).toBe(false);
  return r.ok ? [] : r.error.map(formatTopologyError);
}

const twoNodes = (extra = "", a = "", b = "") => `name: m
${extra}
topology:
  nodes:
    a: { kind: linux, image: alpine${a} }
    b: { kind: linux, image: alpine${b} }
  links:
    - endpoints: ["a:eth1", "b:eth1"]
      ipv4: ["10.0.0.1/30", "10.0.0.2/30"]
`;

describe("management network of the canonical lab", () => {
  const plan = planFromFile(canonical, { name: "t1", vipmux: self });
  const mgmt = plan.mgmt as MgmtPlan;
  const node = (name: string) => plan.nodes.find((n) => n.name === name)!;

  it("has containerlab's defaults: network clab, 172.20.20.0/24 and 3fff:172:20:20::/64", () => {
    expect(mgmt).toEqual({
      network: "clab",
      netns: "clab-t1-_mgmt",
      bridge: "br-clab",
      ipv4: { subnet: "172.20.20.0/24", gateway: "172.20.20.1", prefixLength: 24 },
      ipv6: { subnet: "3fff:172:20:20::/64", gateway: "3fff:172:20:20::1", prefixLength: 64 },
    });
    // Under the lab's prefix (found and removed by `down`), yet never a node's namespace:
    // containerlab node names cannot start with "_".
    expect(mgmt.netns.startsWith(plan.prefix)).toBe(true);
    expect(plan.nodes.map((n) => n.netns)).not.toContain(mgmt.netns);
    expect(mgmtNetnsName("t1")).toBe(mgmt.netns);
  });

  it("gives every node an eth0 address after the gateway, in file order, and a default route via it", () => {
    expect(plan.nodes.map((n) => [n.name, n.mgmt?.addresses])).toEqual([
      ["client", ["172.20.20.2/24", "3fff:172:20:20::2/64"]],
      ["edge", ["172.20.20.3/24", "3fff:172:20:20::3/64"]],
      ["mux1", ["172.20.20.4/24", "3fff:172:20:20::4/64"]],
      ["mux2", ["172.20.20.5/24", "3fff:172:20:20::5/64"]],
      ["host1", ["172.20.20.6/24", "3fff:172:20:20::6/64"]],
      ["host2", ["172.20.20.7/24", "3fff:172:20:20::7/64"]],
      ["vm11", ["172.20.20.8/24", "3fff:172:20:20::8/64"]],
      ["vm12", ["172.20.20.9/24", "3fff:172:20:20::9/64"]],
      ["vm21", ["172.20.20.10/24", "3fff:172:20:20::a/64"]],
      ["vm22", ["172.20.20.11/24", "3fff:172:20:20::b/64"]],
    ]);
    for (const n of plan.nodes)
      expect(n.mgmt?.gateways).toEqual(["172.20.20.1", "3fff:172:20:20::1"]);
    const peers = plan.nodes.map((n) => n.mgmt!.peer);
    expect(new Set(peers).size).toBe(peers.length);
    for (const p of peers) expect(p).toMatch(/^[A-Za-z0-9_.-]{1,15}$/);
  });

  it("builds the bridge in its own namespace with forwarding off", () => {
    expect(mgmtNetworkCommands(mgmt)).toEqual([
      ["ip", "netns", "add", "clab-t1-_mgmt"],
      ["ip", "-n", "clab-t1-_mgmt", "link", "set", "lo", "up"],
      ["ip", "netns", "exec", "clab-t1-_mgmt", "sysctl", "-q", "-w", "net.ipv4.ip_forward=0"],
      [
        "ip",
        "netns",
        "exec",
        "clab-t1-_mgmt",
        "sysctl",
        "-q",
        "-w",
        "net.ipv6.conf.all.forwarding=0",
      ],
      ["ip", "-n", "clab-t1-_mgmt", "link", "add", "br-clab", "type", "bridge"],
      ["ip", "-n", "clab-t1-_mgmt", "addr", "add", "172.20.20.1/24", "dev", "br-clab"],
      [
        "ip",
        "-n",
        "clab-t1-_mgmt",
        "addr",
        "add",
        "3fff:172:20:20::1/64",
        "dev",
        "br-clab",
        "nodad",
      ],
      ["ip", "-n", "clab-t1-_mgmt", "link", "set", "br-clab", "up"],
    ]);
    // Nothing in the root namespace: no veth end, no address, no route.
    for (const argv of mgmtNetworkCommands(mgmt))
      expect(argv.slice(0, 3).join(" ")).toMatch(/^ip (netns|-n clab-t1-_mgmt)/);
  });

  it("creates eth0 straight into the node, its peer straight into the management namespace", () => {
    expect(mgmtNodeCommands(mgmt, node("mux1"))).toEqual([
      [
        "ip",
        "-n",
        "clab-t1-mux1",
        "link",
        "add",
        "eth0",
        "type",
        "veth",
        "peer",
        "name",
        "v2-mux1",
        "netns",
        "clab-t1-_mgmt",
      ],
      ["ip", "-n", "clab-t1-_mgmt", "link", "set", "v2-mux1", "master", "br-clab"],
      ["ip", "-n", "clab-t1-_mgmt", "link", "set", "v2-mux1", "up"],
      ["ip", "-n", "clab-t1-mux1", "addr", "add", "172.20.20.4/24", "dev", "eth0"],
      ["ip", "-n", "clab-t1-mux1", "addr", "add", "3fff:172:20:20::4/64", "dev", "eth0", "nodad"],
      ["ip", "-n", "clab-t1-mux1", "link", "set", "eth0", "up"],
      ["ip", "-n", "clab-t1-mux1", "route", "add", "default", "via", "172.20.20.1", "dev", "eth0"],
      [
        "ip",
        "-6",
        "-n",
        "clab-t1-mux1",
        "route",
        "add",
        "default",
        "via",
        "3fff:172:20:20::1",
        "dev",
        "eth0",
      ],
    ]);
  });
});

describe("the canonical topology's routes on top of the management network", () => {
  const plan = planFromFile(canonical, { name: "t1", vipmux: self });
  const text = readFileSync(canonical, "utf8");

  it("replaces routes instead of adding them (the management default route exists)", () => {
    const lines = plan.nodes.flatMap((n) => n.exec.map((argv) => argv.join(" ")));
    expect(lines.filter((l) => / route (add|append) /.test(l))).toEqual([]);
  });

  it("every node's default route goes through a data link, the edge has none", () => {
    const linkAddrs = (name: string) =>
      plan.links
        .flatMap((l) => [l.a, l.b])
        .filter((e) => e.node === name)
        .flatMap((e) => e.addresses);
    for (const n of plan.nodes) {
      const defaults = n.exec.filter(
        (a) => a[0] === "ip" && a.includes("replace") && a.includes("default"),
      );
      const v4 = defaults.filter((a) => a[1] !== "-6");
      const v6 = defaults.filter((a) => a[1] === "-6");
      expect(v4, n.name).toHaveLength(1);
      expect(v6, n.name).toHaveLength(1);
      for (const route of [...v4, ...v6]) {
        if (n.name === "edge") {
          expect(route.slice(-2)).toEqual(["unreachable", "default"]);
          continue;
        }
        const via = route[route.indexOf("via") + 1]!;
        const host = `${via}/${via.includes(":") ? 128 : 32}`;
        // The gateway is on one of the node's data links (a host's VMs: its br0 subnet),
        // never on the management subnet.
        expect(
          linkAddrs(n.name).some((a) => prefixesOverlap(host, a)),
          `${n.name}: default via ${via}`,
        ).toBe(true);
        for (const f of [plan.mgmt?.ipv4, plan.mgmt?.ipv6])
          if (f) expect(prefixesOverlap(host, f.subnet)).toBe(false);
      }
    }
  });

  it("carries no test switch; tests add it per node when they start the lab", () => {
    expect(text).not.toContain("VIPMUX_TEST_FAULTS");
    for (const n of plan.nodes) expect(n.env.VIPMUX_TEST_FAULTS).toBeUndefined();
    const faults = { VIPMUX_TEST_FAULTS: "1" };
    const test = planFromFile(canonical, {
      name: "t1",
      vipmux: self,
      env: { mux1: faults, mux2: faults },
    });
    expect(test.nodes.filter((n) => n.env.VIPMUX_TEST_FAULTS === "1").map((n) => n.name)).toEqual([
      "mux1",
      "mux2",
    ]);
    expect(test.nodes.find((n) => n.name === "mux1")?.env).toEqual({
      VIPMUX_LOG_FORMAT: "text",
      VIPMUX_TEST_FAULTS: "1",
    });
    expect(() => planFromFile(canonical, { vipmux: self, env: { mux3: faults } })).toThrow(
      /env for unknown node "mux3"/,
    );
  });
});

describe("a topology's mgmt section and node settings", () => {
  it("network, bridge, subnets, gateways, ranges and MTU are taken from mgmt:", () => {
    const t = topology(
      twoNodes(`mgmt:
  network: lab-mgmt
  ipv4-subnet: 172.100.100.0/24
  ipv4-gw: 172.100.100.254
  ipv4-range: 172.100.100.128/25
  ipv6-subnet: 3fff:172:100:100::/80
  mtu: 1400`),
    );
    expect(t.mgmt).toEqual({
      network: "lab-mgmt",
      bridge: "br-lab-mgmt",
      ipv4: { subnet: "172.100.100.0/24", gateway: "172.100.100.254", prefixLength: 24 },
      ipv6: { subnet: "3fff:172:100:100::/80", gateway: "3fff:172:100:100::1", prefixLength: 80 },
      mtu: 1400,
    });
    expect(t.nodes.map((n) => n.mgmt)).toEqual([
      { ipv4: "172.100.100.128/24", ipv6: "3fff:172:100:100::2/80" },
      { ipv4: "172.100.100.129/24", ipv6: "3fff:172:100:100::3/80" },
    ]);
    const plan = planLab(t, { name: "x", vipmux: self });
    expect(mgmtNetworkCommands(plan.mgmt!)).toContainEqual([
      "ip",
      "-n",
      "clab-x-_mgmt",
      "link",
      "add",
      "br-lab-mgmt",
      "mtu",
      "1400",
      "type",
      "bridge",
    ]);
    expect(mgmtNodeCommands(plan.mgmt!, plan.nodes[1]!)[0]).toEqual([
      "ip",
      "-n",
      "clab-x-b",
      "link",
      "add",
      "eth0",
      "mtu",
      "1400",
      "type",
      "veth",
      "peer",
      "name",
      "v1-b",
      "mtu",
      "1400",
      "netns",
      "clab-x-_mgmt",
    ]);
  });

  it("only the families given: an IPv4 subnet alone means no IPv6 on eth0 (as containerlab)", () => {
    const t = topology(twoNodes("mgmt: { ipv4-subnet: 192.168.77.0/24, bridge: mgmtbr }"));
    expect(t.mgmt.ipv6).toBeUndefined();
    expect(t.mgmt.bridge).toBe("mgmtbr");
    const plan = planLab(t, { vipmux: self });
    expect(plan.nodes.map((n) => n.mgmt)).toEqual([
      { peer: "v0-a", addresses: ["192.168.77.2/24"], gateways: ["192.168.77.1"] },
      { peer: "v1-b", addresses: ["192.168.77.3/24"], gateways: ["192.168.77.1"] },
    ]);
    expect(mgmtNodeCommands(plan.mgmt!, plan.nodes[0]!).filter((a) => a.includes("-6"))).toEqual(
      [],
    );
  });

  it("mgmt-ipv4 / mgmt-ipv6 are kept, the others skip them", () => {
    const t = topology(twoNodes("", ", mgmt-ipv4: 172.20.20.2, mgmt-ipv6: '3fff:172:20:20::99'"));
    expect(t.nodes.map((n) => n.mgmt)).toEqual([
      { ipv4: "172.20.20.2/24", ipv6: "3fff:172:20:20::99/64" },
      { ipv4: "172.20.20.3/24", ipv6: "3fff:172:20:20::2/64" },
    ]);
  });

  it("network-mode none: no eth0 (containerlab gives the node no management interface)", () => {
    const plan = planLab(topology(twoNodes("", ", network-mode: none")), { vipmux: self });
    expect(plan.nodes[0]?.mgmt).toBeUndefined();
    expect(mgmtNodeCommands(plan.mgmt!, plan.nodes[0]!)).toEqual([]);
    expect(plan.nodes[1]?.mgmt?.addresses).toEqual(["172.20.20.2/24", "3fff:172:20:20::2/64"]);
    const none = planLab(topology(twoNodes("", ", network-mode: none", ", network-mode: none")), {
      vipmux: self,
    });
    expect(none.mgmt).toBeUndefined();
  });

  it("refuses what the namespace runner cannot build, or addresses that collide", () => {
    expect(errorsOf(twoNodes("", ", network-mode: host"))).toEqual([
      expect.stringMatching(
        /test\.clab\.yml:\d+:\d+: topology\.nodes\.a\.network-mode: network-mode "host" is not supported/,
      ),
    ]);
    expect(errorsOf(twoNodes("", ", mgmt-ipv4: 172.20.20.1", ", mgmt-ipv4: 10.1.1.1"))).toEqual([
      expect.stringMatching(
        /topology\.nodes\.a\.mgmt-ipv4: 172\.20\.20\.1 is already the gateway's/,
      ),
      expect.stringMatching(
        /topology\.nodes\.b\.mgmt-ipv4: 10\.1\.1\.1 is not a host address of 172\.20\.20\.0\/24/,
      ),
    ]);
    expect(errorsOf(twoNodes("", ", mgmt-ipv4: 172.20.20.9", ", mgmt-ipv4: 172.20.20.9"))).toEqual([
      expect.stringMatching(/topology\.nodes\.b\.mgmt-ipv4: 172\.20\.20\.9 is already a's/),
    ]);
    expect(errorsOf(twoNodes("mgmt: { ipv4-subnet: 10.0.0.0/16 }"))).toEqual([
      expect.stringMatching(
        /topology\.links\.0\.ipv4\.0: 10\.0\.0\.1\/30 overlaps the management subnet 10\.0\.0\.0\/16/,
      ),
      expect.stringMatching(/topology\.links\.0\.ipv4\.1: 10\.0\.0\.2\/30 overlaps/),
    ]);
    expect(errorsOf(twoNodes("mgmt: { ipv4-subnet: 172.20.20.0/31 }"))).toEqual([
      expect.stringMatching(/mgmt\.ipv4-subnet: "172\.20\.20\.0\/31" is not an IPv4 subnet/),
    ]);
    expect(errorsOf(twoNodes("mgmt: { ipv4-subnet: 172.20.20.0/30 }"))).toEqual([
      expect.stringMatching(/no free IPv4 management address left for node b/),
    ]);
    expect(errorsOf(twoNodes("mgmt: { bridge: a-name-far-too-long }"))).toEqual([
      expect.stringMatching(/mgmt\.bridge: "a-name-far-too-long" is not a valid Linux interface/),
    ]);
  });

  it("resolveMgmt: `auto` is the default subnet; an IPv6 subnet alone means no IPv4", () => {
    const auto = resolveMgmt({ "ipv4-subnet": "auto" }, [{ name: "a" }]);
    expect(auto.problems).toEqual([]);
    expect(auto.mgmt.ipv4?.subnet).toBe("172.20.20.0/24");
    expect(auto.mgmt.ipv6).toBeUndefined();
    const v6 = resolveMgmt({ "ipv6-subnet": "fd00:1::/64" }, [
      { name: "a" },
      { name: "b", mgmtIpv4: "172.20.20.5" },
    ]);
    expect(v6.mgmt.ipv4).toBeUndefined();
    expect(v6.nodes.get("a")).toEqual({ ipv6: "fd00:1::2/64" });
    expect(v6.problems).toEqual([
      {
        path: "topology.nodes.b.mgmt-ipv4",
        message: "mgmt.ipv4-subnet is not set, so the management network has no IPv4",
      },
    ]);
  });

  it("prefixesOverlap compares within one family only", () => {
    expect(prefixesOverlap("10.0.0.1/30", "10.0.0.0/8")).toBe(true);
    expect(prefixesOverlap("10.0.0.1/30", "10.0.0.4/30")).toBe(false);
    expect(prefixesOverlap("3fff:172:20:20::5/128", "3fff:172:20:20::/64")).toBe(true);
    expect(prefixesOverlap("3fff:172:20:21::5/128", "3fff:172:20:20::/64")).toBe(false);
    expect(prefixesOverlap("10.0.0.1/30", "::/0")).toBe(false);
  });
});
