// Test helper: builds well-formed IPv4/IPv6 packets (TCP, UDP, ICMP, ICMPv6) with correct
// checksums, independently of the codec under test (plain loops, no codec imports).

export interface PacketSpec {
  src: string;
  dst: string;
  proto: "tcp" | "udp" | "icmp";
  sport?: number;
  dport?: number;
  /** TCP flags byte (default SYN). */
  flags?: number;
  /** ICMP type/code (default echo request); `rest` is bytes 4..7 of the ICMP header. */
  icmpType?: number;
  icmpCode?: number;
  icmpRest?: number;
  payload?: Uint8Array;
  ttl?: number;
  /** IPv4 only: fragment offset (8-byte units) and more-fragments flag. */
  fragOffset?: number;
  moreFragments?: boolean;
  /** IPv4 only: options bytes (multiple of 4). */
  options?: Uint8Array;
  /** IPv6 only: extension headers to insert, by next-header number (0, 43, 60, 44). */
  ext?: number[];
}

export function ipBytes(text: string): number[] {
  if (text.includes(".")) return text.split(".").map(Number);
  const [h, t] = text.split("::");
  const hg = h ? h.split(":") : [];
  const tg = t ? t.split(":") : [];
  const groups = [...hg, ...Array(8 - hg.length - tg.length).fill("0"), ...tg];
  return groups.flatMap((g) => {
    const v = Number.parseInt(g, 16);
    return [v >> 8, v & 255];
  });
}

function sum(bytes: ArrayLike<number>, start = 0, end = bytes.length, init = 0): number {
  let s = init;
  for (let i = start; i < end; i += 2)
    s += ((bytes[i] ?? 0) << 8) | (i + 1 < end ? (bytes[i + 1] ?? 0) : 0);
  return s;
}
function fold(s: number): number {
  let x = s;
  while (x > 0xffff) x = (x & 0xffff) + Math.floor(x / 65536);
  return ~x & 0xffff;
}

export function buildPacket(spec: PacketSpec): Uint8Array {
  const v6 = spec.src.includes(":");
  const src = ipBytes(spec.src);
  const dst = ipBytes(spec.dst);
  const payload = [...(spec.payload ?? new Uint8Array([1, 2, 3, 4, 5]))];
  let l4: number[];
  let proto: number;
  if (spec.proto === "tcp") {
    proto = 6;
    l4 = [
      spec.sport! >> 8,
      spec.sport! & 255,
      spec.dport! >> 8,
      spec.dport! & 255,
      0,
      0,
      0,
      1,
      0,
      0,
      0,
      0,
      0x50,
      spec.flags ?? 0x02,
      0xff,
      0xff,
      0,
      0,
      0,
      0,
      ...payload,
    ];
  } else if (spec.proto === "udp") {
    proto = 17;
    const len = 8 + payload.length;
    l4 = [
      spec.sport! >> 8,
      spec.sport! & 255,
      spec.dport! >> 8,
      spec.dport! & 255,
      len >> 8,
      len & 255,
      0,
      0,
      ...payload,
    ];
  } else {
    proto = v6 ? 58 : 1;
    const rest = spec.icmpRest ?? 0x12340001;
    l4 = [
      spec.icmpType ?? (v6 ? 128 : 8),
      spec.icmpCode ?? 0,
      0,
      0,
      (rest >>> 24) & 255,
      (rest >>> 16) & 255,
      (rest >>> 8) & 255,
      rest & 255,
      ...payload,
    ];
  }
  const l4len = l4.length;
  // L4 checksum (ICMPv4 has no pseudo-header).
  const csumAt = proto === 6 ? 16 : proto === 17 ? 6 : 2;
  let init = 0;
  if (proto !== 1) init = sum(src) + sum(dst) + proto + l4len;
  let c = fold(sum(l4, 0, l4.length, init));
  if (proto === 17 && c === 0) c = 0xffff;
  l4[csumAt] = c >> 8;
  l4[csumAt + 1] = c & 255;
  if (!v6) {
    const opts = [...(spec.options ?? [])];
    const ihl = 20 + opts.length;
    const total = ihl + l4len;
    const frag = ((spec.moreFragments ? 0x2000 : 0) | (spec.fragOffset ?? 0)) & 0xffff;
    const h = [
      0x40 | (ihl / 4),
      0,
      total >> 8,
      total & 255,
      0x12,
      0x34,
      frag >> 8,
      frag & 255,
      spec.ttl ?? 64,
      proto,
      0,
      0,
      ...src,
      ...dst,
      ...opts,
    ];
    const hc = fold(sum(h));
    h[10] = hc >> 8;
    h[11] = hc & 255;
    return Uint8Array.from([...h, ...l4]);
  }
  const exts: number[] = [];
  const chain = spec.ext ?? [];
  for (let i = 0; i < chain.length; i++) {
    const next = i + 1 < chain.length ? chain[i + 1]! : proto;
    if (chain[i] === 44)
      exts.push(next, 0, 0, 0, 0, 0, 0, 7); // atomic fragment header
    else exts.push(next, 0, chain[i] === 43 ? 0 : 1, chain[i] === 43 ? 0 : 4, 0, 0, 0, 0); // 8 bytes, PadN
  }
  const payloadLen = exts.length + l4len;
  const first = chain.length > 0 ? chain[0]! : proto;
  const h = [
    0x60,
    0,
    0,
    0,
    payloadLen >> 8,
    payloadLen & 255,
    first,
    spec.ttl ?? 64,
    ...src,
    ...dst,
  ];
  return Uint8Array.from([...h, ...exts, ...l4]);
}

/** An ICMP error from `router` to `to` quoting `quoted` (cut to `quoteLen` bytes). */
export function buildIcmpError(
  router: string,
  to: string,
  type: number,
  code: number,
  quoted: Uint8Array,
  quoteLen = quoted.length,
  rest = 0,
): Uint8Array {
  return buildPacket({
    src: router,
    dst: to,
    proto: "icmp",
    icmpType: type,
    icmpCode: code,
    icmpRest: rest,
    payload: quoted.subarray(0, quoteLen),
  });
}

export function verifyIpv4HeaderChecksum(b: Uint8Array, off = 0): boolean {
  const ihl = (b[off]! & 15) * 4;
  return fold(sum(b, off, off + ihl)) === 0;
}

export function hex(b: Uint8Array): string {
  return Buffer.from(b).toString("hex");
}
