// Protocol numbers and field values vipmux reads, named as in the IANA registries.

export const EtherType = { ipv4: 0x0800, ipv6: 0x86dd } as const;

/** IP protocol / IPv6 Next Header numbers (IANA "Assigned Internet Protocol Numbers"). */
export const IpProto = {
  hopByHop: 0,
  icmp: 1,
  tcp: 6,
  udp: 17,
  ipv6Route: 43,
  ipv6Frag: 44,
  esp: 50,
  ah: 51,
  icmpv6: 58,
  ipv6NoNext: 59,
  ipv6Opts: 60,
  mobility: 135,
} as const;

export const TcpFlag = { fin: 0x01, syn: 0x02, rst: 0x04, psh: 0x08, ack: 0x10 } as const;

/** ICMP (RFC 792) types the forwarder distinguishes. */
export const IcmpType = {
  echoReply: 0,
  destUnreachable: 3,
  sourceQuench: 4,
  redirect: 5,
  echoRequest: 8,
  timeExceeded: 11,
  parameterProblem: 12,
} as const;
/** Code of Destination Unreachable meaning "fragmentation needed and DF set" (RFC 1191). */
export const ICMP_FRAG_NEEDED = 4;

/** ICMPv6 (RFC 4443) types the forwarder distinguishes. */
export const Icmpv6Type = {
  destUnreachable: 1,
  packetTooBig: 2,
  timeExceeded: 3,
  parameterProblem: 4,
  echoRequest: 128,
  echoReply: 129,
} as const;

/** IANA-assigned VXLAN UDP port (RFC 7348 §5). */
export const VXLAN_PORT = 4789;

export const IPV4_HEADER_LEN = 20;
export const IPV6_HEADER_LEN = 40;
export const UDP_HEADER_LEN = 8;
export const VXLAN_HEADER_LEN = 8;
export const ETHERNET_HEADER_LEN = 14;
