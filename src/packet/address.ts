// Text <-> bytes for IP and MAC addresses. Control-plane only (allocates); the packet path
// works on the byte arrays these produce.

import { isIPv4, isIPv6 } from "node:net";

/** Parses an IPv4 or IPv6 address to 4 or 16 network-order bytes; undefined if invalid. */
export function parseIp(text: string): Uint8Array | undefined {
  if (isIPv4(text)) return Uint8Array.from(text.split(".").map(Number));
  if (!isIPv6(text)) return undefined;
  let s = text;
  const zone = s.indexOf("%");
  if (zone >= 0) s = s.slice(0, zone);
  const out = new Uint8Array(16);
  // A trailing dotted quad (::ffff:1.2.3.4) becomes the last two groups.
  const lastColon = s.lastIndexOf(":");
  const tail = s.slice(lastColon + 1);
  if (tail.includes(".")) {
    const v4 = tail.split(".").map(Number);
    s = `${s.slice(0, lastColon + 1)}${((v4[0]! << 8) | v4[1]!).toString(16)}:${((v4[2]! << 8) | v4[3]!).toString(16)}`;
  }
  const [head, rest] = s.split("::") as [string, string | undefined];
  const headGroups = head === "" ? [] : head.split(":");
  const restGroups = rest === undefined || rest === "" ? [] : rest.split(":");
  const groups = [
    ...headGroups,
    ...new Array<string>(8 - headGroups.length - restGroups.length).fill("0"),
    ...restGroups,
  ];
  for (let i = 0; i < 8; i++) {
    const g = Number.parseInt(groups[i]!, 16);
    out[2 * i] = g >>> 8;
    out[2 * i + 1] = g & 0xff;
  }
  return out;
}

/** Formats 4 or 16 bytes at `off` as text (IPv6 in RFC 5952 canonical form). */
export function formatIp(buf: Uint8Array, off = 0, len = buf.length - off): string {
  if (len === 4) return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((buf[off + 2 * i]! << 8) | buf[off + 2 * i + 1]!);
  // RFC 5952 §4.2: compress the longest run (>= 2) of zero groups, the first if tied.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(":");
  if (best < 0) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
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
