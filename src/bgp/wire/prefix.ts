// Compact prefix storage. An UPDATE can carry hundreds of prefixes and a table hundreds of
// thousands, so lists are typed arrays (one uint32 per IPv4 address, 16 bytes per IPv6
// address) rather than one object per prefix.

import { Afi } from "./constants.ts";

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

export function parseIpv4(text: string): number | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  let v = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    v = v * 256 + n;
  }
  return v;
}

export const formatIpv4 = (v: number): string =>
  `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;

export function parseIpv6(text: string): Uint8Array | undefined {
  let s = text;
  const out = new Uint8Array(16);
  // An embedded dotted-quad tail (::ffff:1.2.3.4) becomes two hextets.
  const lastColon = s.lastIndexOf(":");
  if (s.includes(".", lastColon)) {
    const v4 = parseIpv4(s.slice(lastColon + 1));
    if (v4 === undefined) return undefined;
    s = `${s.slice(0, lastColon + 1)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  const halves = s.split("::");
  if (halves.length > 2) return undefined;
  const head = halves[0] === "" ? [] : (halves[0] ?? "").split(":");
  const tail = halves.length === 2 && halves[1] !== "" ? (halves[1] ?? "").split(":") : [];
  const groups = head.length + tail.length;
  if (halves.length === 1 ? groups !== 8 : groups > 7) return undefined;
  const put = (list: string[], start: number): boolean => {
    for (let i = 0; i < list.length; i++) {
      const g = list[i] ?? "";
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return false;
      const n = Number.parseInt(g, 16);
      out[(start + i) * 2] = n >> 8;
      out[(start + i) * 2 + 1] = n & 255;
    }
    return true;
  };
  if (!put(head, 0) || !put(tail, 8 - tail.length)) return undefined;
  return out;
}

/** RFC 5952 text form: lowercase, longest run (>= 2) of zero groups compressed. */
export function formatIpv6(bytes: Uint8Array, offset = 0): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++)
    g.push(((bytes[offset + 2 * i] ?? 0) << 8) | (bytes[offset + 2 * i + 1] ?? 0));
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (list: number[]) => list.map((n) => n.toString(16)).join(":");
  if (bestStart < 0) return hex(g);
  return `${hex(g.slice(0, bestStart))}::${hex(g.slice(bestStart + bestLen))}`;
}

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
