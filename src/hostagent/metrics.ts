// The host agent's Prometheus metrics (`metrics: ADDRESS:PORT` in its config; off when
// absent): what it programmed in the kernel at its last reconcile, its probes of the local
// DIPs, its health streams to the MUXes, its reconciles. Like the MUX's (src/api/metrics.ts),
// gauges are read from their owners at scrape time; only events (a reconcile, a probe)
// count here.
import type http from "node:http";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import {
  closeServer,
  configReloadsCounter,
  type Labelled,
  probeDurationHistogram,
  processMetrics,
  serveMetrics,
} from "../api/metrics.ts";

export interface HostAgentMetricsSources {
  /**
   * What the last successful reconcile put in the kernel: each service's local DIPs and
   * whether the host gives them new flows; undefined before the first one.
   */
  programmed(): ProgrammedState | undefined;
  /** Probed local DIPs ("service/dip") and their state after rise/fall. */
  targets(): { key: string; up: boolean }[];
  /** Each MUX's health stream (`address:port`) and whether it is connected. */
  streams(): { mux: string; up: boolean }[];
}

export interface ProgrammedState {
  devices: number;
  services: { service: string; local: string[]; programmed: readonly string[] }[];
}

const splitKey = (key: string): { service: string; dip: string } => {
  const i = key.indexOf("/");
  return { service: key.slice(0, i), dip: key.slice(i + 1) };
};

function gauge(
  r: Registry,
  name: string,
  help: string,
  labelNames: string[],
  read: () => Labelled,
): void {
  new Gauge({
    name,
    help,
    labelNames,
    registers: [r],
    collect() {
      this.reset();
      for (const [labels, v] of read()) this.set(labels, v);
    },
  });
}

export class HostAgentMetrics {
  readonly registry = new Registry();
  readonly reconciles: Counter<"result">;
  readonly reconcileChanges: Counter;
  readonly reconcileDuration: Histogram;
  readonly probes: Counter<"service" | "dip" | "result">;
  readonly probeDuration: Histogram<"service">;
  readonly configReloads: Counter<"result">;
  private server?: http.Server;
  private address?: string;

  constructor(src: HostAgentMetricsSources) {
    const r = this.registry;
    gauge(
      r,
      "vipmux_hostagent_services_programmed",
      "Services with their NAT table (or floating routes) in the kernel since the last reconcile",
      [],
      () => {
        const p = src.programmed();
        return p ? [[{}, p.services.length]] : [];
      },
    );
    gauge(
      r,
      "vipmux_hostagent_vxlan_devices",
      "VXLAN devices the agent keeps (one per VNI with a local DIP)",
      [],
      () => {
        const p = src.programmed();
        return p ? [[{}, p.devices]] : [];
      },
    );
    gauge(
      r,
      "vipmux_hostagent_dip_programmed",
      "1 when the host gives the local DIP new flows (its NAT entry or floating route is in the kernel), 0 when it is left out (failing probes, or weight 0)",
      ["service", "dip"],
      () =>
        (src.programmed()?.services ?? []).flatMap((s) =>
          s.local.map(
            (dip) =>
              [{ service: s.service, dip }, s.programmed.includes(dip) ? 1 : 0] as Labelled[number],
          ),
        ),
    );
    gauge(
      r,
      "vipmux_hostagent_backend_up",
      "1 when the local DIP is up by its probes (after rise/fall): what the agent streams to the MUXes",
      ["service", "dip"],
      () => src.targets().map((t) => [splitKey(t.key), t.up ? 1 : 0]),
    );
    gauge(
      r,
      "vipmux_hostagent_health_stream_up",
      "1 when the health stream to the MUX is connected and authenticated",
      ["mux"],
      () => src.streams().map((s) => [{ mux: s.mux }, s.up ? 1 : 0]),
    );
    this.probes = new Counter({
      name: "vipmux_hostagent_probes_total",
      help: "Probes of local DIPs by result (ok, failed)",
      labelNames: ["service", "dip", "result"],
      registers: [r],
    });
    this.probeDuration = probeDurationHistogram(r);
    this.reconciles = new Counter({
      name: "vipmux_hostagent_reconciles_total",
      help: "Reconcile passes by result (ok, failed)",
      labelNames: ["result"],
      registers: [r],
    });
    for (const result of ["ok", "failed"]) this.reconciles.inc({ result }, 0);
    this.reconcileChanges = new Counter({
      name: "vipmux_hostagent_reconcile_changes_total",
      help: "Kernel changes made by reconciles (devices, nftables transactions, routes, rules, sysctls, conntrack deletions)",
      registers: [r],
    });
    this.reconcileDuration = new Histogram({
      name: "vipmux_hostagent_reconcile_duration_seconds",
      help: "Time of one reconcile pass: observe the kernel, diff, apply",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [r],
    });
    this.configReloads = configReloadsCounter(r, ["applied", "invalid"]);
    processMetrics(r);
  }

  /** A probe of local DIP `key` ("service/dip"). */
  probed(key: string, ok: boolean, latencyMs: number): void {
    const { service, dip } = splitKey(key);
    this.probes.inc({ service, dip, result: ok ? "ok" : "failed" });
    this.probeDuration.observe({ service }, latencyMs / 1000);
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  /**
   * Serves /metrics on `address` (ADDRESS:PORT), or nowhere when undefined; a changed
   * address (a reload) moves the endpoint. Resolves with the port, if serving.
   */
  async serve(address: string | undefined): Promise<number | undefined> {
    if (address !== this.address) {
      await closeServer(this.server);
      this.server = undefined;
      this.address = undefined;
      if (address !== undefined) {
        this.server = await serveMetrics(this.registry, address);
        this.address = address;
      }
    }
    const a = this.server?.address();
    return typeof a === "object" && a ? a.port : undefined;
  }

  close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    this.address = undefined;
    return closeServer(s);
  }
}

/** The programmed state from a plan's service tables and the config's local DIPs. */
export function programmedState(
  services: readonly {
    name: string;
    enabled: boolean;
    backends: { dip: string; host: string }[];
  }[],
  pa: string,
  tables: readonly { service: string; dips?: readonly string[] }[],
  devices: number,
): ProgrammedState {
  const dips = new Map(tables.flatMap((t) => (t.dips ? [[t.service, t.dips] as const] : [])));
  return {
    devices,
    services: services.flatMap((s) => {
      const programmed = dips.get(s.name);
      if (!s.enabled || programmed === undefined) return [];
      const local = s.backends.filter((b) => b.host === pa).map((b) => b.dip);
      return [{ service: s.name, local, programmed }];
    }),
  };
}
