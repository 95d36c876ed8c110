// The service model the controller hands to the data plane: which VIP/port maps to which
// backends, with health already decided by the controller, the one source of health
// (docs/architecture.md#one-source-of-truth-for-health). Plain data, validated here so a
// bad model is refused with every error listed.

import { isIPv4, isIPv6 } from "node:net";
import { formatIp, parseIp } from "../packet/address.ts";
import { isPrime, MAGLEV_MAX_BACKENDS, MAGLEV_SIZE_DEFAULT } from "./maglev.ts";

/**
 * - `up`: in the Maglev table, gets new flows.
 * - `draining`: out of the Maglev table, keeps the flows it already has (connection table).
 * - `down`: failed; its flows are re-hashed to the remaining backends on their next packet.
 */
export type BackendState = "up" | "draining" | "down";

export interface BackendSpec {
  /** The backend's own address (the Maglev name: every MUX derives the same permutation). */
  readonly dip: string;
  /** PA of the host running the DIP: the VXLAN outer destination. */
  readonly host: string;
  /** Relative share, non-negative integer (default 1; 0 = no new flows). */
  readonly weight?: number;
  readonly state?: BackendState;
}

export type ServiceProtocol = "tcp" | "udp" | "icmp";

export interface ServicePort {
  readonly protocol: ServiceProtocol;
  /** TCP/UDP port on the VIP; omitted for icmp (echo requests to the VIP). */
  readonly port?: number;
}

export type DistributionName = "5-tuple" | "3-tuple" | "2-tuple";

export interface ServiceSpec {
  /** Unique name; identifies the service across model updates. */
  readonly name: string;
  readonly vip: string;
  readonly ports: readonly ServicePort[];
  readonly distribution?: DistributionName;
  /** VXLAN network identifier, 24 bits. */
  readonly vni: number;
  readonly backends: readonly BackendSpec[];
  /** Maglev table size, prime (default 65537; 655373 for services with many backends). */
  readonly maglevSize?: number;
}

export interface ServiceModel {
  readonly services: readonly ServiceSpec[];
  /** Hash seed shared by every MUX (default DEFAULT_SEED). */
  readonly seed?: number;
}

const PROTOCOLS: ReadonlySet<string> = new Set(["tcp", "udp", "icmp"]);
const DISTRIBUTIONS: ReadonlySet<string> = new Set(["5-tuple", "3-tuple", "2-tuple"]);
const STATES: ReadonlySet<string> = new Set(["up", "draining", "down"]);

const isIp = (s: string) => isIPv4(s) || isIPv6(s);
/** Canonical text of an address, so "2001:db8::1" and "2001:0db8:0::1" count as one. */
const canonical = (s: string) => {
  const b = parseIp(s);
  return b === undefined ? s : formatIp(b);
};

/** Every problem in the model, each naming the service and field; empty when valid. */
export function validateServiceModel(model: ServiceModel): string[] {
  const errors: string[] = [];
  const names = new Set<string>();
  const listeners = new Map<string, string>();
  if (model.seed !== undefined && !Number.isInteger(model.seed))
    errors.push(`seed: ${model.seed} is not an integer`);
  model.services.forEach((s, si) => {
    const where = `services[${si}] (${s.name})`;
    if (!s.name) errors.push(`services[${si}].name: empty`);
    if (names.has(s.name)) errors.push(`${where}.name: duplicate service name`);
    names.add(s.name);
    if (!isIp(s.vip)) errors.push(`${where}.vip: ${s.vip} is not an IP address`);
    if (!Number.isInteger(s.vni) || s.vni < 0 || s.vni > 0xffffff) {
      errors.push(`${where}.vni: ${s.vni} is not a 24-bit integer`);
    }
    if (s.distribution !== undefined && !DISTRIBUTIONS.has(s.distribution)) {
      errors.push(`${where}.distribution: ${s.distribution} is not 5-tuple, 3-tuple or 2-tuple`);
    }
    const size = s.maglevSize ?? MAGLEV_SIZE_DEFAULT;
    if (!isPrime(size)) errors.push(`${where}.maglevSize: ${size} is not prime`);
    if (s.ports.length === 0) errors.push(`${where}.ports: empty`);
    s.ports.forEach((p, pi) => {
      if (!PROTOCOLS.has(p.protocol))
        errors.push(`${where}.ports[${pi}].protocol: ${p.protocol} is not tcp, udp or icmp`);
      const port = p.protocol === "icmp" ? 0 : p.port;
      if (p.protocol !== "icmp" && (!Number.isInteger(port) || port! < 1 || port! > 65535)) {
        errors.push(`${where}.ports[${pi}].port: ${p.port} is not 1..65535`);
      }
      const key = `${canonical(s.vip)}|${p.protocol}|${port}`;
      const owner = listeners.get(key);
      if (owner !== undefined) {
        errors.push(
          `${where}.ports[${pi}]: ${p.protocol} ${s.vip} port ${port} already belongs to ${owner}`,
        );
      }
      listeners.set(key, s.name);
    });
    if (s.backends.length > MAGLEV_MAX_BACKENDS)
      errors.push(`${where}.backends: more than ${MAGLEV_MAX_BACKENDS}`);
    const dips = new Set<string>();
    s.backends.forEach((b, bi) => {
      const bw = `${where}.backends[${bi}]`;
      if (!isIp(b.dip)) errors.push(`${bw}.dip: ${b.dip} is not an IP address`);
      if (!isIp(b.host)) errors.push(`${bw}.host: ${b.host} is not an IP address`);
      if (dips.has(canonical(b.dip))) errors.push(`${bw}.dip: duplicate ${b.dip}`);
      dips.add(canonical(b.dip));
      const w = b.weight ?? 1;
      if (!Number.isInteger(w) || w < 0 || w > 0xffff)
        errors.push(`${bw}.weight: ${w} is not 0..65535`);
      if (b.state !== undefined && !STATES.has(b.state))
        errors.push(`${bw}.state: ${b.state} is not up, draining or down`);
    });
  });
  return errors;
}
