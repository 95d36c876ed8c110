// Numbers from the IANA BGP registries, named as the RFCs name them. Plain `as const`
// objects (erasableSyntaxOnly forbids `enum`).

/** RFC 4271 §4.1: every message starts with a 16-octet all-ones marker, length, type. */
export const HEADER_LENGTH = 19;
export const MARKER_LENGTH = 16;
/** RFC 4271 §4.1 maximum, and RFC 8654 maximum once extended messages are negotiated. */
export const MAX_MESSAGE_LENGTH = 4096;
export const MAX_EXTENDED_MESSAGE_LENGTH = 65535;

export const MessageType = {
  Open: 1,
  Update: 2,
  Notification: 3,
  Keepalive: 4,
  RouteRefresh: 5,
} as const;
export type MessageTypeCode = (typeof MessageType)[keyof typeof MessageType];

/** RFC 4271 §6.1: minimum total length per type (KEEPALIVE is exact). */
export const MIN_LENGTH_BY_TYPE: Readonly<Record<number, number>> = {
  1: 29,
  2: 23,
  3: 21,
  4: 19,
  5: 23,
};

export const Afi = { Ipv4: 1, Ipv6: 2 } as const;
export type AfiCode = (typeof Afi)[keyof typeof Afi];
export const Safi = { Unicast: 1, Multicast: 2 } as const;

/** RFC 4271 §4.5 and later RFCs: NOTIFICATION error codes. */
export const ErrorCode = {
  MessageHeader: 1,
  Open: 2,
  Update: 3,
  HoldTimerExpired: 4,
  Fsm: 5,
  Cease: 6,
  RouteRefresh: 7, // RFC 7313
  SendHoldTimerExpired: 8, // RFC 9687
} as const;

export const HeaderSubcode = {
  Unspecific: 0,
  ConnectionNotSynchronized: 1,
  BadMessageLength: 2,
  BadMessageType: 3,
} as const;

export const OpenSubcode = {
  Unspecific: 0,
  UnsupportedVersionNumber: 1,
  BadPeerAs: 2,
  BadBgpIdentifier: 3,
  UnsupportedOptionalParameter: 4,
  UnacceptableHoldTime: 6,
  UnsupportedCapability: 7, // RFC 5492
  RoleMismatch: 11, // RFC 9234
} as const;

export const UpdateSubcode = {
  Unspecific: 0,
  MalformedAttributeList: 1,
  UnrecognizedWellKnownAttribute: 2,
  MissingWellKnownAttribute: 3,
  AttributeFlagsError: 4,
  AttributeLengthError: 5,
  InvalidOrigin: 6,
  InvalidNextHop: 8,
  OptionalAttributeError: 9,
  InvalidNetworkField: 10,
  MalformedAsPath: 11,
} as const;

/** RFC 6608. */
export const FsmSubcode = {
  Unspecified: 0,
  UnexpectedInOpenSent: 1,
  UnexpectedInOpenConfirm: 2,
  UnexpectedInEstablished: 3,
} as const;

/** RFC 4486, RFC 8538 (Hard Reset), RFC 9384 (BFD Down). */
export const CeaseSubcode = {
  MaximumPrefixesReached: 1,
  AdministrativeShutdown: 2,
  PeerDeconfigured: 3,
  AdministrativeReset: 4,
  ConnectionRejected: 5,
  OtherConfigurationChange: 6,
  ConnectionCollisionResolution: 7,
  OutOfResources: 8,
  HardReset: 9,
  BfdDown: 10,
} as const;

/** RFC 7313 §5. */
export const RouteRefreshSubcode = { InvalidMessageLength: 1 } as const;

/** RFC 7313 §3: ROUTE-REFRESH message subtypes (the former Reserved octet). */
export const RouteRefreshSubtype = { Normal: 0, BoRR: 1, EoRR: 2 } as const;

/** RFC 5492 and RFC 9072 optional parameter types. */
export const OptParamType = { Capabilities: 2, ExtendedLength: 255 } as const;

export const CapabilityCode = {
  Multiprotocol: 1, // RFC 4760
  RouteRefresh: 2, // RFC 2918
  ExtendedNextHop: 5, // RFC 8950
  ExtendedMessage: 6, // RFC 8654
  GracefulRestart: 64, // RFC 4724
  FourOctetAs: 65, // RFC 6793
  AddPath: 69, // RFC 7911
  EnhancedRouteRefresh: 70, // RFC 7313
  Fqdn: 73, // draft-walton-bgp-hostname-capability
} as const;

/** RFC 4271 §4.3 attribute flag bits. */
export const AttrFlag = {
  Optional: 0x80,
  Transitive: 0x40,
  Partial: 0x20,
  ExtendedLength: 0x10,
} as const;

export const AttrCode = {
  Origin: 1,
  AsPath: 2,
  NextHop: 3,
  Med: 4,
  LocalPref: 5,
  AtomicAggregate: 6,
  Aggregator: 7,
  Communities: 8, // RFC 1997
  OriginatorId: 9, // RFC 4456
  ClusterList: 10, // RFC 4456
  MpReachNlri: 14, // RFC 4760
  MpUnreachNlri: 15, // RFC 4760
  ExtendedCommunities: 16, // RFC 4360
  As4Path: 17, // RFC 6793
  As4Aggregator: 18, // RFC 6793
  LargeCommunities: 32, // RFC 8092
} as const;

export const Origin = { Igp: 0, Egp: 1, Incomplete: 2 } as const;
export type OriginCode = (typeof Origin)[keyof typeof Origin];

/** RFC 4271 §4.3, RFC 5065 §3: AS_PATH segment types. */
export const AsPathSegmentType = {
  AsSet: 1,
  AsSequence: 2,
  ConfedSequence: 3,
  ConfedSet: 4,
} as const;
export type AsPathSegmentTypeCode = (typeof AsPathSegmentType)[keyof typeof AsPathSegmentType];

/** RFC 6793 §9: the 2-octet stand-in for an AS number above 65535. */
export const AS_TRANS = 23456;

/** RFC 8092/1997 well-known communities used by the speaker. */
export const WellKnownCommunity = {
  GracefulShutdown: 0xffff0000, // RFC 8326
  NoExport: 0xffffff01,
  NoAdvertise: 0xffffff02,
  NoExportSubconfed: 0xffffff03,
  NoPeer: 0xffffff04, // RFC 3765
} as const;
