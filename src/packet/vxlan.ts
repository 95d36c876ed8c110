// VXLAN encapsulation and decapsulation (RFC 7348), outer IPv4 or IPv6.
//
//   outer IPv4 (20) | IPv6 (40) | UDP (8) | VXLAN (8) | inner Ethernet (14) | inner IP packet
//
// Outer UDP checksum:
// - IPv4: 0 (RFC 7348 §5: "UDP Checksum: It SHOULD be transmitted as zero"), unless
//   `ipv4UdpChecksum` asks for one (Linux's own VXLAN device computes it by default).
// - IPv6: computed in full. RFC 8200 §8.1 requires it; RFC 6935/6936 allow zero for
//   tunnels only when the receiver opts in (Linux: `udp6zerocsumrx`), so a real checksum
//   works with every default receiver. It costs one pass over the packet.
// Outer source port: the flow hash mapped into 49152-65535 (RFC 7348 §5 recommends the
// dynamic range), so underlay ECMP spreads flows and keeps each flow on one path.
// Outer IPv6 flow label: the flow hash too (RFC 6438), for routers that hash on it.

import { copyBytes } from "./bytes.ts";
import { checksum, foldComplement, pseudoHeaderSum, sum16, updateChecksum16 } from "./checksum.ts";
import {
  ETHERNET_HEADER_LEN,
  EtherType,
  IPV4_HEADER_LEN,
  IPV6_HEADER_LEN,
  IpProto,
  UDP_HEADER_LEN,
  VXLAN_HEADER_LEN,
  VXLAN_PORT,
} from "./constants.ts";

/** Bytes added in front of the inner IP packet. */
export const VXLAN_OVERHEAD_V4 =
  IPV4_HEADER_LEN + UDP_HEADER_LEN + VXLAN_HEADER_LEN + ETHERNET_HEADER_LEN; // 50
export const VXLAN_OVERHEAD_V6 =
  IPV6_HEADER_LEN + UDP_HEADER_LEN + VXLAN_HEADER_LEN + ETHERNET_HEADER_LEN; // 70

/** VXLAN flags byte with the I bit (valid VNI) set, RFC 7348 §5. */
const VXLAN_FLAG_I = 0x08;

/** Maps a flow hash into the UDP dynamic port range 49152-65535 (RFC 7348 §5). */
export function vxlanSourcePort(flowHash: number): number {
  return 49152 | (flowHash & 0x3fff);
}

/** Parameters of one encapsulation. The forwarder keeps one instance and mutates it. */
export class VxlanEncap {
  /** Outer source (the MUX's PA) and destination (the backend host's PA): 4 or 16 bytes, same family. */
  outerSrc: Uint8Array = new Uint8Array(4);
  outerDst: Uint8Array = new Uint8Array(4);
  srcPort = 49152;
  dstPort: number = VXLAN_PORT;
  vni = 0;
  /** Inner Ethernet: destination is the host's VXLAN device MAC, source the MUX's. */
  innerDstMac: Uint8Array = new Uint8Array(6);
  innerSrcMac: Uint8Array = new Uint8Array(6);
  /** Outer TTL / hop limit. */
  ttl = 64;
  /** Outer IPv4 identification (callers count it up; RFC 6864 wants it to vary when DF is clear). */
  ipId = 0;
  /** Outer IPv4 DF bit. Clear by default: the underlay may fragment rather than drop. */
  dontFragment = false;
  /** Outer IPv6 flow label (20 bits). */
  flowLabel = 0;
  /**
   * Decrement the inner TTL / hop limit while copying (the MUX acts as a router hop), with
   * the inner IPv4 checksum patched per RFC 1624. Done here, before the outer IPv6 UDP
   * checksum is computed over the inner bytes. The caller checks the TTL is above 1.
   */
  decrementInnerTtl = false;
  /** Compute the outer UDP checksum over IPv4 too (default: 0, as RFC 7348 §5 advises). */
  ipv4UdpChecksum = false;
}

/**
 * Writes the encapsulated packet for inner[innerOff, innerOff + innerLen) into `out`
 * starting at 0. Returns the total length, or -1 if `out` is too small or the inner packet
 * is not IPv4/IPv6. Allocates nothing.
 */
export function encapsulateVxlan(
  out: Uint8Array,
  inner: Uint8Array,
  innerOff: number,
  innerLen: number,
  e: VxlanEncap,
): number {
  const v6 = e.outerDst.length === 16;
  const ipLen = v6 ? IPV6_HEADER_LEN : IPV4_HEADER_LEN;
  const total = ipLen + UDP_HEADER_LEN + VXLAN_HEADER_LEN + ETHERNET_HEADER_LEN + innerLen;
  const version = inner[innerOff]! >>> 4;
  if (total > out.length || (version !== 4 && version !== 6)) return -1;
  const udpLen = total - ipLen;
  if (v6) {
    if (udpLen > 0xffff) return -1;
    out[0] = 0x60; // version 6, traffic class 0
    out[1] = (e.flowLabel >>> 16) & 0x0f;
    out[2] = (e.flowLabel >>> 8) & 0xff;
    out[3] = e.flowLabel & 0xff;
    out[4] = udpLen >>> 8;
    out[5] = udpLen & 0xff;
    out[6] = IpProto.udp;
    out[7] = e.ttl;
    out.set(e.outerSrc, 8);
    out.set(e.outerDst, 24);
  } else {
    if (total > 0xffff) return -1;
    out[0] = 0x45;
    out[1] = 0;
    out[2] = total >>> 8;
    out[3] = total & 0xff;
    out[4] = (e.ipId >>> 8) & 0xff;
    out[5] = e.ipId & 0xff;
    out[6] = e.dontFragment ? 0x40 : 0;
    out[7] = 0;
    out[8] = e.ttl;
    out[9] = IpProto.udp;
    out[10] = 0;
    out[11] = 0;
    out.set(e.outerSrc, 12);
    out.set(e.outerDst, 16);
    const c = checksum(out, 0, IPV4_HEADER_LEN);
    out[10] = c >>> 8;
    out[11] = c & 0xff;
  }
  let o = ipLen;
  // UDP
  out[o] = e.srcPort >>> 8;
  out[o + 1] = e.srcPort & 0xff;
  out[o + 2] = e.dstPort >>> 8;
  out[o + 3] = e.dstPort & 0xff;
  out[o + 4] = udpLen >>> 8;
  out[o + 5] = udpLen & 0xff;
  out[o + 6] = 0;
  out[o + 7] = 0;
  const udpOff = o;
  o += UDP_HEADER_LEN;
  // VXLAN: flags, 24 reserved bits, VNI, 8 reserved bits.
  out[o] = VXLAN_FLAG_I;
  out[o + 1] = 0;
  out[o + 2] = 0;
  out[o + 3] = 0;
  out[o + 4] = (e.vni >>> 16) & 0xff;
  out[o + 5] = (e.vni >>> 8) & 0xff;
  out[o + 6] = e.vni & 0xff;
  out[o + 7] = 0;
  o += VXLAN_HEADER_LEN;
  // Inner Ethernet
  out.set(e.innerDstMac, o);
  out.set(e.innerSrcMac, o + 6);
  const et = version === 4 ? EtherType.ipv4 : EtherType.ipv6;
  out[o + 12] = et >>> 8;
  out[o + 13] = et & 0xff;
  o += ETHERNET_HEADER_LEN;
  copyBytes(inner, innerOff, innerOff + innerLen, out, o);
  if (e.decrementInnerTtl) decrementTtl(out, o, version);
  if (v6 || e.ipv4UdpChecksum) {
    const src = v6 ? 8 : 12;
    const dst = v6 ? 24 : 16;
    const alen = v6 ? 16 : 4;
    let c = foldComplement(
      sum16(out, udpOff, udpLen, pseudoHeaderSum(out, src, dst, alen, IpProto.udp, udpLen)),
    );
    if (c === 0) c = 0xffff; // RFC 768 / RFC 8200 §8.1: a computed 0 is sent as all ones
    out[udpOff + 6] = c >>> 8;
    out[udpOff + 7] = c & 0xff;
  }
  return total;
}

/** TTL / hop limit - 1 for the IP packet at `ip`; IPv4 checksum patched incrementally. */
function decrementTtl(b: Uint8Array, ip: number, version: number): void {
  if (version === 6) {
    b[ip + 7] = (b[ip + 7]! - 1) & 0xff;
    return;
  }
  const ttl = b[ip + 8]!;
  const proto = b[ip + 9]!;
  b[ip + 8] = (ttl - 1) & 0xff;
  // TTL shares a 16-bit word with the protocol byte (RFC 1624 §3).
  const c = updateChecksum16(
    (b[ip + 10]! << 8) | b[ip + 11]!,
    (ttl << 8) | proto,
    (((ttl - 1) & 0xff) << 8) | proto,
  );
  b[ip + 10] = c >>> 8;
  b[ip + 11] = c & 0xff;
}

/** Outcome of `parseVxlan`. */
export const VxlanStatus = {
  ok: 0,
  truncated: 1,
  /** Not IPv4/IPv6 + UDP to the VXLAN port. */
  notVxlan: 2,
  badChecksum: 3,
  badLength: 4,
  /** VXLAN I flag clear (RFC 7348 §5: the VNI is not valid). */
  badFlags: 5,
  /** IPv6 outer with UDP checksum 0 and the receiver not configured to accept it (RFC 6935). */
  zeroChecksum: 6,
} as const;
export type VxlanStatus = (typeof VxlanStatus)[keyof typeof VxlanStatus];

/** Filled in place by `parseVxlan`. */
export class VxlanPacket {
  outerFamily = 0;
  outerSrcOffset = 0;
  outerDstOffset = 0;
  udpSrcPort = 0;
  vni = 0;
  /** Offset and length of the inner Ethernet frame. */
  ethOffset = 0;
  ethLength = 0;
  innerEtherType = 0;
  /** Offset and length of the inner IP packet (after the 14-byte Ethernet header). */
  innerOffset = 0;
  innerLength = 0;
}

function u16(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}

/**
 * Decapsulates buf[off, off + len): an outer IP packet carrying VXLAN to `port`.
 * Verifies the outer IPv4 header checksum and any non-zero UDP checksum. An IPv6 outer
 * with a zero UDP checksum is refused unless `acceptZeroUdp6` (RFC 6935/6936 opt-in).
 */
export function parseVxlan(
  buf: Uint8Array,
  off: number,
  len: number,
  d: VxlanPacket,
  port: number = VXLAN_PORT,
  acceptZeroUdp6 = false,
): VxlanStatus {
  if (len < 1) return VxlanStatus.truncated;
  const version = buf[off]! >>> 4;
  let udp: number;
  let end: number;
  if (version === 4) {
    if (len < IPV4_HEADER_LEN) return VxlanStatus.truncated;
    const ihl = (buf[off]! & 0x0f) * 4;
    const total = u16(buf, off + 2);
    if (ihl < IPV4_HEADER_LEN || total < ihl) return VxlanStatus.badLength;
    if (total > len || ihl > len) return VxlanStatus.truncated;
    if (checksum(buf, off, ihl) !== 0) return VxlanStatus.badChecksum;
    if (buf[off + 9] !== IpProto.udp || (u16(buf, off + 6) & 0x3fff) !== 0)
      return VxlanStatus.notVxlan;
    d.outerFamily = 4;
    d.outerSrcOffset = off + 12;
    d.outerDstOffset = off + 16;
    udp = off + ihl;
    end = off + total;
  } else if (version === 6) {
    if (len < IPV6_HEADER_LEN) return VxlanStatus.truncated;
    end = off + IPV6_HEADER_LEN + u16(buf, off + 4);
    if (end > off + len) return VxlanStatus.truncated;
    if (buf[off + 6] !== IpProto.udp) return VxlanStatus.notVxlan;
    d.outerFamily = 6;
    d.outerSrcOffset = off + 8;
    d.outerDstOffset = off + 24;
    udp = off + IPV6_HEADER_LEN;
  } else {
    return VxlanStatus.notVxlan;
  }
  if (udp + UDP_HEADER_LEN > end) return VxlanStatus.truncated;
  if (u16(buf, udp + 2) !== port) return VxlanStatus.notVxlan;
  const udpLen = u16(buf, udp + 4);
  if (udpLen < UDP_HEADER_LEN || udp + udpLen > end) return VxlanStatus.badLength;
  const csum = u16(buf, udp + 6);
  const addrLen = d.outerFamily === 4 ? 4 : 16;
  if (csum !== 0) {
    const s = sum16(
      buf,
      udp,
      udpLen,
      pseudoHeaderSum(buf, d.outerSrcOffset, d.outerDstOffset, addrLen, IpProto.udp, udpLen),
    );
    if (foldComplement(s) !== 0) return VxlanStatus.badChecksum;
  } else if (d.outerFamily === 6 && !acceptZeroUdp6) {
    return VxlanStatus.zeroChecksum;
  }
  const vx = udp + UDP_HEADER_LEN;
  const udpEnd = udp + udpLen;
  if (vx + VXLAN_HEADER_LEN + ETHERNET_HEADER_LEN > udpEnd) return VxlanStatus.truncated;
  if ((buf[vx]! & VXLAN_FLAG_I) === 0) return VxlanStatus.badFlags;
  d.udpSrcPort = u16(buf, udp);
  d.vni = (buf[vx + 4]! << 16) | (buf[vx + 5]! << 8) | buf[vx + 6]!;
  d.ethOffset = vx + VXLAN_HEADER_LEN;
  d.ethLength = udpEnd - d.ethOffset;
  d.innerEtherType = u16(buf, d.ethOffset + 12);
  d.innerOffset = d.ethOffset + ETHERNET_HEADER_LEN;
  d.innerLength = udpEnd - d.innerOffset;
  return VxlanStatus.ok;
}
