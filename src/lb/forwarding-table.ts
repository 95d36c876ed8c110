// The forwarding table: everything the forwarder needs, built from a ServiceModel off the
// packet path (Maglev tables included) and then swapped in whole. Immutable once built.
//
// Ids: services and backends get small integer ids that index the forwarder's counters
// and the connection table's entries. An id stays with its name (service name; service
// name + DIP) across rebuilds when the previous table is passed in, so established flows
// keep pointing at the right backend and counters keep counting. Ids are never reused.

import { formatIp, parseIp } from "../packet/address.ts";
import { IpProto } from "../packet/constants.ts";
import { err, ok, type Result } from "../util/result.ts";
import { dipMac } from "./dip-mac.ts";
import { type Distribution, parseDistribution } from "./flow-hash.ts";
import { DEFAULT_SEED } from "./hash.ts";
import { buildMaglevTable, MAGLEV_SIZE_DEFAULT } from "./maglev.ts";
import { type BackendState, type ServiceModel, validateServiceModel } from "./service.ts";
import { type VipKey, VipMap } from "./vip-map.ts";

/** Backend states as stored per backend id (0: the id is not in this table). */
export const BackendStateCode = { absent: 0, up: 1, draining: 2, down: 3 } as const;
export type BackendStateCode = (typeof BackendStateCode)[keyof typeof BackendStateCode];

const STATE_CODE: Record<BackendState, BackendStateCode> = {
  up: BackendStateCode.up,
  draining: BackendStateCode.draining,
  down: BackendStateCode.down,
};

export interface BackendEntry {
  readonly id: number;
  readonly serviceId: number;
  readonly dip: string;
  readonly host: string;
  /** Host PA bytes (4 or 16): the VXLAN outer destination. */
  readonly hostAddr: Uint8Array;
  /**
   * Inner Ethernet destination for this backend: `dipMac(dip)` (src/lb/dip-mac.ts), computed
   * once here so the forwarder copies 6 preallocated bytes per packet. The host maps it
   * back to the DIP, so the MUX's choice is the DIP the flow reaches.
   */
  readonly mac: Uint8Array;
  readonly weight: number;
  readonly state: BackendState;
}

export interface ServiceEntry {
  readonly id: number;
  readonly name: string;
  readonly vip: string;
  readonly vipAddr: Uint8Array;
  readonly vni: number;
  readonly distribution: Distribution;
  /** Maglev lookup table: slot -> index into `maglevBackends`; empty when no backend is up. */
  readonly maglev: Uint16Array;
  /** Maglev index -> backend id (the up backends, sorted by DIP). */
  readonly maglevBackends: Int32Array;
  /**
   * The Maglev table as it would be if the draining backends were still up: where the
   * flows they keep were sent before the drain. The forwarder's second chance names it
   * for a flow that reaches this MUX without an entry (docs/dataplane.md#second-chance).
   * The same arrays as `maglev` when nothing drains.
   */
  readonly maglevWithDraining: Uint16Array;
  readonly maglevWithDrainingBackends: Int32Array;
  /** Every backend of the service, sorted by DIP. */
  readonly backends: readonly BackendEntry[];
  /** Identifies the inputs of `maglev`; equal signatures let a rebuild reuse the table. */
  readonly maglevSignature: string;
  readonly maglevWithDrainingSignature: string;
}

export interface ForwardingTable {
  readonly seed: number;
  readonly services: readonly ServiceEntry[];
  /** Indexed by service id (sparse: ids of removed services are undefined). */
  readonly serviceById: readonly (ServiceEntry | undefined)[];
  /** Indexed by backend id. */
  readonly backendById: readonly (BackendEntry | undefined)[];
  /** Indexed by backend id: a BackendStateCode. */
  readonly backendState: Uint8Array;
  /** (VIP, proto, port) -> service id. Port 0 holds ICMP echo and the fragment fallback. */
  readonly vips: VipMap;
  /** One past the largest id in use: sizes for per-id counters. */
  readonly serviceIdLimit: number;
  readonly backendIdLimit: number;
  /** Name -> id registries, carried into the next build. */
  readonly serviceIds: ReadonlyMap<string, number>;
  readonly backendIds: ReadonlyMap<string, number>;
  /** Maglev tables built (not reused) by this build, and the time it took. */
  readonly maglevBuilt: number;
  readonly buildMs: number;
}

const byDip = (a: { dip: string }, b: { dip: string }) =>
  a.dip < b.dip ? -1 : a.dip > b.dip ? 1 : 0;

/**
 * Builds a forwarding table from `model`. Pass the table in use as `previous` so ids stay
 * stable and unchanged Maglev tables are reused. Returns every validation error instead of
 * a table when the model is invalid (the running table stays in use).
 */
export function buildForwardingTable(
  model: ServiceModel,
  previous?: ForwardingTable,
): Result<ForwardingTable, string[]> {
  const errors = validateServiceModel(model);
  if (errors.length > 0) return err(errors);
  const started = performance.now();
  const seed = (model.seed ?? DEFAULT_SEED) | 0;
  const serviceIds = new Map(previous?.serviceIds);
  const backendIds = new Map(previous?.backendIds);
  let nextServiceId = previous?.serviceIdLimit ?? 0;
  let nextBackendId = previous?.backendIdLimit ?? 0;
  const prevByName = new Map<string, ServiceEntry>();
  for (const s of previous?.services ?? []) prevByName.set(s.name, s);

  const services: ServiceEntry[] = [];
  const backendsAll: BackendEntry[] = [];
  const vipKeys: VipKey[] = [];
  // Fragments carry no port: per (VIP, proto) they go to the service with the lowest port.
  const fragmentOwner = new Map<
    string,
    { port: number; id: number; addr: Uint8Array; proto: number }
  >();
  let maglevBuilt = 0;

  for (const spec of model.services) {
    let id = serviceIds.get(spec.name);
    if (id === undefined) {
      id = nextServiceId++;
      serviceIds.set(spec.name, id);
    }
    const vipAddr = parseIp(spec.vip)!;
    const backends: BackendEntry[] = [...spec.backends].sort(byDip).map((b) => {
      const key = `${spec.name}\u0000${b.dip}`;
      let bid = backendIds.get(key);
      if (bid === undefined) {
        bid = nextBackendId++;
        backendIds.set(key, bid);
      }
      return {
        id: bid,
        serviceId: id,
        dip: b.dip,
        host: b.host,
        hostAddr: parseIp(b.host)!,
        mac: dipMac(b.dip),
        weight: b.weight ?? 1,
        state: b.state ?? "up",
      };
    });
    backendsAll.push(...backends);
    const up = backends.filter((b) => b.state === "up" && b.weight > 0);
    const size = spec.maglevSize ?? MAGLEV_SIZE_DEFAULT;
    const signature = `${size}|${seed}|${up.map((b) => `${b.dip}*${b.weight}`).join(",")}`;
    const prev = prevByName.get(spec.name);
    let maglev: Uint16Array;
    if (prev !== undefined && prev.maglevSignature === signature) {
      maglev = prev.maglev;
    } else {
      maglev = buildMaglevTable(
        up.map((b) => ({ name: b.dip, weight: b.weight })),
        size,
        seed,
      );
      maglevBuilt++;
    }
    // Draining backends keep their flows: a table with them still in says where those go.
    // A backend drained by weight 0 counts with weight 1 (its old weight is not known).
    const withDraining = backends.filter((b) =>
      b.state === "up" ? b.weight > 0 : b.state === "draining",
    );
    let maglevWithDraining = maglev;
    let maglevWithDrainingBackends = Int32Array.from(up.map((b) => b.id));
    let drainingSignature = signature;
    if (withDraining.length !== up.length) {
      drainingSignature = `${size}|${seed}|${withDraining.map((b) => `${b.dip}*${Math.max(1, b.weight)}`).join(",")}`;
      maglevWithDrainingBackends = Int32Array.from(withDraining.map((b) => b.id));
      // A drain just started: the table with it still in is the one used until now.
      if (prev?.maglevSignature === drainingSignature) maglevWithDraining = prev.maglev;
      else if (prev?.maglevWithDrainingSignature === drainingSignature)
        maglevWithDraining = prev.maglevWithDraining;
      else {
        maglevWithDraining = buildMaglevTable(
          withDraining.map((b) => ({ name: b.dip, weight: Math.max(1, b.weight) })),
          size,
          seed,
        );
        maglevBuilt++;
      }
    }
    const entry: ServiceEntry = {
      id,
      name: spec.name,
      vip: spec.vip,
      vipAddr,
      vni: spec.vni,
      distribution: parseDistribution(spec.distribution ?? "5-tuple")!,
      maglev,
      maglevBackends: Int32Array.from(up.map((b) => b.id)),
      maglevWithDraining,
      maglevWithDrainingBackends,
      backends,
      maglevSignature: signature,
      maglevWithDrainingSignature: drainingSignature,
    };
    services.push(entry);
    const v6 = vipAddr.length === 16;
    for (const p of spec.ports) {
      const proto =
        p.protocol === "tcp"
          ? IpProto.tcp
          : p.protocol === "udp"
            ? IpProto.udp
            : v6
              ? IpProto.icmpv6
              : IpProto.icmp;
      const port = p.protocol === "icmp" ? 0 : p.port!;
      vipKeys.push({ addr: vipAddr, proto, port, value: id });
      if (port !== 0) {
        const k = `${formatIp(vipAddr)}|${proto}`;
        const cur = fragmentOwner.get(k);
        if (cur === undefined || port < cur.port)
          fragmentOwner.set(k, { port, id, addr: vipAddr, proto });
      }
    }
  }
  for (const f of fragmentOwner.values())
    vipKeys.push({ addr: f.addr, proto: f.proto, port: 0, value: f.id });

  const serviceById: (ServiceEntry | undefined)[] = new Array(nextServiceId).fill(undefined);
  for (const s of services) serviceById[s.id] = s;
  const backendById: (BackendEntry | undefined)[] = new Array(nextBackendId).fill(undefined);
  const backendState = new Uint8Array(nextBackendId);
  for (const b of backendsAll) {
    backendById[b.id] = b;
    backendState[b.id] = STATE_CODE[b.state];
  }
  return ok({
    seed,
    services,
    serviceById,
    backendById,
    backendState,
    vips: new VipMap(vipKeys),
    serviceIdLimit: nextServiceId,
    backendIdLimit: nextBackendId,
    serviceIds,
    backendIds,
    maglevBuilt,
    buildMs: performance.now() - started,
  });
}
