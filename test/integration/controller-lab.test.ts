// The control plane end to end in the canonical lab: two `vipmux run` MUXes (engine none:
// BGP + health + controller), host-agent health from host1/host2, HTTP/TCP backends in
// the VMs, and the edge router's FIB as the judge.
import type { ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureSecretFile } from "../../src/lab/secrets.ts";
import { fibNextHops, pollUntil, startLab, type TestLab } from "../../src/lab/testing.ts";
import { canonicalTopology, fixture, isRoot, repoRoot } from "./helpers.ts";

const node = process.execPath;
const cli = `${repoRoot}src/cli/main.ts`;
const V4 = "20.20.20.100";
const API = "20.20.20.101";
const V6 = "2001:db8:f::100";

describe.skipIf(!isRoot)("controller: one health state drives the edge FIB", () => {
  let lab: TestLab;
  const hops = (prefix: string) => fibNextHops(lab, "edge", prefix);
  const waitHops = (prefix: string, want: string[], what: string, timeoutMs = 15_000) =>
    pollUntil(
      async () => {
        const h = await hops(prefix);
        return JSON.stringify(h) === JSON.stringify(want) ? h : undefined;
      },
      { timeoutMs, intervalMs: 50, what },
    );
  // Namespaces share one PID space: processes are stopped through their handles, never
  // by pkill -f, which would hit the same program in every node.
  const procs = new Map<string, ChildProcess>();
  const serve = (vm: string, kind: "http" | "tcp", port: number) =>
    procs.set(
      `${vm}-${kind}`,
      lab.spawn(
        vm,
        [node, fixture(`servers/${kind}.ts`), vm, String(port)],
        `${vm}-${kind}-${port}`,
      ),
    );
  const signal = (name: string, sig: NodeJS.Signals) => {
    const p = procs.get(name);
    if (!p?.kill(sig))
      throw new Error(
        `could not send ${sig} to ${name} (pid ${p?.pid}, exit ${p?.exitCode}, signal ${p?.signalCode})`,
      );
  };

  beforeAll(async () => {
    lab = await startLab(canonicalTopology, "ctl", { skipCmd: true });
    // The MUXes' health.token: made here, never committed (mode 0600, see src/lab/secrets.ts).
    ensureSecretFile(fixture("controller-lab/token"));
    for (const vm of ["vm11", "vm21"]) serve(vm, "http", 8080);
    for (const vm of ["vm12", "vm22"]) serve(vm, "tcp", 8081);
    for (const [mux, file] of [
      ["mux1", "controller-lab/mux1.yml"],
      ["mux2", "controller-lab/mux2.yml"],
    ] as const)
      procs.set(
        mux,
        lab.spawn(mux, [node, cli, "run", "--config", fixture(file)], `vipmux-${mux}`),
      );
    for (const [host, pa] of [
      ["host1", "198.51.100.2"],
      ["host2", "198.51.100.6"],
    ] as const) {
      const argv = [
        node,
        fixture("controller-lab/agent.ts"),
        fixture("controller-lab/mux1.yml"),
        pa,
      ];
      procs.set(`agent-${host}`, lab.spawn(host, argv, `agent-${host}`));
    }
  });
  afterAll(async () => {
    await lab?.down();
  });

  it("announces each VIP from both MUXes once its backends are healthy (ECMP at the edge)", async () => {
    await waitHops(`${V4}/32`, ["192.0.2.2", "192.0.2.6"], "web VIP via both MUXes", 30_000);
    await waitHops(`${API}/32`, ["192.0.2.2", "192.0.2.6"], "api VIP via both MUXes");
    const v6 = await pollUntil(
      async () => {
        const h = await hops(`${V6}/128`);
        return h.length === 2 ? h : undefined;
      },
      { timeoutMs: 15_000, what: "IPv6 VIP via both MUXes" },
    );
    expect(v6).toEqual(["2001:db8:0:1::2", "2001:db8:0:2::2"]);
  });

  it("status over the admin socket shows peers, VIPs and backends", async () => {
    const out = await lab.must("mux1", [
      node,
      cli,
      "status",
      "--json",
      "-s",
      "/run/vipmux/ctl-lab-mux1.sock",
    ]);
    const s = JSON.parse(out) as {
      muxHealthy: boolean;
      peers: { address: string; state: string }[];
      services: { name: string; announced: boolean; healthy: number }[];
      hostAgents: { connected: string[] };
    };
    expect(s.muxHealthy).toBe(true);
    expect(s.peers).toEqual([
      expect.objectContaining({ address: "192.0.2.1", state: "Established" }),
    ]);
    expect(s.services.map((v) => [v.name, v.announced, v.healthy])).toEqual([
      ["web", true, 2],
      ["api", true, 2],
      ["web6", true, 1],
      ["flappy", false, 0],
    ]);
    expect(s.hostAgents.connected).toEqual(["198.51.100.2", "198.51.100.6"]);
    const text = await lab.must("mux1", [
      node,
      cli,
      "status",
      "-s",
      "/run/vipmux/ctl-lab-mux1.sock",
    ]);
    expect(text).toMatch(/^mux1: healthy/);
    expect(text).toMatch(/web\s+20\.20\.20\.100\s+2\/2\s+yes\s+healthy/);
    const metrics = await lab.must("mux1", ["curl", "-s", "http://192.0.2.2:9273/metrics"]);
    expect(metrics).toMatch(/vipmux_bgp_session_up\{peer="192\.0\.2\.1"\} 1/);
    expect(metrics).toMatch(/vipmux_vip_announced\{service="web",vip="20\.20\.20\.100"\} 1/);
    expect(metrics).toMatch(/vipmux_backend_up\{service="api",dip="10\.10\.2\.22"\} 1/);
  });

  it("a real Prometheus scraping both MUXes sees session-up and VIP-announced series", async () => {
    const data = `${lab.plan.dir}/prometheus-data`;
    lab.spawn(
      "client",
      [
        "prometheus",
        `--config.file=${fixture("controller-lab/prometheus.yml")}`,
        `--storage.tsdb.path=${data}`,
        "--web.listen-address=127.0.0.1:9090",
      ],
      "prometheus",
    );
    type Vector = {
      status: string;
      data: { result: { metric: Record<string, string>; value: [number, string] }[] };
    };
    const query = async (q: string) =>
      JSON.parse(
        await lab.must("client", [
          "curl",
          "-sf",
          "--get",
          "--data-urlencode",
          `query=${q}`,
          "http://127.0.0.1:9090/api/v1/query",
        ]),
      ) as Vector;
    const up = await pollUntil(
      async () => {
        const r = await query("vipmux_bgp_session_up");
        return r.data.result.length === 2 ? r : undefined;
      },
      {
        timeoutMs: 30_000,
        intervalMs: 500,
        what: "vipmux_bgp_session_up from both MUXes in Prometheus",
      },
    );
    expect(
      up.data.result.map((r) => [r.metric.instance, r.metric.peer, r.value[1]]).sort(),
    ).toEqual([
      ["192.0.2.2:9273", "192.0.2.1", "1"],
      ["192.0.2.6:9273", "192.0.2.5", "1"],
    ]);
    const vips = await query('vipmux_vip_announced{service="web"}');
    expect(
      vips.data.result.map((r) => [r.metric.instance, r.metric.vip, r.value[1]]).sort(),
    ).toEqual([
      ["192.0.2.2:9273", "20.20.20.100", "1"],
      ["192.0.2.6:9273", "20.20.20.100", "1"],
    ]);
  });

  it("all backends of a VIP down: the VIP leaves the edge FIB; one back: it returns; other VIPs never flap", async () => {
    const apiBefore = await hops(`${API}/32`);
    expect(apiBefore).toEqual(["192.0.2.2", "192.0.2.6"]);
    // Watch the api VIP in the edge FIB the whole time: it must never change.
    const apiSeen = new Set<string>();
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        apiSeen.add(JSON.stringify(await hops(`${API}/32`)));
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    try {
      signal("vm11-http", "SIGTERM");
      signal("vm21-http", "SIGTERM");
      // interval 200 ms x fall 2, plus stream and BGP: well under 3 s.
      await waitHops(`${V4}/32`, [], "web VIP withdrawn", 5_000);
      serve("vm21", "http", 8080);
      await waitHops(`${V4}/32`, ["192.0.2.2", "192.0.2.6"], "web VIP back after rise", 10_000);
      serve("vm11", "http", 8080);
    } finally {
      watching = false;
      await watcher;
    }
    expect([...apiSeen]).toEqual([JSON.stringify(apiBefore)]);
  });

  it("a silent host agent takes its DIPs down on both MUXes within agent-timeout", async () => {
    signal("agent-host2", "SIGSTOP");
    try {
      // api has one DIP per host and min-healthy 1: it stays; its host2 DIP goes down.
      const down = async (mux: string, sock: string) => {
        const s = JSON.parse(await lab.must(mux, [node, cli, "status", "--json", "-s", sock])) as {
          backends: { dip: string; healthy: boolean | null }[];
        };
        return s.backends.find((b) => b.dip === "10.10.2.22")?.healthy === false;
      };
      const t0 = Date.now();
      await pollUntil(
        async () =>
          (await down("mux1", "/run/vipmux/ctl-lab-mux1.sock")) &&
          (await down("mux2", "/run/vipmux/ctl-lab-mux2.sock")),
        {
          timeoutMs: 6_000,
          intervalMs: 100,
          what: "host2's DIPs down on both MUXes",
        },
      );
      expect(Date.now() - t0).toBeLessThan(4_000); // agent-timeout 1.5 s
    } finally {
      signal("agent-host2", "SIGCONT");
    }
  });

  it("drain mux1: graceful-shutdown community at the edge, traffic moves to mux2, then withdraw; undrain restores", async () => {
    await waitHops(`${V4}/32`, ["192.0.2.2", "192.0.2.6"], "both MUXes before the drain");
    const drained = await lab.must("mux1", [
      node,
      cli,
      "drain",
      "mux",
      "-s",
      "/run/vipmux/ctl-lab-mux1.sock",
    ]);
    expect(drained).toBe("drained mux\n");
    let lastRib = "";
    try {
      // FRR's datacenter profile honours GRACEFUL_SHUTDOWN (local-pref 0): only mux2 is best.
      type Rib = { paths?: { community?: { string: string } }[] };
      const rib = await pollUntil(
        async () => {
          const r = await lab.vtyshJson<Rib>("edge", `show bgp ipv4 unicast ${V4}/32 json`);
          lastRib = JSON.stringify(r).slice(0, 1500);
          return r.paths?.some((p) => p.community?.string === "graceful-shutdown") ? r : undefined;
        },
        { timeoutMs: 5_000, what: "graceful-shutdown community on mux1's path" },
      ).catch((e: Error) => {
        throw new Error(`${e.message}; last RIB entry: ${lastRib}`);
      });
      expect(rib.paths).toHaveLength(2);
      await waitHops(`${V4}/32`, ["192.0.2.6"], "edge prefers mux2 during the drain", 5_000);
      // After drain.wait (8 s) mux1 withdraws: mux2 alone, path count 1.
      await pollUntil(
        async () => {
          const r = await lab.vtyshJson<{ paths: unknown[] }>(
            "edge",
            `show bgp ipv4 unicast ${V4}/32 json`,
          );
          return r.paths.length === 1;
        },
        { timeoutMs: 15_000, what: "mux1 withdrew after the drain wait" },
      );
    } finally {
      await lab.must("mux1", [node, cli, "undrain", "mux", "-s", "/run/vipmux/ctl-lab-mux1.sock"]);
    }
    await waitHops(`${V4}/32`, ["192.0.2.2", "192.0.2.6"], "mux1 back after undrain");
  });

  it("a backend flapping every 500 ms for 30 s: no more UPDATEs than the damping allows", async () => {
    const FLAPPY = "20.20.20.102";
    const updatesFrom = async () => {
      const n = await lab.vtyshJson<Record<string, { messageStats: { updatesRecv: number } }>>(
        "edge",
        "show bgp neighbors json",
      );
      return (
        (n["192.0.2.2"]?.messageStats.updatesRecv ?? 0) +
        (n["192.0.2.6"]?.messageStats.updatesRecv ?? 0)
      );
    };
    // A stable start: the backend up, the VIP announced by both MUXes.
    const flapper = lab.spawn(
      "vm12",
      [node, fixture("servers/flap.ts"), "8082", "500", "30000"],
      "vm12-flap",
    );
    try {
      await waitHops(`${FLAPPY}/32`, ["192.0.2.2", "192.0.2.6"], "flappy VIP announced", 10_000);
      const before = await updatesFrom();
      await new Promise((r) => setTimeout(r, 31_000));
      const updates = (await updatesFrom()) - before;
      // Damping (penalty 1000, suppress 2000, half-life 10 s): per MUX at most three
      // withdrawals and two re-announcements get through, then the VIP stays withdrawn.
      // Undamped, 30 s of 500 ms flaps would be ~60 UPDATEs per MUX.
      expect(updates).toBeGreaterThan(0);
      expect(updates).toBeLessThanOrEqual(2 * 5);
      // The backend is up again but the VIP stays suppressed until it has been stable.
      expect(await hops(`${FLAPPY}/32`)).toEqual([]);
      const s = JSON.parse(
        await lab.must("mux1", [
          node,
          cli,
          "status",
          "--json",
          "-s",
          "/run/vipmux/ctl-lab-mux1.sock",
        ]),
      ) as {
        services: { name: string; reason: string }[];
      };
      expect(s.services.find((v) => v.name === "flappy")?.reason).toMatch(
        /suppressed by flap damping/,
      );
    } finally {
      flapper.kill("SIGTERM");
    }
  });

  it("SIGTERM withdraws everything and closes the session with a shutdown communication", async () => {
    signal("mux2", "SIGTERM");
    await waitHops(`${V4}/32`, ["192.0.2.2"], "mux2's routes gone", 10_000);
    const n = await lab.vtyshJson<
      Record<string, { lastNotificationReason?: string; lastResetDueTo?: string; bgpState: string }>
    >("edge", "show bgp neighbors 192.0.2.6 json");
    const peer = n["192.0.2.6"];
    expect(peer?.bgpState).not.toBe("Established");
    expect(JSON.stringify(peer)).toMatch(/Administrative Shutdown|administrative shutdown|Admin/i);
  });
});
