// Prometheus metrics (prom-client). Values are read from their owners at scrape time
// (speaker, controller, health hub, dataplane): nothing on the packet path or in the BGP
// session touches a metric, and no second copy of any state is kept here.
import { readFileSync } from "node:fs";
import http from "node:http";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { hostPort } from "../util/host-port.ts";
import { formatIpv6, parseIpv6 } from "../util/ip.ts";

export type Labelled = [labels: Record<string, string>, value: number][];

export interface MetricsSources {
  bgpPeers(): {
    /** The peer's address (the `peer` label of every BGP and BFD series). */
    peer: string;
    /** Its description in the config, or the address. */
    name: string;
    asn: number;
    up: boolean;
    /** Times the session reached Established since the peer was configured. */
    established: number;
    uptimeSeconds: number;
    messagesIn: Record<string, number>;
    messagesOut: Record<string, number>;
    prefixesSent: number;
    prefixesReceived: number;
  }[];
  bfdSessions?(): { peer: string; up: boolean }[];
  vips(): { service: string; vip: string; announced: boolean }[];
  backends(): { service: string; dip: string; up: boolean }[];
  muxHealthy(): boolean;
  healthRejects(): Labelled;
  dataplane?():
    | {
        drops: Record<string, number>;
        vips: { vip: string; packets: number; bytes: number }[];
        backends: { service: string; dip: string; packets: number; bytes: number }[];
        conn: {
          size: number;
          capacity: number;
          expired: number;
          fallback: number;
          untrustedRefused: number;
          /** TCP packets forwarded by hash because this MUX saw no SYN for their flow. */
          noHandshake?: number;
        };
        /** Batch latency histogram: count per log2-microsecond bucket (bucket i: < 2^i µs). */
        batchLatencyUs: number[];
      }
    | undefined;
}

/**
 * A histogram kept elsewhere as counts per log2-microsecond bucket (bucket i counts
 * batches under 2^i µs), exposed with Prometheus' cumulative `le` buckets in seconds.
 */
function mirroredHistogram(name: string, help: string, read: () => number[] | undefined) {
  return {
    name,
    help,
    type: "histogram",
    aggregator: "sum",
    get: async () => {
      const counts = read() ?? [];
      const values: {
        value: number;
        labels: Record<string, string | number>;
        metricName: string;
      }[] = [];
      let cumulative = 0;
      let sum = 0;
      counts.forEach((n, i) => {
        cumulative += n;
        // The bucket's midpoint stands for its members in the sum.
        sum += n * 0.75 * 2 ** i * 1e-6;
        values.push({
          value: cumulative,
          labels: { le: 2 ** i * 1e-6 },
          metricName: `${name}_bucket`,
        });
      });
      values.push({ value: cumulative, labels: { le: "+Inf" }, metricName: `${name}_bucket` });
      values.push({ value: sum, labels: {}, metricName: `${name}_sum` });
      values.push({ value: cumulative, labels: {}, metricName: `${name}_count` });
      return { name, help, type: "histogram", values, aggregator: "sum" };
    },
  } as unknown as Parameters<Registry["registerMetric"]>[0];
}

/**
 * A metric whose value lives elsewhere, read at scrape time: a counter mirrors a
 * cumulative count its owner keeps, a gauge a current value.
 */
function mirrored(
  kind: "counter" | "gauge",
  registry: Registry,
  name: string,
  help: string,
  labelNames: string[],
  read: () => Labelled,
) {
  const common = { name, help, labelNames, registers: [registry] };
  if (kind === "counter")
    return new Counter({
      ...common,
      collect() {
        this.reset();
        // Zero too: a series that exists before its first event lets rate() see that event.
        for (const [labels, v] of read()) if (v >= 0) this.inc(labels, v);
      },
    });
  return new Gauge({
    ...common,
    collect() {
      this.reset();
      for (const [labels, v] of read()) this.set(labels, v);
    },
  });
}

const mirroredCounter = (...a: Parameters<typeof mirroredGauge>) => mirrored("counter", ...a);
const mirroredGauge = (
  registry: Registry,
  name: string,
  help: string,
  labelNames: string[],
  read: () => Labelled,
) => mirrored("gauge", registry, name, help, labelNames, read);

export class Metrics {
  readonly registry = new Registry();
  readonly configReloads: Counter<"result">;
  readonly probeDuration: Histogram<"service">;
  private server?: http.Server;

  constructor(src: MetricsSources) {
    const r = this.registry;
    const peers = () => src.bgpPeers().map((p) => ({ ...p, peer: peerLabel(p.peer) }));
    mirroredGauge(
      r,
      "vipmux_bgp_session_up",
      "1 when the BGP session is Established",
      ["peer"],
      () => peers().map((p) => [{ peer: p.peer }, p.up ? 1 : 0]),
    );
    mirroredGauge(
      r,
      "vipmux_bgp_session_uptime_seconds",
      "Seconds since the session was established",
      ["peer"],
      () => peers().map((p) => [{ peer: p.peer }, p.uptimeSeconds]),
    );
    mirroredCounter(
      r,
      "vipmux_bgp_messages_received_total",
      "BGP messages received",
      ["peer", "type"],
      () =>
        peers().flatMap((p) =>
          Object.entries(p.messagesIn).map(([type, v]) => [{ peer: p.peer, type }, v] as const),
        ) as Labelled,
    );
    mirroredCounter(
      r,
      "vipmux_bgp_messages_sent_total",
      "BGP messages sent",
      ["peer", "type"],
      () =>
        peers().flatMap((p) =>
          Object.entries(p.messagesOut).map(([type, v]) => [{ peer: p.peer, type }, v] as const),
        ) as Labelled,
    );
    mirroredGauge(
      r,
      "vipmux_bgp_prefixes_sent",
      "Prefixes in the peer's Adj-RIB-Out",
      ["peer"],
      () => peers().map((p) => [{ peer: p.peer }, p.prefixesSent]),
    );
    mirroredGauge(
      r,
      "vipmux_bgp_prefixes_received",
      "Prefixes in the peer's Adj-RIB-In",
      ["peer"],
      () => peers().map((p) => [{ peer: p.peer }, p.prefixesReceived]),
    );
    mirroredCounter(
      r,
      "vipmux_bgp_session_flaps_total",
      "Times an Established session went down (since the peer was configured)",
      ["peer"],
      () => peers().map((p) => [{ peer: p.peer }, Math.max(0, p.established - (p.up ? 1 : 0))]),
    );
    mirroredGauge(
      r,
      "vipmux_bgp_peer_info",
      "Always 1: the peer's name (config description, else its address) and AS",
      ["peer", "name", "asn"],
      () => peers().map((p) => [{ peer: p.peer, name: p.name, asn: String(p.asn) }, 1]),
    );
    mirroredGauge(r, "vipmux_bfd_session_up", "1 when the BFD session is Up", ["peer"], () =>
      (src.bfdSessions?.() ?? []).map((s) => [{ peer: peerLabel(s.peer) }, s.up ? 1 : 0]),
    );
    mirroredGauge(
      r,
      "vipmux_vip_announced",
      "1 when the VIP is announced to BGP",
      ["service", "vip"],
      () => src.vips().map((v) => [{ service: v.service, vip: v.vip }, v.announced ? 1 : 0]),
    );
    mirroredGauge(r, "vipmux_backend_up", "1 when the backend is healthy", ["service", "dip"], () =>
      src.backends().map((b) => [{ service: b.service, dip: b.dip }, b.up ? 1 : 0]),
    );
    mirroredGauge(
      r,
      "vipmux_mux_healthy",
      "1 when this MUX considers itself able to forward",
      [],
      () => [[{}, src.muxHealthy() ? 1 : 0]],
    );
    mirroredCounter(
      r,
      "vipmux_health_reports_rejected_total",
      "Health-stream messages rejected",
      ["reason"],
      () => src.healthRejects(),
    );
    const dp = () => src.dataplane?.();
    mirroredCounter(r, "vipmux_vip_packets_total", "Packets forwarded per VIP", ["vip"], () =>
      (dp()?.vips ?? []).map((v) => [{ vip: v.vip }, v.packets]),
    );
    mirroredCounter(r, "vipmux_vip_bytes_total", "Bytes forwarded per VIP", ["vip"], () =>
      (dp()?.vips ?? []).map((v) => [{ vip: v.vip }, v.bytes]),
    );
    mirroredCounter(
      r,
      "vipmux_backend_packets_total",
      "Packets sent per backend",
      ["service", "dip"],
      () => (dp()?.backends ?? []).map((b) => [{ service: b.service, dip: b.dip }, b.packets]),
    );
    mirroredCounter(
      r,
      "vipmux_backend_bytes_total",
      "Bytes sent per backend",
      ["service", "dip"],
      () => (dp()?.backends ?? []).map((b) => [{ service: b.service, dip: b.dip }, b.bytes]),
    );
    mirroredCounter(
      r,
      "vipmux_dataplane_drops_total",
      "Packets dropped, by reason",
      ["reason"],
      () => Object.entries(dp()?.drops ?? {}).map(([reason, n]) => [{ reason }, n]),
    );
    const conn = () => dp()?.conn;
    mirroredGauge(r, "vipmux_conntrack_entries", "Flows in the connection table", [], () => {
      const c = conn();
      return c ? [[{}, c.size]] : [];
    });
    mirroredGauge(r, "vipmux_conntrack_capacity", "Connection table capacity", [], () => {
      const c = conn();
      return c ? [[{}, c.capacity]] : [];
    });
    mirroredCounter(
      r,
      "vipmux_conntrack_expired_total",
      "Flows removed after their idle timeout",
      [],
      () => {
        const c = conn();
        return c ? [[{}, c.expired]] : [];
      },
    );
    mirroredCounter(
      r,
      "vipmux_conntrack_untracked_total",
      "Packets forwarded by hash alone: the table (or the untrusted quota) was full, or no TCP handshake was seen for the flow",
      ["reason"],
      () => {
        const c = conn();
        return c
          ? [
              [{ reason: "full" }, c.fallback],
              [{ reason: "untrusted_quota" }, c.untrustedRefused],
              [{ reason: "no_handshake" }, c.noHandshake ?? 0],
            ]
          : [];
      },
    );
    r.registerMetric(
      mirroredHistogram(
        "vipmux_forwarder_batch_duration_seconds",
        "Time to forward one batch of packets, read to send",
        () => dp()?.batchLatencyUs,
      ),
    );
    this.configReloads = configReloadsCounter(r, ["applied", "invalid", "refused", "failed"]);
    this.probeDuration = probeDurationHistogram(r);
    processMetrics(r);
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** Serves GET /metrics on ADDRESS:PORT; resolves with the port. */
  async listen(address: string): Promise<number> {
    this.server = await serveMetrics(this.registry, address);
    const a = this.server.address();
    return typeof a === "object" && a ? a.port : hostPort(address).port;
  }

  close(): Promise<void> {
    return closeServer(this.server);
  }
}

/**
 * The `peer` label of BGP and BFD series: the peer's address as the config gives it, IPv6
 * in RFC 5952 form and IPv4-mapped IPv6 as IPv4, so one peer has one label value in both.
 */
export function peerLabel(address: string): string {
  const a = address.startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address;
  const v6 = a.includes(":") ? parseIpv6(a) : undefined;
  return v6 ? formatIpv6(v6) : a;
}

/** `vipmux_config_reloads_total{result}`, every result present from the start at 0. */
export function configReloadsCounter(r: Registry, results: string[]): Counter<"result"> {
  const c = new Counter({
    name: "vipmux_config_reloads_total",
    help: "Config reloads by result",
    labelNames: ["result"],
    registers: [r],
  });
  for (const result of results) c.inc({ result }, 0);
  return c;
}

/** Probe latency, the same series on a MUX (from: mux) and a host agent (from: host-agent). */
export function probeDurationHistogram(r: Registry): Histogram<"service"> {
  return new Histogram({
    name: "vipmux_health_probe_duration_seconds",
    help: "Health probe latency",
    labelNames: ["service"],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [r],
  });
}

const VERSION = (
  JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
    version: string;
  }
).version;

/**
 * What every vipmux process exports about itself: `vipmux_build_info` and prom-client's
 * process and Node.js metrics (CPU, memory, file descriptors, event-loop lag, heap, GC),
 * all prefixed `vipmux_`.
 */
export function processMetrics(r: Registry): void {
  new Gauge({
    name: "vipmux_build_info",
    help: "Always 1: the vipmux version and the Node.js version running it",
    labelNames: ["version", "node_version"],
    registers: [r],
  }).set({ version: VERSION, node_version: process.version }, 1);
  collectDefaultMetrics({ register: r, prefix: "vipmux_" });
}

/** An HTTP server answering GET /metrics from `registry` on ADDRESS:PORT (config text). */
export async function serveMetrics(registry: Registry, address: string): Promise<http.Server> {
  const { host, port } = hostPort(address);
  const server = http.createServer(async (req, res) => {
    if (req.url !== "/metrics") {
      res.writeHead(404).end("try /metrics\n");
      return;
    }
    try {
      const body = await registry.metrics();
      res.writeHead(200, { "content-type": registry.contentType }).end(body);
    } catch (e) {
      res.writeHead(500).end(String(e));
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return server;
}

export function closeServer(s: http.Server | undefined): Promise<void> {
  if (!s) return Promise.resolve();
  s.closeAllConnections();
  return new Promise((resolve) => s.close(() => resolve()));
}
