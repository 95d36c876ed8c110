import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { planFromFile } from "../../../src/lab/index.ts";
import {
  frrProfile,
  netnsName,
  parseDaemonsFile,
  substitute,
  tmpPrefixFor,
} from "../../../src/lab/plan.ts";
import { backoffMs } from "../../../src/lab/supervisor.ts";
import { splitCommand } from "../../../src/util/proc.ts";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const canonical = `${root}containerlab/vipmux.clab.yml`;
const self = ["/usr/bin/node", "/opt/vipmux/dist/cli/main.js"];

describe("lab plan", () => {
  const plan = planFromFile(canonical, { name: "t1", vipmux: self });

  it("prefixes every namespace with the lab name", () => {
    expect(plan.prefix).toBe("clab-t1-");
    for (const n of plan.nodes) expect(n.netns).toBe(`clab-t1-${n.name}`);
    const other = planFromFile(canonical, { name: "t2", vipmux: self });
    const mine = new Set(plan.nodes.map((n) => n.netns));
    expect(other.nodes.some((n) => mine.has(n.netns))).toBe(false);
    expect(plan.dir).toBe("/var/run/vipmux/lab/t1");
  });

  it("gives every veth end a unique temporary name that fits IFNAMSIZ", () => {
    const tmps = plan.links.flatMap((l) => [l.a.tmp, l.b.tmp]);
    expect(new Set(tmps).size).toBe(tmps.length);
    for (const t of tmps) {
      expect(t.length).toBeLessThanOrEqual(15);
      expect(t.startsWith(plan.tmpPrefix)).toBe(true);
    }
    expect(tmpPrefixFor("t1")).not.toBe(tmpPrefixFor("t2"));
  });

  it("keeps the endpoint interface names and addresses", () => {
    const l = plan.links.find((x) => x.a.node === "mux2");
    expect(l?.a).toMatchObject({
      netns: "clab-t1-mux2",
      iface: "eth1",
      addresses: ["192.0.2.6/30", "2001:db8:0:2::2/64"],
    });
    expect(l?.b).toMatchObject({ netns: "clab-t1-edge", iface: "eth3" });
  });

  it("runs FRR on the edge with the daemons the bound file enables", () => {
    const edge = plan.nodes.find((n) => n.name === "edge");
    expect(edge?.frr).toEqual({
      pathspace: netnsName("t1", "edge"),
      config: `${root}containerlab/edge/frr.conf`,
      daemons: ["zebra", "bgpd", "bfdd"],
      profile: "datacenter",
    });
    expect(plan.nodes.find((n) => n.name === "mux1")?.frr).toBeUndefined();
  });

  it("splits exec lines into argv", () => {
    const host1 = plan.nodes.find((n) => n.name === "host1");
    expect(host1?.exec[0]).toEqual(["ip", "link", "add", "br0", "type", "bridge"]);
    expect(host1?.sysctls).toEqual({
      "net.ipv4.ip_forward": "1",
      "net.ipv6.conf.all.forwarding": "1",
    });
  });
});

describe("command substitution", () => {
  const binds = [
    { host: "/lab/mux1", container: "/etc/vipmux" },
    { host: "/lab/mux1/special.yml", container: "/etc/vipmux/mux.yml" },
  ];
  it("maps bind targets to host paths, longest first, also in --opt=value", () => {
    expect(
      substitute(
        ["cat", "/etc/vipmux/a.yml", "--config=/etc/vipmux/mux.yml", "/etc/other"],
        binds,
        "linux",
        self,
      ),
    ).toEqual(["cat", "/lab/mux1/a.yml", "--config=/lab/mux1/special.yml", "/etc/other"]);
  });
  it("runs this checkout's CLI for `vipmux` on vipmux nodes only", () => {
    expect(
      substitute(["vipmux", "run", "-c", "/etc/vipmux/mux.yml"], binds, "vipmux", self),
    ).toEqual([...self, "run", "-c", "/lab/mux1/special.yml"]);
    expect(substitute(["vipmux", "run"], binds, "linux", self)).toEqual(["vipmux", "run"]);
  });
});

describe("helpers", () => {
  it("splitCommand honours quotes and escapes", () => {
    expect(splitCommand(`vtysh -c "show bgp summary json"`)).toEqual([
      "vtysh",
      "-c",
      "show bgp summary json",
    ]);
    expect(splitCommand(`sh -c 'echo "a b"' x\\ y ""`)).toEqual([
      "sh",
      "-c",
      'echo "a b"',
      "x y",
      "",
    ]);
    expect(() => splitCommand(`echo "open`)).toThrow(/unterminated/);
  });

  it("parseDaemonsFile reads yes/no lines only", () => {
    expect([
      ...parseDaemonsFile('bgpd=yes\nbfdd=no\n#ospfd=yes\nstaticd="yes"\nbgpd_options="-A 1"\n'),
    ]).toEqual(["bgpd", "staticd"]);
  });

  it("frrProfile finds the defaults line", () => {
    expect(frrProfile("hostname x\nfrr defaults datacenter\n")).toBe("datacenter");
    expect(frrProfile("frr defaults traditional\n")).toBe("traditional");
    expect(frrProfile("")).toBe("traditional");
  });

  it("supervisor back-off doubles to a cap and resets after a stable run", () => {
    expect([1, 2, 3, 4, 5, 6, 10].map((s) => backoffMs(s, 100))).toEqual([
      500, 1000, 2000, 4000, 8000, 10000, 10000,
    ]);
    expect(backoffMs(9, 60_000)).toBe(500);
  });
});

describe("skipCmd", () => {
  it("drops the cmd of the named nodes (or all), keeping everything else", () => {
    const file = `${root}test/fixtures/lab/supervised.clab.yml`;
    expect(planFromFile(file, { vipmux: self }).nodes.map((n) => !!n.cmd)).toEqual([true, true]);
    expect(planFromFile(file, { vipmux: self, skipCmd: ["a"] }).nodes.map((n) => !!n.cmd)).toEqual([
      false,
      true,
    ]);
    expect(planFromFile(file, { vipmux: self, skipCmd: true }).nodes.map((n) => !!n.cmd)).toEqual([
      false,
      false,
    ]);
  });
});
