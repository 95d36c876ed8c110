// Inbound IP packet parser for the forwarder. It reads a raw IPv4 or IPv6 packet (as a
// TUN device delivers it, no link header) and fills a caller-owned `ParsedPacket` with
// offsets and small integers: nothing is copied and nothing is allocated per packet.
//
// Besides the headers it computes the *flow tuple* the load balancer hashes:
// - normally the packet's own (src, dst, proto, src port, dst port);
// - IPv4 and IPv6 fragments (first fragment included) carry no usable ports, so their
//   tuple has no ports and services hash them on (src, dst, proto). Hashing the first
//   fragment the same way keeps every fragment of one datagram on one backend; the cost is
//   that a fragmented datagram may reach a different backend than the flow's unfragmented
//   packets (the host stack reassembles, so it still gets a whole datagram somewhere).
// - ICMP / ICMPv6 errors (Destination Unreachable incl. Fragmentation Needed, Packet Too
//   Big, Time Exceeded, Parameter Problem) are about a packet a backend sent *from* the
//   VIP (Direct Server Return). Their tuple is the embedded header reversed, so the error
//   hashes exactly like the client's packets of that flow and reaches the same backend
//   (RFC 1191 / RFC 8201 path MTU discovery keeps working through the MUX).
// - ICMP echo uses the echo identifier as its source port, so pings spread by identifier.

import { checksum } from "./checksum.ts";
import {
  ICMP_FRAG_NEEDED,
  IcmpType,
  Icmpv6Type,
  IPV4_HEADER_LEN,
  IPV6_HEADER_LEN,
  IpProto,
} from "./constants.ts";

/** Outcome of parsing. 0 is success; the rest are drop reasons (the forwarder's codes 1–7). */
export const ParseStatus = {
  ok: 0,
  /** Shorter than a header it claims to have. */
  truncated: 1,
  /** Version nibble neither 4 nor 6. */
  badVersion: 2,
  /** IPv4 IHL < 5 or a TCP data offset < 5. */
  badHeaderLength: 3,
  /** IPv4 total length / IPv6 payload length / UDP length inconsistent (or a jumbogram). */
  badLength: 4,
  /** IPv4 header checksum wrong (RFC 1812 §5.2.2: a router must verify it). */
  badChecksum: 5,
  /** More IPv6 extension headers than we walk, or one we cannot skip. */
  badExtensionHeader: 6,
  /** An ICMP error whose embedded packet is too short to tell its flow. */
  badIcmpError: 7,
} as const;
export type ParseStatus = (typeof ParseStatus)[keyof typeof ParseStatus];

/** IPv6 extension headers walked before giving up (hostile chains must stay O(1)). */
export const MAX_IPV6_EXTENSION_HEADERS = 8;

/** Filled in place by `parseIpPacket`; reuse one instance per worker. */
export class ParsedPacket {
  /** 4 or 6 (0 until parsed). */
  family = 0;
  /** IPv4 total length or 40 + IPv6 payload length: the bytes that belong to the packet. */
  ipLength = 0;
  /** Offset of the TTL / Hop Limit byte. */
  ttlOffset = 0;
  /** Upper-layer protocol after IPv6 extension headers. */
  proto = 0;
  /** Offset of the upper-layer header (or of the fragment data). */
  l4Offset = 0;
  /** 1 for any fragment (IPv4 MF or offset; IPv6 fragment header that is not atomic). */
  fragment = 0;
  /** TCP flags byte (0 when not TCP). */
  tcpFlags = 0;
  /** ICMP / ICMPv6 type and code (-1 when not ICMP). */
  icmpType = -1;
  icmpCode = -1;
  /** 1 when the packet is an ICMP error and the flow tuple below is its embedded header reversed. */
  icmpError = 0;
  /** Flow tuple: address offsets into the packet buffer and their length (4 or 16). */
  flowAddrLen = 0;
  flowSrcOffset = 0;
  flowDstOffset = 0;
  flowProto = 0;
  /** 1 when flowSrcPort / flowDstPort are meaningful. */
  flowHasPorts = 0;
  flowSrcPort = 0;
  flowDstPort = 0;
}

function u16(buf: Uint8Array, off: number): number {
  return (buf[off]! << 8) | buf[off + 1]!;
}

/** Parses the IP packet in buf[0, len). Returns a ParseStatus; on 0, `p` describes it. */
export function parseIpPacket(buf: Uint8Array, len: number, p: ParsedPacket): ParseStatus {
  if (len < 1) return ParseStatus.truncated;
  const version = buf[0]! >>> 4;
  if (version === 4) return parseIpv4(buf, len, p);
  if (version === 6) return parseIpv6(buf, len, p);
  return ParseStatus.badVersion;
}

function reset(p: ParsedPacket, family: number): void {
  p.family = family;
  p.fragment = 0;
  p.tcpFlags = 0;
  p.icmpType = -1;
  p.icmpCode = -1;
  p.icmpError = 0;
  p.flowHasPorts = 0;
  p.flowSrcPort = 0;
  p.flowDstPort = 0;
}

function parseIpv4(buf: Uint8Array, len: number, p: ParsedPacket): ParseStatus {
  if (len < IPV4_HEADER_LEN) return ParseStatus.truncated;
  const ihl = (buf[0]! & 0x0f) * 4;
  if (ihl < IPV4_HEADER_LEN) return ParseStatus.badHeaderLength;
  if (ihl > len) return ParseStatus.truncated;
  const total = u16(buf, 2);
  if (total < ihl) return ParseStatus.badLength;
  if (total > len) return ParseStatus.truncated;
  if (checksum(buf, 0, ihl) !== 0) return ParseStatus.badChecksum;
  reset(p, 4);
  p.ipLength = total;
  p.ttlOffset = 8;
  p.proto = buf[9]!;
  p.l4Offset = ihl;
  p.flowAddrLen = 4;
  p.flowSrcOffset = 12;
  p.flowDstOffset = 16;
  p.flowProto = p.proto;
  const frag = u16(buf, 6);
  if ((frag & 0x3fff) !== 0) {
    // MF set or offset non-zero: a fragment; (src, dst, proto) only. See the header note.
    p.fragment = 1;
    return ParseStatus.ok;
  }
  return parseL4(buf, ihl, total, p);
}

// Result of the last `walkIpv6` call (module scratch: the parser is synchronous).
let walkProto = 0;
let walkL4Offset = 0;
let walkFragment = 0;

/**
 * Walks the IPv6 extension-header chain (RFC 8200 §4) from the fixed header at `hdr` up to
 * `end`. Sets walkProto / walkL4Offset / walkFragment. An atomic fragment (offset 0, M = 0,
 * RFC 6946) is not a fragment: the upper-layer header follows and is parsed.
 */
function walkIpv6(buf: Uint8Array, hdr: number, end: number): ParseStatus {
  let nh = buf[hdr + 6]!;
  let off = hdr + IPV6_HEADER_LEN;
  walkFragment = 0;
  for (let i = 0; i <= MAX_IPV6_EXTENSION_HEADERS; i++) {
    switch (nh) {
      case IpProto.hopByHop:
      case IpProto.ipv6Route:
      case IpProto.ipv6Opts:
      case IpProto.mobility: {
        if (off + 2 > end) return ParseStatus.truncated;
        const next = buf[off]!;
        off += (buf[off + 1]! + 1) * 8;
        nh = next;
        break;
      }
      case IpProto.ah: {
        if (off + 2 > end) return ParseStatus.truncated;
        const next = buf[off]!;
        off += (buf[off + 1]! + 2) * 4; // RFC 4302 §2.2: length in 4-octet units, minus 2
        nh = next;
        break;
      }
      case IpProto.ipv6Frag: {
        if (off + 8 > end) return ParseStatus.truncated;
        const next = buf[off]!;
        const offsetAndM = u16(buf, off + 2);
        off += 8;
        nh = next;
        if ((offsetAndM & 0xfff9) !== 0) {
          walkFragment = 1; // offset (13 bits) or M set: the rest is fragment data
          walkProto = nh;
          walkL4Offset = off;
          return off > end ? ParseStatus.truncated : ParseStatus.ok;
        }
        break;
      }
      default:
        if (off > end) return ParseStatus.truncated;
        walkProto = nh;
        walkL4Offset = off;
        return ParseStatus.ok;
    }
  }
  return ParseStatus.badExtensionHeader;
}

function parseIpv6(buf: Uint8Array, len: number, p: ParsedPacket): ParseStatus {
  if (len < IPV6_HEADER_LEN) return ParseStatus.truncated;
  const payload = u16(buf, 4);
  // Payload length 0 with hop-by-hop means a jumbogram (RFC 2675); not on a 1500-MTU path.
  if (payload === 0 && buf[6] === IpProto.hopByHop) return ParseStatus.badLength;
  const total = IPV6_HEADER_LEN + payload;
  if (total > len) return ParseStatus.truncated;
  const st = walkIpv6(buf, 0, total);
  if (st !== ParseStatus.ok) return st;
  reset(p, 6);
  p.ipLength = total;
  p.ttlOffset = 7;
  p.proto = walkProto;
  p.l4Offset = walkL4Offset;
  p.flowAddrLen = 16;
  p.flowSrcOffset = 8;
  p.flowDstOffset = 24;
  p.flowProto = walkProto;
  if (walkFragment) {
    p.fragment = 1;
    return ParseStatus.ok;
  }
  return parseL4(buf, walkL4Offset, total, p);
}

function parseL4(buf: Uint8Array, off: number, end: number, p: ParsedPacket): ParseStatus {
  const avail = end - off;
  const proto = p.proto;
  if (proto === IpProto.tcp) {
    if (avail < 20) return ParseStatus.truncated;
    const doff = (buf[off + 12]! >>> 4) * 4;
    if (doff < 20) return ParseStatus.badHeaderLength;
    if (doff > avail) return ParseStatus.truncated;
    p.tcpFlags = buf[off + 13]!;
    p.flowHasPorts = 1;
    p.flowSrcPort = u16(buf, off);
    p.flowDstPort = u16(buf, off + 2);
    return ParseStatus.ok;
  }
  if (proto === IpProto.udp) {
    if (avail < 8) return ParseStatus.truncated;
    const udpLen = u16(buf, off + 4);
    if (udpLen < 8 || udpLen > avail) return ParseStatus.badLength;
    p.flowHasPorts = 1;
    p.flowSrcPort = u16(buf, off);
    p.flowDstPort = u16(buf, off + 2);
    return ParseStatus.ok;
  }
  const icmp =
    (p.family === 4 && proto === IpProto.icmp) || (p.family === 6 && proto === IpProto.icmpv6);
  if (!icmp) return ParseStatus.ok; // other protocols: no ports, hashed on (src, dst, proto)
  if (avail < 8) return ParseStatus.truncated;
  const type = buf[off]!;
  p.icmpType = type;
  p.icmpCode = buf[off + 1]!;
  if (isIcmpEcho(p.family, type)) {
    p.flowHasPorts = 1;
    p.flowSrcPort = u16(buf, off + 4); // identifier
    return ParseStatus.ok;
  }
  if (isIcmpError(p.family, type)) return parseIcmpError(buf, off + 8, end, p);
  return ParseStatus.ok;
}

export function isIcmpEcho(family: number, type: number): boolean {
  return family === 4
    ? type === IcmpType.echoRequest || type === IcmpType.echoReply
    : type === Icmpv6Type.echoRequest || type === Icmpv6Type.echoReply;
}

/** ICMP types that quote the offending packet and belong to its flow. */
export function isIcmpError(family: number, type: number): boolean {
  if (family === 4) {
    return (
      type === IcmpType.destUnreachable ||
      type === IcmpType.timeExceeded ||
      type === IcmpType.parameterProblem
    );
  }
  return type >= Icmpv6Type.destUnreachable && type <= Icmpv6Type.parameterProblem;
}

/** True for IPv4 "fragmentation needed" or ICMPv6 Packet Too Big (path MTU signals). */
export function isPathMtuSignal(p: ParsedPacket): boolean {
  return p.family === 4
    ? p.icmpType === IcmpType.destUnreachable && p.icmpCode === ICMP_FRAG_NEEDED
    : p.icmpType === Icmpv6Type.packetTooBig;
}

/** Parses the packet quoted by an ICMP error at `off` and sets the reversed flow tuple. */
function parseIcmpError(buf: Uint8Array, off: number, end: number, p: ParsedPacket): ParseStatus {
  let innerProto: number;
  let innerL4: number;
  let innerFragment: number;
  if (p.family === 4) {
    if (off + IPV4_HEADER_LEN > end || buf[off]! >>> 4 !== 4) return ParseStatus.badIcmpError;
    const ihl = (buf[off]! & 0x0f) * 4;
    if (ihl < IPV4_HEADER_LEN) return ParseStatus.badIcmpError;
    innerProto = buf[off + 9]!;
    innerL4 = off + ihl;
    innerFragment = (u16(buf, off + 6) & 0x3fff) !== 0 ? 1 : 0;
    // Reversed: the quoted packet went VIP -> client; the flow is client -> VIP.
    p.flowSrcOffset = off + 16;
    p.flowDstOffset = off + 12;
  } else {
    if (off + IPV6_HEADER_LEN > end || buf[off]! >>> 4 !== 6) return ParseStatus.badIcmpError;
    // The quote may be cut anywhere (RFC 4443 §2.4(c)); walk what is there.
    const st = walkIpv6(buf, off, end);
    if (st !== ParseStatus.ok) return ParseStatus.badIcmpError;
    innerProto = walkProto;
    innerL4 = walkL4Offset;
    innerFragment = walkFragment;
    p.flowSrcOffset = off + 24;
    p.flowDstOffset = off + 8;
  }
  p.icmpError = 1;
  p.flowProto = innerProto;
  p.flowHasPorts = 0;
  if (innerFragment) return ParseStatus.ok;
  if (innerProto === IpProto.tcp || innerProto === IpProto.udp) {
    if (innerL4 + 4 > end) return ParseStatus.ok; // ports cut off: 3-tuple, as for fragments
    p.flowHasPorts = 1;
    p.flowSrcPort = u16(buf, innerL4 + 2);
    p.flowDstPort = u16(buf, innerL4);
    return ParseStatus.ok;
  }
  const innerIcmp =
    (p.family === 4 && innerProto === IpProto.icmp) ||
    (p.family === 6 && innerProto === IpProto.icmpv6);
  if (innerIcmp && innerL4 + 6 <= end && isIcmpEcho(p.family, buf[innerL4]!)) {
    // An error about an echo reply a backend sent: same tuple as the client's echo request.
    p.flowHasPorts = 1;
    p.flowSrcPort = u16(buf, innerL4 + 4);
    p.flowDstPort = 0;
  }
  return ParseStatus.ok;
}
