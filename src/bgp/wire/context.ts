// What decoding and encoding need to know about the session (RFC 6793, RFC 8654, RFC 7911).
// Sessions build one per direction after the OPEN exchange (see `negotiate` in open.ts).

import { MAX_MESSAGE_LENGTH } from "./constants.ts";

export interface CodecContext {
  /** 4-octet AS numbers in AS_PATH/AGGREGATOR (RFC 6793 §3: both sides advertised it). */
  readonly as4: boolean;
  /** 4096, or 65535 with extended messages negotiated (RFC 8654). */
  readonly maxMessageLength: number;
  /** Path identifiers present on the wire in this direction, per family (RFC 7911). */
  readonly addPath: { readonly ipv4: boolean; readonly ipv6: boolean };
  /** IPv4 NLRI may carry an IPv6 next hop in MP_REACH (RFC 8950). */
  readonly extendedNextHop: boolean;
  /** Internal peer: LOCAL_PREF is expected and kept (RFC 7606 §7.5 discards it on eBGP). */
  readonly ibgp: boolean;
}

export const defaultContext: CodecContext = {
  as4: true,
  maxMessageLength: MAX_MESSAGE_LENGTH,
  addPath: { ipv4: false, ipv6: false },
  extendedNextHop: false,
  ibgp: false,
};

export const contextWith = (patch: Partial<CodecContext>): CodecContext => ({
  ...defaultContext,
  ...patch,
});
