// Builds one IPv4/IPv6 + TCP/UDP packet for a 5-tuple, with correct lengths and checksums:
// what `vipmux flow` hands the forwarder to ask where that flow goes. Control plane only
// (allocates). No payload; TCP carries the flags asked for (default ACK: a packet of an
// established connection, not a new one).

import { parseIp } from "./address.ts";
import { foldComplement, pseudoHeaderSum, sum16 } from "./checksum.ts";
import { IPV4_HEADER_LEN, IPV6_HEADER_LEN, IpProto, TcpFlag, UDP_HEADER_LEN } from "./constants.ts";

/** A flow as `vipmux flow` and the admin API name it. */
export interface FlowQuery {
  readonly protocol: string;
  readonly src: string;
  readonly sport: number;
  readonly dst: string;
  readonly dport: number;
}

/** A FlowQuery that names no packet: bad protocol, address, port, or mixed families. */
export class FlowQueryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FlowQueryError";
  }
}

const TCP_HEADER_LEN = 20;

function port(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1 || value > 65535)
    throw new FlowQueryError(`${name} must be a port number 1..65535, not ${String(value)}`);
  return value;
}

/**
 * The packet of `flow` (TCP with `tcpFlags`, default ACK; UDP with no payload), TTL 64.
 * Throws FlowQueryError when the flow is not a valid TCP/UDP 5-tuple of one address family.
 */
export function buildFlowPacket(flow: FlowQuery, tcpFlags: number = TcpFlag.ack): Uint8Array {
  const protocol = flow.protocol.toLowerCase();
  if (protocol !== "tcp" && protocol !== "udp")
    throw new FlowQueryError(`protocol must be tcp or udp, not "${flow.protocol}"`);
  const src = parseIp(flow.src);
  if (!src) throw new FlowQueryError(`source "${flow.src}" is not an IP address`);
  const dst = parseIp(flow.dst);
  if (!dst) throw new FlowQueryError(`destination "${flow.dst}" is not an IP address`);
  if (src.length !== dst.length)
    throw new FlowQueryError(
      `source ${flow.src} and destination ${flow.dst} are not of one address family`,
    );
  const sport = port("source port", flow.sport);
  const dport = port("destination port", flow.dport);

  const proto = protocol === "tcp" ? IpProto.tcp : IpProto.udp;
  const l4Len = proto === IpProto.tcp ? TCP_HEADER_LEN : UDP_HEADER_LEN;
  const v6 = src.length === 16;
  const ipLen = v6 ? IPV6_HEADER_LEN : IPV4_HEADER_LEN;
  const b = new Uint8Array(ipLen + l4Len);
  let srcOff: number;
  let dstOff: number;
  if (v6) {
    b[0] = 0x60;
    b[4] = l4Len >>> 8;
    b[5] = l4Len & 0xff;
    b[6] = proto;
    b[7] = 64; // hop limit
    srcOff = 8;
    dstOff = 24;
  } else {
    const total = ipLen + l4Len;
    b[0] = 0x45;
    b[2] = total >>> 8;
    b[3] = total & 0xff;
    b[6] = 0x40; // DF
    b[8] = 64; // TTL
    b[9] = proto;
    srcOff = 12;
    dstOff = 16;
  }
  b.set(src, srcOff);
  b.set(dst, dstOff);
  if (!v6) {
    const c = foldComplement(sum16(b, 0, IPV4_HEADER_LEN, 0));
    b[10] = c >>> 8;
    b[11] = c & 0xff;
  }
  const l4 = ipLen;
  b[l4] = sport >>> 8;
  b[l4 + 1] = sport & 0xff;
  b[l4 + 2] = dport >>> 8;
  b[l4 + 3] = dport & 0xff;
  let csumAt: number;
  if (proto === IpProto.tcp) {
    b[l4 + 12] = (TCP_HEADER_LEN / 4) << 4; // data offset
    b[l4 + 13] = tcpFlags & 0xff;
    b[l4 + 14] = 0xff; // window
    b[l4 + 15] = 0xff;
    csumAt = l4 + 16;
  } else {
    b[l4 + 4] = l4Len >>> 8;
    b[l4 + 5] = l4Len & 0xff;
    csumAt = l4 + 6;
  }
  let c = foldComplement(
    sum16(b, l4, l4Len, pseudoHeaderSum(b, srcOff, dstOff, src.length, proto, l4Len)),
  );
  if (proto === IpProto.udp && c === 0) c = 0xffff; // RFC 768: 0 means "no checksum"
  b[csumAt] = c >>> 8;
  b[csumAt + 1] = c & 0xff;
  return b;
}
