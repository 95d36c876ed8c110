// Metrics read their values from the owners at scrape time, with Prometheus names/types.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { Metrics, type MetricsSources } from "../../../src/api/metrics.ts";

function sources(over: Partial<MetricsSources> = {}): MetricsSources {
  return {
    bgpPeers: () => [
      {
        peer: "192.0.2.1",
        name: "192.0.2.1",
        asn: 65000,
        up: true,
        established: 1,
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
            name: "edge1",
            asn: 65000,
            up: true,
            established: 3,
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
      // Established three times and up now: it went down twice.
      "# TYPE vipmux_bgp_session_flaps_total counter",
      'vipmux_bgp_session_flaps_total{peer="192.0.2.1"} 2',
      'vipmux_bgp_peer_info{peer="192.0.2.1",name="edge1",asn="65000"} 1',
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
      // Counters exist at zero before their first event, so rate() sees that event.
      'vipmux_conntrack_untracked_total{reason="full"} 0',
      'vipmux_config_reloads_total{result="invalid"} 0',
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

  it("one peer has one label value in BGP and BFD series (IPv6 in RFC 5952 form)", async () => {
    const peer = (address: string) => ({
      peer: address,
      name: "edge",
      asn: 65000,
      up: true,
      established: 1,
      uptimeSeconds: 1,
      messagesIn: {},
      messagesOut: {},
      prefixesSent: 0,
      prefixesReceived: 0,
    });
    const m = new Metrics(
      sources({
        bgpPeers: () => [peer("2001:DB8:0:1:0:0:0:1"), peer("::ffff:192.0.2.5")],
        bfdSessions: () => [
          { peer: "2001:db8:0:1::1", up: true },
          { peer: "192.0.2.5", up: false },
        ],
      }),
    );
    const text = await m.text();
    for (const line of [
      'vipmux_bgp_session_up{peer="2001:db8:0:1::1"} 1',
      'vipmux_bfd_session_up{peer="2001:db8:0:1::1"} 1',
      'vipmux_bgp_session_up{peer="192.0.2.5"} 1',
      'vipmux_bfd_session_up{peer="192.0.2.5"} 0',
    ])
      expect(text).toContain(`${line}\n`);
  });

  it("build info, process and event-loop metrics", async () => {
    const { version } = JSON.parse(
      readFileSync(new URL("../../../package.json", import.meta.url), "utf8"),
    ) as { version: string };
    const text = await new Metrics(sources()).text();
    expect(text).toContain(
      `vipmux_build_info{version="${version}",node_version="${process.version}"} 1\n`,
    );
    for (const name of [
      "vipmux_process_cpu_seconds_total",
      "vipmux_process_resident_memory_bytes",
      "vipmux_nodejs_eventloop_lag_seconds",
      "vipmux_nodejs_eventloop_lag_p99_seconds",
      "vipmux_nodejs_heap_size_used_bytes",
    ])
      expect(text).toMatch(new RegExp(`^${name} [0-9.e+-]+$`, "m"));
  });

  it("listens on ADDRESS:PORT as the config parser reads it; a bare port is refused", async () => {
    const m = new Metrics(sources());
    await expect(m.listen("9273")).rejects.toThrow(/bare port/);
    const port = await m.listen("[::1]:0");
    try {
      expect((await fetch(`http://[::1]:${port}/metrics`)).status).toBe(200);
    } finally {
      await m.close();
    }
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
