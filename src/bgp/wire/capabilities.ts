// Capabilities advertisement (RFC 5492). Known codes decode to typed values; anything else
// is kept as raw bytes so it can be reported and re-encoded unchanged.

import { ByteWriter } from "./buffer.ts";
import { CapabilityCode } from "./constants.ts";

export interface AfiSafi {
  readonly afi: number;
  readonly safi: number;
}

export type Capability =
  | { readonly kind: "multiprotocol"; readonly afi: number; readonly safi: number }
  | { readonly kind: "route-refresh" }
  | { readonly kind: "enhanced-route-refresh" }
  | { readonly kind: "extended-message" }
  | { readonly kind: "four-octet-as"; readonly asn: number }
  | {
      readonly kind: "graceful-restart";
      /** High 4 bits of the first octet: R (restarting) 0x8, N (notification, RFC 8538) 0x4. */
      readonly restartFlags: number;
      readonly restartTimeSec: number;
      readonly families: readonly (AfiSafi & { readonly flags: number })[];
    }
  | {
      readonly kind: "extended-next-hop";
      readonly entries: readonly (AfiSafi & { readonly nextHopAfi: number })[];
    }
  | {
      readonly kind: "add-path";
      /** sendReceive: 1 receive, 2 send, 3 both (RFC 7911 §4). */
      readonly families: readonly (AfiSafi & { readonly sendReceive: number })[];
    }
  | { readonly kind: "fqdn"; readonly hostname: string; readonly domain: string }
  | { readonly kind: "unknown"; readonly code: number; readonly value: Uint8Array };

const utf8 = new TextDecoder("utf-8");
const utf8Encoder = new TextEncoder();

const u16 = (b: Uint8Array, p: number) => ((b[p] ?? 0) << 8) | (b[p + 1] ?? 0);
const u32 = (b: Uint8Array, p: number) =>
  (((b[p] ?? 0) << 24) | ((b[p + 1] ?? 0) << 16) | ((b[p + 2] ?? 0) << 8) | (b[p + 3] ?? 0)) >>> 0;

/** Decodes one capability value; a string is the reason it is malformed. */
export function decodeCapability(code: number, v: Uint8Array): Capability | string {
  const len = v.length;
  const exact = (n: number, name: string) =>
    len === n ? null : `${name} capability length ${len}, expected ${n}`;
  switch (code) {
    case CapabilityCode.Multiprotocol:
      return exact(4, "multiprotocol") ?? { kind: "multiprotocol", afi: u16(v, 0), safi: v[3]! };
    case CapabilityCode.RouteRefresh:
      return exact(0, "route refresh") ?? { kind: "route-refresh" };
    case CapabilityCode.EnhancedRouteRefresh:
      return exact(0, "enhanced route refresh") ?? { kind: "enhanced-route-refresh" };
    case CapabilityCode.ExtendedMessage:
      return exact(0, "extended message") ?? { kind: "extended-message" };
    case CapabilityCode.FourOctetAs:
      return exact(4, "4-octet AS") ?? { kind: "four-octet-as", asn: u32(v, 0) };
    case CapabilityCode.GracefulRestart: {
      // RFC 4724 §3: 2 octets of flags/time, then 4 octets per family.
      if (len < 2 || (len - 2) % 4 !== 0) return `graceful restart capability length ${len}`;
      const families: (AfiSafi & { flags: number })[] = [];
      for (let p = 2; p < len; p += 4)
        families.push({ afi: u16(v, p), safi: v[p + 2]!, flags: v[p + 3]! });
      return {
        kind: "graceful-restart",
        restartFlags: v[0]! >> 4,
        restartTimeSec: u16(v, 0) & 0x0fff,
        families,
      };
    }
    case CapabilityCode.ExtendedNextHop: {
      // RFC 8950 §3: 6 octets per entry (NLRI AFI, NLRI SAFI as 2 octets, next-hop AFI).
      if (len === 0 || len % 6 !== 0) return `extended next hop capability length ${len}`;
      const entries: (AfiSafi & { nextHopAfi: number })[] = [];
      for (let p = 0; p < len; p += 6)
        entries.push({ afi: u16(v, p), safi: u16(v, p + 2), nextHopAfi: u16(v, p + 4) });
      return { kind: "extended-next-hop", entries };
    }
    case CapabilityCode.AddPath: {
      if (len === 0 || len % 4 !== 0) return `add-path capability length ${len}`;
      const families: (AfiSafi & { sendReceive: number })[] = [];
      for (let p = 0; p < len; p += 4) {
        const sendReceive = v[p + 3]!;
        if (sendReceive < 1 || sendReceive > 3) return `add-path send/receive value ${sendReceive}`;
        families.push({ afi: u16(v, p), safi: v[p + 2]!, sendReceive });
      }
      return { kind: "add-path", families };
    }
    case CapabilityCode.Fqdn: {
      // draft-walton-bgp-hostname-capability: hostname and domain, each length-prefixed.
      const hl = v[0];
      if (hl === undefined || 1 + hl >= len) return { kind: "unknown", code, value: v.slice() };
      const dl = v[1 + hl]!;
      if (2 + hl + dl !== len) return { kind: "unknown", code, value: v.slice() };
      return {
        kind: "fqdn",
        hostname: utf8.decode(v.subarray(1, 1 + hl)),
        domain: utf8.decode(v.subarray(2 + hl, 2 + hl + dl)),
      };
    }
    default:
      return { kind: "unknown", code, value: v.slice() };
  }
}

export function capabilityCode(c: Capability): number {
  switch (c.kind) {
    case "multiprotocol":
      return CapabilityCode.Multiprotocol;
    case "route-refresh":
      return CapabilityCode.RouteRefresh;
    case "enhanced-route-refresh":
      return CapabilityCode.EnhancedRouteRefresh;
    case "extended-message":
      return CapabilityCode.ExtendedMessage;
    case "four-octet-as":
      return CapabilityCode.FourOctetAs;
    case "graceful-restart":
      return CapabilityCode.GracefulRestart;
    case "extended-next-hop":
      return CapabilityCode.ExtendedNextHop;
    case "add-path":
      return CapabilityCode.AddPath;
    case "fqdn":
      return CapabilityCode.Fqdn;
    case "unknown":
      return c.code;
  }
}

/** Writes code, length and value of one capability. */
export function encodeCapability(w: ByteWriter, c: Capability): void {
  w.u8(capabilityCode(c));
  const lenAt = w.reserve(1);
  const start = w.pos;
  switch (c.kind) {
    case "multiprotocol":
      w.u16(c.afi);
      w.u8(0);
      w.u8(c.safi);
      break;
    case "four-octet-as":
      w.u32(c.asn);
      break;
    case "graceful-restart":
      w.u16(((c.restartFlags & 0xf) << 12) | (c.restartTimeSec & 0x0fff));
      for (const f of c.families) {
        w.u16(f.afi);
        w.u8(f.safi);
        w.u8(f.flags);
      }
      break;
    case "extended-next-hop":
      for (const e of c.entries) {
        w.u16(e.afi);
        w.u16(e.safi);
        w.u16(e.nextHopAfi);
      }
      break;
    case "add-path":
      for (const f of c.families) {
        w.u16(f.afi);
        w.u8(f.safi);
        w.u8(f.sendReceive);
      }
      break;
    case "fqdn": {
      const h = utf8Encoder.encode(c.hostname).subarray(0, 255);
      const d = utf8Encoder.encode(c.domain).subarray(0, 255);
      w.u8(h.length);
      w.bytes(h);
      w.u8(d.length);
      w.bytes(d);
      break;
    }
    case "unknown":
      w.bytes(c.value);
      break;
    default:
      break; // the zero-length capabilities
  }
  const len = w.pos - start;
  if (len > 255) throw new RangeError(`capability ${c.kind} is ${len} octets, more than 255`);
  w.patch8(lenAt, len);
}

export function encodedCapabilitySize(c: Capability): number {
  const w = new ByteWriter(64);
  encodeCapability(w, c);
  return w.pos;
}

/** A short human form for logs and `vipmux status`. */
export function formatCapability(c: Capability): string {
  switch (c.kind) {
    case "multiprotocol":
      return `multiprotocol(afi=${c.afi},safi=${c.safi})`;
    case "four-octet-as":
      return `4-octet-as(${c.asn})`;
    case "graceful-restart":
      return `graceful-restart(time=${c.restartTimeSec}s,flags=${c.restartFlags},families=${c.families.length})`;
    case "extended-next-hop":
      return `extended-next-hop(${c.entries.map((e) => `${e.afi}/${e.safi}->${e.nextHopAfi}`).join(",")})`;
    case "add-path":
      return `add-path(${c.families.map((f) => `${f.afi}/${f.safi}:${f.sendReceive}`).join(",")})`;
    case "fqdn":
      return `fqdn(${c.hostname}${c.domain ? `.${c.domain}` : ""})`;
    case "unknown":
      return `unknown(code=${c.code},len=${c.value.length})`;
    default:
      return c.kind;
  }
}
