// Health-stream keys. The MUXes hold one cluster secret (`health.token`); each host agent
// authenticates with a key derived from it and the host's PA, so a host holds only its own
// key and one leaked host key cannot speak for another host. The derivation is an HMAC
// (RFC 2104) of a fixed label and the canonical PA, keyed with the cluster secret: the
// MUX recomputes it for the host an agent claims to be, and checks that claim against
// the connection's source address (docs/security.md#host-identity).
import { createHmac } from "node:crypto";
import { formatIp, parseIp } from "../packet/address.ts";

const LABEL = "vipmux health host key v1";

/** The PA in one canonical text form (RFC 5952 for IPv6), or the text itself if not an address. */
export function canonicalHost(host: string): string {
  const unmapped = host.startsWith("::ffff:") && host.includes(".") ? host.slice(7) : host;
  const bytes = parseIp(unmapped);
  return bytes ? formatIp(bytes) : unmapped;
}

/** The key host `pa` authenticates with, derived from the MUXes' cluster secret. */
export function hostKey(clusterSecret: string, pa: string): string {
  return createHmac("sha256", clusterSecret)
    .update(`${LABEL}|${canonicalHost(pa)}`)
    .digest("hex");
}
