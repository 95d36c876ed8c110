// Metrics read their values from the owners at scrape time, with Prometheus names/types.
import { describe, expect, it } from "vitest";
import { Metrics, type MetricsSources } from "../../../src/api/metrics.ts";

function sources(over: Partial<MetricsSources> = {}): MetricsSources {
  return {
    bgpPeers: () => [
      {
        peer: "192.0.2.1",
        up: true,
        uptimeSeconds: 12.5,
        messagesIn: { update: 3, keepalive: 10 },
        messagesOut: { update: 4 },
        prefixesSent: 2,
        prefixesReceived: 0,
      },
    ],
    vips: () => [
      { service: "web", vip: "20.20.20.100", announced: true },
      { service: "api", vip: "20.20.20.101", announced: false },
    ],
    backends: () => [{ service: "web", dip: "10.10.1.11", up: true }],
    muxHealthy: () => false,
    healthRejects: () => [[{ reason: "bad_mac" }, 2]],
    ...over,
  };
}

describe("metrics", () => {
  it("exposes every series with its type", async () => {
    let updates = 4;
    const m = new Metrics(
      sources({
        bgpPeers: () => [
          {
            peer: "192.0.2.1",
            up: true,
            uptimeSeconds: 12.5,
            messagesIn: {},
            messagesOut: { update: updates },
            prefixesSent: 2,
            prefixesReceived: 0,
          },
        ],
        dataplane: () => ({
          drops: { no_service: 7 },
          vips: [{ vip: "20.20.20.100", packets: 1000, bytes: 64000 }],
          backends: [{ service: "web", dip: "10.10.1.11", packets: 1000, bytes: 64000 }],
          conn: { size: 42, capacity: 1_000_000, expired: 3, fallback: 0, untrustedRefused: 5 },
          // bucket i counts batches under 2^i µs: 4 under 8 µs, 6 more under 16 µs.
          batchLatencyUs: [0, 0, 0, 4, 6, 0],
        }),
      }),
    );
    m.configReloads.inc({ result: "applied" });
    m.probeDuration.observe({ service: "web" }, 0.004);
    const text = await m.text();
    for (const line of [
      "# TYPE vipmux_bgp_session_up gauge",
      'vipmux_bgp_session_up{peer="192.0.2.1"} 1',
      'vipmux_bgp_session_uptime_seconds{peer="192.0.2.1"} 12.5',
      "# TYPE vipmux_bgp_messages_sent_total counter",
      'vipmux_bgp_messages_sent_total{peer="192.0.2.1",type="update"} 4',
      'vipmux_vip_announced{service="web",vip="20.20.20.100"} 1',
      'vipmux_vip_announced{service="api",vip="20.20.20.101"} 0',
      'vipmux_backend_up{service="web",dip="10.10.1.11"} 1',
      "vipmux_mux_healthy 0",
      'vipmux_health_reports_rejected_total{reason="bad_mac"} 2',
      'vipmux_vip_packets_total{vip="20.20.20.100"} 1000',
      'vipmux_dataplane_drops_total{reason="no_service"} 7',
      "vipmux_conntrack_entries 42",
      'vipmux_conntrack_untracked_total{reason="untrusted_quota"} 5',
      "# TYPE vipmux_forwarder_batch_duration_seconds histogram",
      'vipmux_forwarder_batch_duration_seconds_bucket{le="0.000008"} 4',
      'vipmux_forwarder_batch_duration_seconds_bucket{le="0.000016"} 10',
      'vipmux_forwarder_batch_duration_seconds_bucket{le="+Inf"} 10',
      "vipmux_forwarder_batch_duration_seconds_count 10",
      'vipmux_config_reloads_total{result="applied"} 1',
      'vipmux_health_probe_duration_seconds_bucket{le="0.005",service="web"} 1',
    ])
      expect(text).toContain(`${line}\n`);
    // Counters mirror their owner's value at each scrape (no double counting).
    updates = 9;
    expect(await m.text()).toContain(
      'vipmux_bgp_messages_sent_total{peer="192.0.2.1",type="update"} 9\n',
    );
  });

  it("serves /metrics over HTTP", async () => {
    const m = new Metrics(sources());
    const port = await m.listen("127.0.0.1:0");
    try {
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/text\/plain/);
      expect(await res.text()).toContain("vipmux_mux_healthy 0");
      expect((await fetch(`http://127.0.0.1:${port}/other`)).status).toBe(404);
    } finally {
      await m.close();
    }
  });
});
