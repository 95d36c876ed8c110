// Compact prefix storage. An UPDATE can carry hundreds of prefixes and a table hundreds of
// thousands, so lists are typed arrays (one uint32 per IPv4 address, 16 bytes per IPv6
// address) rather than one object per prefix.

import { formatIpv6, parseIpv4, parseIpv6 } from "../../util/ip.ts";
import { Afi } from "./constants.ts";

export { formatIpv6, parseIpv4, parseIpv6 };

export interface Ipv4Prefix {
  readonly afi: 1;
  /** Network address as an unsigned 32-bit integer, host bits zero. */
  readonly addr: number;
  readonly len: number;
  readonly pathId?: number;
}

export interface Ipv6Prefix {
  readonly afi: 2;
  /** 16 bytes, host bits zero. */
  readonly addr: Uint8Array;
  readonly len: number;
  readonly pathId?: number;
}

export type Prefix = Ipv4Prefix | Ipv6Prefix;

/** IPv4 prefixes: `addrs[i]` / `lens[i]`, and `pathIds[i]` when add-path (RFC 7911) applies. */
export interface Ipv4PrefixList {
  readonly afi: 1;
  readonly count: number;
  readonly addrs: Uint32Array;
  readonly lens: Uint8Array;
  readonly pathIds: Uint32Array | null;
}

/** IPv6 prefixes: address i is `addrs.subarray(16 * i, 16 * i + 16)`. */
export interface Ipv6PrefixList {
  readonly afi: 2;
  readonly count: number;
  readonly addrs: Uint8Array;
  readonly lens: Uint8Array;
  readonly pathIds: Uint32Array | null;
}

export type PrefixList = Ipv4PrefixList | Ipv6PrefixList;

export const emptyPrefixList = (afi: 1 | 2): PrefixList =>
  afi === Afi.Ipv4
    ? { afi: 1, count: 0, addrs: new Uint32Array(0), lens: new Uint8Array(0), pathIds: null }
    : { afi: 2, count: 0, addrs: new Uint8Array(0), lens: new Uint8Array(0), pathIds: null };

/** Mask with the top `len` bits set (len 0..32). */
export const ipv4Mask = (len: number): number => (len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0);

export const formatIpv4 = (v: number): string =>
  `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;

/** Zeroes the bits of a 16-byte address beyond `len`. */
export function maskIpv6InPlace(addr: Uint8Array, offset: number, len: number): void {
  for (let i = 0; i < 16; i++) {
    const bitsHere = len - i * 8;
    if (bitsHere >= 8) continue;
    addr[offset + i] =
      bitsHere <= 0 ? 0 : (addr[offset + i] ?? 0) & ((0xff << (8 - bitsHere)) & 0xff);
  }
}

/** Parses "10.0.0.0/8" or "2001:db8::/32" (host bits must be zero). */
export function parsePrefix(text: string): Prefix | undefined {
  const slash = text.indexOf("/");
  const addrText = slash < 0 ? text : text.slice(0, slash);
  const lenText = slash < 0 ? undefined : text.slice(slash + 1);
  if (lenText !== undefined && !/^\d{1,3}$/.test(lenText)) return undefined;
  if (addrText.includes(":")) {
    const addr = parseIpv6(addrText);
    const len = lenText === undefined ? 128 : Number(lenText);
    if (addr === undefined || len > 128) return undefined;
    const masked = addr.slice();
    maskIpv6InPlace(masked, 0, len);
    if (masked.some((b, i) => b !== addr[i])) return undefined;
    return { afi: 2, addr, len };
  }
  const addr = parseIpv4(addrText);
  const len = lenText === undefined ? 32 : Number(lenText);
  if (addr === undefined || len > 32) return undefined;
  if ((addr & ipv4Mask(len)) >>> 0 !== addr) return undefined;
  return { afi: 1, addr, len };
}

export const formatPrefix = (p: Prefix): string =>
  p.afi === Afi.Ipv4 ? `${formatIpv4(p.addr)}/${p.len}` : `${formatIpv6(p.addr)}/${p.len}`;

/** Entry `i` of a list as a standalone prefix value (copies the IPv6 address). */
export function prefixAt(list: PrefixList, i: number): Prefix {
  const len = list.lens[i] ?? 0;
  const pathId = list.pathIds?.[i];
  if (list.afi === Afi.Ipv4) {
    const addr = list.addrs[i] ?? 0;
    return pathId === undefined ? { afi: 1, addr, len } : { afi: 1, addr, len, pathId };
  }
  const addr = list.addrs.slice(16 * i, 16 * i + 16);
  return pathId === undefined ? { afi: 2, addr, len } : { afi: 2, addr, len, pathId };
}

export function prefixesToStrings(list: PrefixList): string[] {
  const out: string[] = [];
  for (let i = 0; i < list.count; i++) out.push(formatPrefix(prefixAt(list, i)));
  return out;
}

/** Builds a list from prefix values of one family; path ids are kept when any has one. */
export function prefixListOf(afi: 1, prefixes: readonly Prefix[]): Ipv4PrefixList;
export function prefixListOf(afi: 2, prefixes: readonly Prefix[]): Ipv6PrefixList;
export function prefixListOf(afi: 1 | 2, prefixes: readonly Prefix[]): PrefixList;
export function prefixListOf(afi: 1 | 2, prefixes: readonly Prefix[]): PrefixList {
  const n = prefixes.length;
  const lens = new Uint8Array(n);
  const withIds = prefixes.some((p) => p.pathId !== undefined);
  const pathIds = withIds ? new Uint32Array(n) : null;
  if (afi === Afi.Ipv4) {
    const addrs = new Uint32Array(n);
    prefixes.forEach((p, i) => {
      if (p.afi !== 1) throw new TypeError("prefixListOf: IPv6 prefix in an IPv4 list");
      addrs[i] = p.addr;
      lens[i] = p.len;
      if (pathIds) pathIds[i] = p.pathId ?? 0;
    });
    return { afi: 1, count: n, addrs, lens, pathIds };
  }
  const addrs = new Uint8Array(16 * n);
  prefixes.forEach((p, i) => {
    if (p.afi !== 2) throw new TypeError("prefixListOf: IPv4 prefix in an IPv6 list");
    addrs.set(p.addr, 16 * i);
    lens[i] = p.len;
    if (pathIds) pathIds[i] = p.pathId ?? 0;
  });
  return { afi: 2, count: n, addrs, lens, pathIds };
}

/** Builds a list from strings such as "192.0.2.1/32"; throws on text that is not a prefix. */
export function prefixListFromStrings(afi: 1, texts: readonly string[]): Ipv4PrefixList;
export function prefixListFromStrings(afi: 2, texts: readonly string[]): Ipv6PrefixList;
export function prefixListFromStrings(afi: 1 | 2, texts: readonly string[]): PrefixList;
export function prefixListFromStrings(afi: 1 | 2, texts: readonly string[]): PrefixList {
  return prefixListOf(
    afi,
    texts.map((t) => {
      const p = parsePrefix(t);
      if (p === undefined || p.afi !== afi) throw new TypeError(`not an AFI ${afi} prefix: ${t}`);
      return p;
    }),
  );
}
