// The host agent's metrics: what its last reconcile programmed (from the real planner),
// its probes, its health streams and reconciles, served on the config's ADDRESS:PORT.
import { describe, expect, it } from "vitest";
import { type HostAgentConfig, parseHostAgentConfig } from "../../../src/config/host-agent.ts";
import {
  HostAgentMetrics,
  type HostAgentMetricsSources,
  programmedState,
} from "../../../src/hostagent/metrics.ts";
import { plan } from "../../../src/hostagent/plan.ts";

function cfg(extra = ""): HostAgentConfig {
  const r = parseHostAgentConfig(
    `node: { name: h }
host: { pa: 198.51.100.2 }
${extra}
services:
  - name: web
    vip: 20.20.20.100
    ports: [ { protocol: tcp, port: 80, backend-port: 8080 } ]
    vni: 100
    backends:
      - { dip: 10.10.1.11, host: 198.51.100.2 }
      - { dip: 10.10.1.12, host: 198.51.100.2 }
      - { dip: 10.10.2.21, host: 198.51.100.6 }
  - name: elsewhere
    vip: 20.20.20.101
    ports: [ { protocol: tcp, port: 80 } ]
    vni: 100
    backends: [ { dip: 10.10.2.22, host: 198.51.100.6 } ]
`,
    "h.yml",
    {},
  );
  if (!r.ok) throw new Error(r.error.map((e) => `${e.path}: ${e.message}`).join("\n"));
  return r.value;
}

const lines = (text: string) => text.split("\n").filter((l) => !l.startsWith("#"));

describe("host agent metrics", () => {
  it("programmed services and DIPs come from the plan the reconcile applied", async () => {
    const c = cfg();
    // 10.10.1.12 fails its probes: the host gives it no new flows.
    const desired = plan(c, new Set(["web/10.10.1.12"]));
    const programmed = programmedState(c.services, c.host.pa, desired.tables, desired.links.length);
    expect(programmed).toEqual({
      devices: 1,
      services: [
        { service: "web", local: ["10.10.1.11", "10.10.1.12"], programmed: ["10.10.1.11"] },
      ],
    });
    const m = new HostAgentMetrics({
      programmed: () => programmed,
      targets: () => [
        { key: "web/10.10.1.11", up: true },
        { key: "web/10.10.1.12", up: false },
      ],
      streams: () => [
        { mux: "192.0.2.2:7946", up: true },
        { mux: "[2001:db8::6]:7946", up: false },
      ],
    });
    m.probed("web/10.10.1.11", true, 2);
    m.probed("web/10.10.1.12", false, 500);
    m.reconciles.inc({ result: "ok" });
    m.reconcileChanges.inc(5);
    m.reconcileDuration.observe(0.02);
    const text = lines(await m.text());
    for (const line of [
      "vipmux_hostagent_services_programmed 1",
      "vipmux_hostagent_vxlan_devices 1",
      'vipmux_hostagent_dip_programmed{service="web",dip="10.10.1.11"} 1',
      'vipmux_hostagent_dip_programmed{service="web",dip="10.10.1.12"} 0',
      'vipmux_hostagent_backend_up{service="web",dip="10.10.1.11"} 1',
      'vipmux_hostagent_backend_up{service="web",dip="10.10.1.12"} 0',
      'vipmux_hostagent_health_stream_up{mux="192.0.2.2:7946"} 1',
      'vipmux_hostagent_health_stream_up{mux="[2001:db8::6]:7946"} 0',
      'vipmux_hostagent_probes_total{service="web",dip="10.10.1.11",result="ok"} 1',
      'vipmux_hostagent_probes_total{service="web",dip="10.10.1.12",result="failed"} 1',
      'vipmux_health_probe_duration_seconds_bucket{le="0.0025",service="web"} 1',
      'vipmux_health_probe_duration_seconds_count{service="web"} 2',
      'vipmux_hostagent_reconciles_total{result="ok"} 1',
      'vipmux_hostagent_reconciles_total{result="failed"} 0',
      "vipmux_hostagent_reconcile_changes_total 5",
      'vipmux_hostagent_reconcile_duration_seconds_bucket{le="0.025"} 1',
      'vipmux_config_reloads_total{result="invalid"} 0',
    ])
      expect(text).toContain(line);
    expect(text.some((l) => l.startsWith("vipmux_build_info{"))).toBe(true);
    expect(text.some((l) => l.startsWith("vipmux_nodejs_eventloop_lag_seconds "))).toBe(true);
    // The other host's DIPs and services are not this agent's.
    expect(text.join("\n")).not.toMatch(/10\.10\.2\.2[12]|elsewhere/);
  });

  it("nothing programmed yet: zero programmed, the rest still there", async () => {
    const m = new HostAgentMetrics({
      programmed: () => undefined,
      targets: () => [],
      streams: () => [],
    });
    const text = lines(await m.text()).join("\n");
    expect(text).toMatch(/^vipmux_hostagent_services_programmed 0$/m);
    expect(text).not.toMatch(/^vipmux_hostagent_dip_programmed\{/m);
    expect(text).toMatch(/^vipmux_hostagent_reconciles_total\{result="failed"\} 0$/m);
  });

  it("the config's metrics address: off when absent, moved on reload, a bare port refused", async () => {
    expect(cfg().metrics).toBeUndefined();
    expect(cfg("metrics: 127.0.0.1:9274").metrics).toBe("127.0.0.1:9274");
    const bad = parseHostAgentConfig(
      "node: { name: h }\nhost: { pa: 198.51.100.2 }\nmetrics: 9274\n",
      "h.yml",
      {},
    );
    expect(bad.ok ? [] : bad.error.map((e) => `${e.path}: ${e.message}`)).toEqual([
      expect.stringMatching(/^metrics: .*a bare port is not an address: write ADDRESS:PORT/),
    ]);
    const src: HostAgentMetricsSources = {
      programmed: () => undefined,
      targets: () => [],
      streams: () => [],
    };
    const m = new HostAgentMetrics(src);
    try {
      expect(await m.serve(undefined)).toBeUndefined();
      const a = await m.serve("127.0.0.1:0");
      expect(a).toBeGreaterThan(0);
      const res = await fetch(`http://127.0.0.1:${a}/metrics`);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain("vipmux_hostagent_reconciles_total");
      // The same address again keeps the socket; another one moves it.
      expect(await m.serve("127.0.0.1:0")).toBe(a);
      const b = await m.serve("[::1]:0");
      expect((await fetch(`http://[::1]:${b}/metrics`)).status).toBe(200);
      await expect(fetch(`http://127.0.0.1:${a}/metrics`)).rejects.toThrow();
      expect(await m.serve(undefined)).toBeUndefined();
    } finally {
      await m.close();
    }
  });
});
