// Text <-> bytes for IP and MAC addresses. Control-plane only (allocates); the packet path
// works on the byte arrays these produce.

import { isIPv4, isIPv6 } from "node:net";
import { formatIpv6, parseIpv6 } from "../util/ip.ts";

/** Parses an IPv4 or IPv6 address to 4 or 16 network-order bytes; undefined if invalid. */
export function parseIp(text: string): Uint8Array | undefined {
  if (isIPv4(text)) return Uint8Array.from(text.split(".").map(Number));
  if (!isIPv6(text)) return undefined;
  const zone = text.indexOf("%");
  return parseIpv6(zone >= 0 ? text.slice(0, zone) : text);
}

/** Formats 4 or 16 bytes at `off` as text (IPv6 in RFC 5952 canonical form). */
export function formatIp(buf: Uint8Array, off = 0, len = buf.length - off): string {
  if (len === 4) return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
  return formatIpv6(buf, off);
}

/** Parses "aa:bb:cc:dd:ee:ff" (or with dashes) to 6 bytes; undefined if invalid. */
export function parseMac(text: string): Uint8Array | undefined {
  const parts = text.split(/[:-]/);
  if (parts.length !== 6 || !parts.every((x) => /^[0-9a-fA-F]{1,2}$/.test(x))) return undefined;
  return Uint8Array.from(parts.map((x) => Number.parseInt(x, 16)));
}

export function formatMac(buf: Uint8Array, off = 0): string {
  const out: string[] = [];
  for (let i = 0; i < 6; i++) out.push(buf[off + i]!.toString(16).padStart(2, "0"));
  return out.join(":");
}
