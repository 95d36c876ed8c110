// Public API of the BGP wire codec: pure functions and types, no I/O.

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
