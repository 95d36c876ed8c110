// The namespace lab end to end: the canonical topology with real FRR, two third-party BGP
// speakers standing in for MUXes, ECMP in the edge kernel FIB, and a clean teardown.
import { existsSync, readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { frrConfDir, frrRunDir } from "../../src/lab/frr.ts";
import { fibNextHops, pollUntil, startLab, type TestLab } from "../../src/lab/testing.ts";
import { isAlive, run } from "../../src/util/proc.ts";
import {
  canonicalTopology,
  fixture,
  isRoot,
  namespacesWithPrefix,
  processesMatching,
  rootLinksWithPrefix,
  vipmux,
} from "./helpers.ts";

interface BgpSummary {
  ipv4Unicast: { as: number; peers: Record<string, { state: string; remoteAs: number }> };
}

describe.skipIf(!isRoot)("canonical lab with FRR", () => {
  let lab: TestLab;
  let tornDown = false;

  beforeAll(async () => {
    lab = await startLab(canonicalTopology, "lab", { skipCmd: true });
  });
  afterAll(async () => {
    if (!tornDown) await lab?.down();
  });

  it("creates one namespace per node with the planned interfaces", async () => {
    const ns = await namespacesWithPrefix(lab.plan.prefix);
    expect(ns.sort()).toEqual([...lab.plan.nodes.map((n) => n.netns), lab.plan.mgmt?.netns].sort());
    const links = JSON.parse(await lab.must("edge", ["ip", "-j", "link", "show"])) as {
      ifname: string;
    }[];
    expect(
      links
        .map((l) => l.ifname)
        .filter((n) => n.startsWith("eth"))
        .sort(),
    ).toEqual(["eth0", "eth1", "eth2", "eth3", "eth4", "eth5"]); // eth0: management
    // The underlay works end to end: client reaches a host PA through the edge router.
    await lab.must("client", ["ping", "-c", "1", "-W", "2", "198.51.100.6"]);
  });

  it("edge FRR answers show bgp summary json with both MUX peers", async () => {
    const summary = await lab.vtyshJson<BgpSummary>("edge", "show bgp summary json");
    expect(summary.ipv4Unicast.as).toBe(65000);
    expect(Object.keys(summary.ipv4Unicast.peers).sort()).toEqual(["192.0.2.2", "192.0.2.6"]);
    // The same through the CLI a user types.
    const cli = vipmux([
      "lab",
      "exec",
      "--name",
      lab.plan.lab,
      "edge",
      "--",
      "vtysh",
      "-c",
      "show bgp summary json",
    ]);
    expect(cli.code).toBe(0);
    expect((JSON.parse(cli.stdout) as BgpSummary).ipv4Unicast.as).toBe(65000);
  });

  it("a speaker in mux1 puts the VIP in the edge FIB; a second in mux2 makes it ECMP", async () => {
    lab.spawn(
      "mux1",
      [
        "env",
        "exabgp.daemon.user=root",
        "exabgp.daemon.daemonize=false",
        "exabgp.api.cli=false",
        "exabgp.log.destination=stdout",
        "exabgp",
        fixture("lab/exabgp-mux1.conf"),
      ],
      "exabgp-mux1",
    );
    const one = await pollUntil(
      async () => {
        const hops = await fibNextHops(lab, "edge", "20.20.20.100");
        return hops.length === 1 ? hops : undefined;
      },
      { timeoutMs: 30_000, what: "20.20.20.100/32 via mux1 in the edge FIB" },
    );
    expect(one).toEqual(["192.0.2.2"]);

    lab.spawn(
      "mux2",
      [
        "gobgpd",
        "-f",
        fixture("lab/gobgp-mux2.toml"),
        "-t",
        "toml",
        "--api-hosts",
        "127.0.0.1:50051",
      ],
      "gobgp-mux2",
    );
    await pollUntil(
      async () =>
        (
          await lab.exec("mux2", [
            "gobgp",
            "-u",
            "127.0.0.1",
            "-p",
            "50051",
            "global",
            "rib",
            "add",
            "20.20.20.100/32",
            "-a",
            "ipv4",
            "nexthop",
            "192.0.2.6",
            "origin",
            "igp",
          ])
        ).code === 0,
      { timeoutMs: 20_000, what: "gobgpd API in mux2" },
    );
    const two = await pollUntil(
      async () => {
        const hops = await fibNextHops(lab, "edge", "20.20.20.100");
        return hops.length === 2 ? hops : undefined;
      },
      { timeoutMs: 30_000, what: "two ECMP next hops for 20.20.20.100/32" },
    );
    expect(two).toEqual(["192.0.2.2", "192.0.2.6"]);
    const rib = await lab.vtyshJson<
      Record<string, { nexthops: { ip: string; fib?: boolean }[] }[]>
    >("edge", "show ip route 20.20.20.100/32 json");
    expect(
      rib["20.20.20.100/32"]?.[0]?.nexthops
        .filter((n) => n.fib)
        .map((n) => n.ip)
        .sort(),
    ).toEqual(two);
  });

  it("down leaves zero namespaces, links, processes and FRR pathspaces", async () => {
    const pids: number[] = [];
    for (const n of lab.plan.nodes) {
      const r = await run(["ip", "netns", "pids", n.netns]);
      pids.push(...r.stdout.split(/\s+/).filter(Boolean).map(Number));
    }
    expect(pids.length).toBeGreaterThanOrEqual(5); // zebra, bgpd, bfdd, exabgp, gobgpd
    const report = await lab.down();
    tornDown = true;
    expect(report.namespaces).toHaveLength(lab.plan.nodes.length + 1); // + management
    expect(await namespacesWithPrefix(lab.plan.prefix)).toEqual([]);
    expect(await rootLinksWithPrefix(lab.plan.tmpPrefix)).toEqual([]);
    expect(pids.filter(isAlive)).toEqual([]);
    expect(await processesMatching(lab.plan.prefix)).toEqual([]);
    const edge = lab.node("edge").frr!;
    expect(existsSync(frrRunDir(edge.pathspace))).toBe(false);
    expect(existsSync(frrConfDir(edge.pathspace))).toBe(false);
  });
});

describe.skipIf(!isRoot)("lab failures create nothing and leak nothing", () => {
  it.each([
    ["schema-violation", /topology\.nodes\.a\.startup-delay: must be integer/],
    ["unknown-node", /unknown node "ghost"/],
    ["duplicate-interface", /duplicate interface a:eth1/],
  ])("refuses the invalid topology %s", async (name, message) => {
    const before = await namespacesWithPrefix("clab-bad-");
    const r = vipmux(["lab", "up", "-t", fixture(`lab/${name}.clab.yml`)]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toContain(`${name}.clab.yml:`);
    expect(await namespacesWithPrefix("clab-bad-")).toEqual(before);
  });

  it("a failing exec during up removes everything created so far", async () => {
    const name = `failexec-${process.pid}`;
    const r = vipmux(["lab", "up", "-t", fixture("lab/failing-exec.clab.yml"), "--name", name]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/exec on b failed .*ip link set nonexistent0 up/);
    expect(await namespacesWithPrefix(`clab-${name}-`)).toEqual([]);
  });

  it("SIGINT during up removes everything created so far", async () => {
    const name = `slow-${process.pid}`;
    const { spawn } = await import("node:child_process");
    const { repoRoot } = await import("./helpers.ts");
    const child = spawn(
      process.execPath,
      [
        `${repoRoot}src/cli/main.ts`,
        "lab",
        "up",
        "-t",
        fixture("lab/slow-exec.clab.yml"),
        "--name",
        name,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let stderr = "";
    child.stderr.on("data", (d) => {
      stderr += String(d);
    });
    await pollUntil(async () => stderr.includes("exec a: sleep 5"), {
      timeoutMs: 20_000,
      what: "lab up to reach the slow exec",
    });
    expect((await namespacesWithPrefix(`clab-${name}-`)).length).toBe(3); // a, b, management
    child.kill("SIGINT");
    const code = await new Promise<number | null>((res) => child.on("exit", (c) => res(c)));
    expect(code).toBe(1);
    expect(stderr).toMatch(/interrupted by SIGINT/);
    expect(await namespacesWithPrefix(`clab-${name}-`)).toEqual([]);
  });

  it("supervises node cmd: logs each run, restarts it, and down stops it", async () => {
    const lab = await startLab(fixture("lab/supervised.clab.yml"), "sup");
    try {
      const log = `${lab.plan.dir}/a.log`;
      const runs = await pollUntil(
        async () => {
          const lines = existsSync(log)
            ? readFileSync(log, "utf8")
                .split("\n")
                .filter((l) => l.includes("hello from eth1"))
            : [];
          return lines.length >= 3 ? lines.length : undefined;
        },
        { timeoutMs: 20_000, what: "three runs of the supervised cmd" },
      );
      expect(runs).toBeGreaterThanOrEqual(3);
      const sup = JSON.parse(readFileSync(`${lab.plan.dir}/supervisor.json`, "utf8")) as Record<
        string,
        { starts: number; lastExit?: { code: number } }
      >;
      expect(sup.a?.starts).toBeGreaterThanOrEqual(3);
      expect(sup.a?.lastExit?.code).toBe(3);
      expect(sup.b?.starts).toBe(1);
      const st = vipmux(["lab", "status", "--json", "--name", lab.plan.lab]);
      const status = JSON.parse(st.stdout) as {
        nodes: { name: string; processes: { command: string }[] }[];
      };
      expect(status.nodes.find((n) => n.name === "b")?.processes.map((p) => p.command)).toEqual([
        "sleep 600",
      ]);
    } finally {
      await lab.down();
    }
    expect(await namespacesWithPrefix(lab.plan.prefix)).toEqual([]);
    expect(await processesMatching(lab.plan.dir)).toEqual([]);
  });
});
