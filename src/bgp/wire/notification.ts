// NOTIFICATION (RFC 4271 §4.5) with the RFC 8203/9003 shutdown communication carried by
// Cease / Administrative Shutdown and Administrative Reset.

import { ByteWriter } from "./buffer.ts";
import {
  CeaseSubcode,
  ErrorCode,
  FsmSubcode,
  HeaderSubcode,
  MessageType,
  OpenSubcode,
  RouteRefreshSubcode,
  UpdateSubcode,
} from "./constants.ts";
import { beginMessage, endMessage } from "./header.ts";

export interface Notification {
  readonly code: number;
  readonly subcode: number;
  readonly data: Uint8Array;
  /** RFC 9003 shutdown communication, when present and valid UTF-8. */
  readonly communication?: string;
  /** Why a shutdown communication could not be read (the NOTIFICATION still stands). */
  readonly communicationError?: string;
}

/** RFC 9003 §2: up to 255 octets of UTF-8. */
export const MAX_SHUTDOWN_COMMUNICATION = 255;

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });
const utf8 = new TextEncoder();

const carriesCommunication = (code: number, subcode: number) =>
  code === ErrorCode.Cease &&
  (subcode === CeaseSubcode.AdministrativeShutdown || subcode === CeaseSubcode.AdministrativeReset);

/**
 * Decodes a NOTIFICATION body. Never fails: a NOTIFICATION is never answered with another
 * (RFC 4271 §6.4), so a bad shutdown communication is reported, not rejected (RFC 9003 §4).
 */
export function decodeNotification(body: Uint8Array): Notification {
  const code = body[0] ?? 0;
  const subcode = body[1] ?? 0;
  const data = body.slice(2);
  if (!carriesCommunication(code, subcode) || data.length === 0) return { code, subcode, data };
  const len = data[0]!;
  if (len === 0) return { code, subcode, data };
  if (1 + len > data.length) {
    return {
      code,
      subcode,
      data,
      communicationError: `shutdown communication length ${len} overruns the data`,
    };
  }
  try {
    const communication = strictUtf8.decode(data.subarray(1, 1 + len));
    return { code, subcode, data, communication };
  } catch {
    return { code, subcode, data, communicationError: "shutdown communication is not valid UTF-8" };
  }
}

/** Truncates to at most `max` octets without splitting a UTF-8 sequence. */
export function truncateUtf8(text: string, max: number): Uint8Array {
  const bytes = utf8.encode(text);
  if (bytes.length <= max) return bytes;
  let end = max;
  while (end > 0 && ((bytes[end] ?? 0) & 0xc0) === 0x80) end--;
  return bytes.slice(0, end);
}

/** Encodes a NOTIFICATION; `communication` (Cease 2/4 only) is truncated to 255 octets. */
export function encodeNotification(n: {
  code: number;
  subcode: number;
  data?: Uint8Array;
  communication?: string;
}): Uint8Array {
  let data = n.data ?? new Uint8Array(0);
  if (n.communication !== undefined && carriesCommunication(n.code, n.subcode)) {
    const text = truncateUtf8(n.communication, MAX_SHUTDOWN_COMMUNICATION);
    data = new Uint8Array(1 + text.length);
    data[0] = text.length;
    data.set(text, 1);
  }
  const w = new ByteWriter(21 + data.length);
  const start = beginMessage(w, MessageType.Notification);
  w.u8(n.code);
  w.u8(n.subcode);
  w.bytes(data);
  endMessage(w, start, 4096);
  return w.finish();
}

const CODE_NAMES: Readonly<Record<number, string>> = {
  [ErrorCode.MessageHeader]: "Message Header Error",
  [ErrorCode.Open]: "OPEN Message Error",
  [ErrorCode.Update]: "UPDATE Message Error",
  [ErrorCode.HoldTimerExpired]: "Hold Timer Expired",
  [ErrorCode.Fsm]: "Finite State Machine Error",
  [ErrorCode.Cease]: "Cease",
  [ErrorCode.RouteRefresh]: "ROUTE-REFRESH Message Error",
  [ErrorCode.SendHoldTimerExpired]: "Send Hold Timer Expired",
};

const invert = (o: Record<string, number>, names: Record<string, string>) => {
  const out: Record<number, string> = {};
  for (const [k, v] of Object.entries(o)) out[v] = names[k] ?? k;
  return out;
};

const SUBCODE_NAMES: Readonly<Record<number, Record<number, string>>> = {
  [ErrorCode.MessageHeader]: invert(HeaderSubcode, {
    ConnectionNotSynchronized: "Connection Not Synchronized",
    BadMessageLength: "Bad Message Length",
    BadMessageType: "Bad Message Type",
  }),
  [ErrorCode.Open]: invert(OpenSubcode, {
    UnsupportedVersionNumber: "Unsupported Version Number",
    BadPeerAs: "Bad Peer AS",
    BadBgpIdentifier: "Bad BGP Identifier",
    UnsupportedOptionalParameter: "Unsupported Optional Parameter",
    UnacceptableHoldTime: "Unacceptable Hold Time",
    UnsupportedCapability: "Unsupported Capability",
    RoleMismatch: "Role Mismatch",
  }),
  [ErrorCode.Update]: invert(UpdateSubcode, {
    MalformedAttributeList: "Malformed Attribute List",
    UnrecognizedWellKnownAttribute: "Unrecognized Well-known Attribute",
    MissingWellKnownAttribute: "Missing Well-known Attribute",
    AttributeFlagsError: "Attribute Flags Error",
    AttributeLengthError: "Attribute Length Error",
    InvalidOrigin: "Invalid ORIGIN Attribute",
    InvalidNextHop: "Invalid NEXT_HOP Attribute",
    OptionalAttributeError: "Optional Attribute Error",
    InvalidNetworkField: "Invalid Network Field",
    MalformedAsPath: "Malformed AS_PATH",
  }),
  [ErrorCode.Fsm]: invert(FsmSubcode, {
    UnexpectedInOpenSent: "Receive Unexpected Message in OpenSent State",
    UnexpectedInOpenConfirm: "Receive Unexpected Message in OpenConfirm State",
    UnexpectedInEstablished: "Receive Unexpected Message in Established State",
  }),
  [ErrorCode.Cease]: invert(CeaseSubcode, {
    MaximumPrefixesReached: "Maximum Number of Prefixes Reached",
    AdministrativeShutdown: "Administrative Shutdown",
    PeerDeconfigured: "Peer De-configured",
    AdministrativeReset: "Administrative Reset",
    ConnectionRejected: "Connection Rejected",
    OtherConfigurationChange: "Other Configuration Change",
    ConnectionCollisionResolution: "Connection Collision Resolution",
    OutOfResources: "Out of Resources",
    HardReset: "Hard Reset",
    BfdDown: "BFD Down",
  }),
  [ErrorCode.RouteRefresh]: invert(RouteRefreshSubcode, {
    InvalidMessageLength: "Invalid Message Length",
  }),
};

/** "Cease / Administrative Shutdown: \"maintenance\"" and the like, for logs. */
export function formatNotification(
  n: Pick<Notification, "code" | "subcode" | "communication">,
): string {
  const code = CODE_NAMES[n.code] ?? `error code ${n.code}`;
  const sub =
    SUBCODE_NAMES[n.code]?.[n.subcode] ?? (n.subcode === 0 ? "Unspecific" : `subcode ${n.subcode}`);
  const text = n.communication ? `: ${JSON.stringify(n.communication)}` : "";
  return `${code} / ${sub}${text}`;
}
