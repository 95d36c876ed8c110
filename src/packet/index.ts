// Packet codec: IPv4/IPv6/TCP/UDP/ICMP parsing, checksums, VXLAN encap/decap.
export { formatIp, formatMac, parseIp, parseMac } from "./address.ts";
export { buildFlowPacket, type FlowQuery, FlowQueryError } from "./build.ts";
export { copyBytes } from "./bytes.ts";
export { checksum, foldComplement, pseudoHeaderSum, sum16, updateChecksum16 } from "./checksum.ts";
export * from "./constants.ts";
export {
  isIcmpEcho,
  isIcmpError,
  isPathMtuSignal,
  MAX_IPV6_EXTENSION_HEADERS,
  ParsedPacket,
  ParseStatus,
  parseIpPacket,
} from "./parse.ts";
export {
  encapsulateVxlan,
  parseVxlan,
  VXLAN_OVERHEAD_V4,
  VXLAN_OVERHEAD_V6,
  VxlanEncap,
  VxlanPacket,
  VxlanStatus,
  vxlanSourcePort,
} from "./vxlan.ts";
