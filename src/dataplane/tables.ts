// Forwarding tables on their way to the forwarding worker.
//
// The main thread builds a ForwardingTable (Maglev included, ids kept stable with the
// previous table) and posts it as one versioned snapshot; the worker installs it between
// two batches. A message is delivered whole or not at all and the worker's JS runs one
// batch at a time, so a batch sees either the old table or the new one, never a mix.
// Versions only go up: a snapshot older than the one installed is refused.
//
// The snapshot is the table itself, structured-cloned (typed arrays, Maps, shared
// BackendEntry objects all survive the clone). Only the VipMap class loses its prototype
// in the clone; `restoreTable` puts it back after checking the fields it relies on.
import type { Config, ServiceConfig } from "../config/index.ts";
import type { ForwardingTable } from "../lb/forwarding-table.ts";
import type { BackendState, ServiceModel, ServicePort, ServiceSpec } from "../lb/service.ts";
import { VipMap } from "../lb/vip-map.ts";

export interface TableSnapshot {
  readonly version: number;
  readonly table: ForwardingTable;
}

/** Wraps a table for postMessage. */
export function snapshotTable(version: number, table: ForwardingTable): TableSnapshot {
  if (!Number.isSafeInteger(version) || version < 1)
    throw new RangeError(`table version ${version}`);
  return { version, table };
}

/**
 * Turns a structured clone of a TableSnapshot back into a usable table. Returns an error
 * (never throws) when the clone does not have the shape this code knows.
 */
export function restoreTable(snapshot: unknown): TableSnapshot | string {
  const s = snapshot as Partial<TableSnapshot> | undefined;
  if (!s || typeof s.version !== "number" || !s.table) return "snapshot: no version or table";
  const t = s.table as ForwardingTable;
  const vips = t.vips as unknown as Record<string, unknown>;
  if (
    !vips ||
    !(vips.keys instanceof Uint32Array) ||
    !(vips.values instanceof Int32Array) ||
    typeof vips.mask !== "number"
  ) {
    return "snapshot: VIP map has an unknown shape";
  }
  if (!(t.vips instanceof VipMap)) Object.setPrototypeOf(t.vips, VipMap.prototype);
  if (!(t.backendState instanceof Uint8Array) || !Array.isArray(t.services))
    return "snapshot: table has an unknown shape";
  return { version: s.version, table: t };
}

/** Health of one backend as the controller decided it, keyed by `backendKey`. */
export type BackendStates = ReadonlyMap<string, BackendState>;

export const backendKey = (service: string, dip: string) => `${service}/${dip}`;

/** Expands a config port (single or range) into forwarding-table ports. */
function portsOf(svc: ServiceConfig): ServicePort[] {
  const out: ServicePort[] = [];
  for (const p of svc.ports) {
    if (p.port !== undefined) {
      out.push({ protocol: p.protocol, port: p.port });
      continue;
    }
    const [first, last] = (p.portRange ?? "").split("-").map(Number);
    if (first === undefined || last === undefined) continue;
    for (let port = first; port <= last; port++) out.push({ protocol: p.protocol, port });
  }
  return out;
}

/**
 * The service model of a config with the controller's health verdicts applied: backends
 * absent from `states` are `up` (or `down` when `defaultState` says so). Disabled services
 * are left out. The MUX forwards on the VIP port; translation to `backend-port` is the
 * host agent's (DNAT), so it does not appear here.
 */
export function serviceModelFromConfig(
  config: Pick<Config, "services" | "dataplane">,
  states: BackendStates = new Map(),
  defaultState: BackendState = "up",
): ServiceModel {
  const services: ServiceSpec[] = [];
  for (const s of config.services) {
    if (!s.enabled) continue;
    services.push({
      name: s.name,
      vip: s.vip,
      ports: portsOf(s),
      distribution: s.distribution,
      vni: s.vni,
      maglevSize: config.dataplane.maglevTableSize,
      backends: s.backends.map((b) => ({
        dip: b.dip,
        host: b.host,
        weight: b.weight,
        state: states.get(backendKey(s.name, b.dip)) ?? defaultState,
      })),
    });
  }
  return { services };
}

/** The VIPs of a table (what must be routed to the engine). */
export function tableVips(table: ForwardingTable): string[] {
  return [...new Set(table.services.map((s) => s.vip))].sort();
}
