// IP address text <-> bytes, shared by the BGP codec and the packet codec. Control-plane
// only (allocates); strict: malformed text gives undefined, never a throw.

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

/** Strict IPv6 text (with an optional dotted-quad tail) to 16 bytes. */
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
