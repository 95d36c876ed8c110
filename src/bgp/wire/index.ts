// Public API of the BGP wire codec: pure functions and types, no I/O. Bytes in give typed
// values or typed errors, never exceptions: a decoder returns the project's `Result`
// (src/util/result.ts) whose error is a SessionReset carrying the exact NOTIFICATION, and
// a decoded UPDATE lists its per-attribute RFC 7606 issues. Values in give bytes. Module map:
//   framer.ts        stream reassembly and RFC 4271 §6.1 header checks
//   message.ts       decodeFrame / decodeMessage / encodeMessage over every message type
//   open.ts          OPEN, RFC 9072 extended parameters, negotiate() -> codec contexts
//   capabilities.ts  RFC 5492 capabilities (unknown ones kept)
//   update.ts        UPDATE decode (RFC 7606) and encode, End-of-RIB, routeChanges()
//   attributes.ts    the attribute table; attribute-codecs.ts its entries,
//                    attribute-types.ts the types both use
//   as-path.ts       AS_PATH segments and RFC 6793 AS4_PATH reconciliation
//   mp.ts            MP_REACH_NLRI / MP_UNREACH_NLRI (RFC 4760, RFC 2545, RFC 8950)
//   nlri.ts          prefix encoding, add-path (RFC 7911)
//   pack.ts          fewest UPDATEs for a set of prefixes sharing attributes
//   notification.ts  NOTIFICATION, RFC 9003 shutdown communication
//   route-refresh.ts ROUTE-REFRESH with RFC 7313 BoRR / EoRR
//   prefix.ts        compact prefix lists and text helpers

export type { AsPath, AsPathSegment } from "./as-path.ts";
export { asPathLength, formatAsPath, reconcileAs4Path } from "./as-path.ts";
export type {
  Aggregator,
  AttrDescriptor,
  LargeCommunity,
  PathAttributes,
  RawAttribute,
} from "./attributes.ts";
export { ATTRIBUTES, attributeName, formatAttributes } from "./attributes.ts";
export { ByteWriter } from "./buffer.ts";
export type { AfiSafi, Capability } from "./capabilities.ts";
export { decodeCapability, encodeCapability, formatCapability } from "./capabilities.ts";
export * from "./constants.ts";
export type { CodecContext } from "./context.ts";
export { contextWith, defaultContext } from "./context.ts";
export type { Frame, FrameResult } from "./framer.ts";
export { checkHeader, Framer } from "./framer.ts";
export type { DecodeResult, Message, OutgoingMessage } from "./message.ts";
export { decodeFrame, decodeMessage, encodeMessage, KEEPALIVE } from "./message.ts";
export type { MpReach, MpUnreach } from "./mp.ts";
export { decodeNlri, nlriSize } from "./nlri.ts";
export type { Notification } from "./notification.ts";
export {
  decodeNotification,
  encodeNotification,
  formatNotification,
  MAX_SHUTDOWN_COMMUNICATION,
} from "./notification.ts";
export type { Negotiated, Open } from "./open.ts";
export { decodeOpen, encodeOpen, makeOpen, negotiate, openAsn } from "./open.ts";
export type { AttributeIssue, SessionReset } from "./outcome.ts";
export type { PackedUpdates } from "./pack.ts";
export { packAnnouncements, packWithdrawals } from "./pack.ts";
export type {
  Ipv4Prefix,
  Ipv4PrefixList,
  Ipv6Prefix,
  Ipv6PrefixList,
  Prefix,
  PrefixList,
} from "./prefix.ts";
export {
  emptyPrefixList,
  formatIpv4,
  formatIpv6,
  formatPrefix,
  parseIpv4,
  parseIpv6,
  parsePrefix,
  prefixAt,
  prefixesToStrings,
  prefixListFromStrings,
  prefixListOf,
} from "./prefix.ts";
export type { RouteRefresh } from "./route-refresh.ts";
export { decodeRouteRefresh, encodeRouteRefresh } from "./route-refresh.ts";
export type {
  AttrLayoutEntry,
  DecodedUpdate,
  RouteChanges,
  Update,
  UpdateResult,
} from "./update.ts";
export {
  decodeUpdate,
  encodeEndOfRib,
  encodeUpdate,
  routeChanges,
  writeAttributes,
} from "./update.ts";
