// OPEN (RFC 4271 §4.2) with capabilities (RFC 5492) in optional parameters, including the
// RFC 9072 extended optional-parameters length.

import { err, ok, type Result } from "../../util/result.ts";
import { ByteWriter } from "./buffer.ts";
import {
  type AfiSafi,
  type Capability,
  decodeCapability,
  encodeCapability,
} from "./capabilities.ts";
import {
  Afi,
  AS_TRANS,
  ErrorCode,
  MAX_EXTENDED_MESSAGE_LENGTH,
  MAX_MESSAGE_LENGTH,
  MessageType,
  OpenSubcode,
  OptParamType,
  Safi,
} from "./constants.ts";
import type { CodecContext } from "./context.ts";
import { beginMessage, endMessage } from "./header.ts";
import { type SessionReset, sessionReset } from "./outcome.ts";

export interface Open {
  readonly version: number;
  /** The 2-octet My Autonomous System field (AS_TRANS when the real AS is larger). */
  readonly myAs: number;
  readonly holdTime: number;
  /** BGP Identifier as an unsigned 32-bit integer. */
  readonly bgpId: number;
  readonly capabilities: readonly Capability[];
  /**
   * How capabilities were grouped into optional parameters and whether the RFC 9072 form
   * was used: kept so a decoded OPEN re-encodes byte for byte. Omit to get the default
   * (one parameter, extended form only when needed).
   */
  readonly layout?: { readonly capsPerParam: readonly number[]; readonly extended: boolean };
}

const openError = (subcode: number, reason: string, data?: Uint8Array) =>
  err(sessionReset(ErrorCode.Open, subcode, reason, data));

/** Decodes an OPEN body (after the header). */
export function decodeOpen(body: Uint8Array): Result<Open, SessionReset> {
  if (body.length < 10) return openError(OpenSubcode.Unspecific, "OPEN too short");
  const version = body[0]!;
  // RFC 4271 §6.2: the data is the largest locally supported version.
  if (version !== 4) {
    return openError(
      OpenSubcode.UnsupportedVersionNumber,
      `version ${version}`,
      Uint8Array.of(0, 4),
    );
  }
  const myAs = (body[1]! << 8) | body[2]!;
  const holdTime = (body[3]! << 8) | body[4]!;
  const bgpId = ((body[5]! << 24) | (body[6]! << 16) | (body[7]! << 8) | body[8]!) >>> 0;
  // §6.2: hold time 1 or 2 is unacceptable; RFC 6286 §2.2: identifier must be non-zero.
  if (holdTime === 1 || holdTime === 2) {
    return openError(OpenSubcode.UnacceptableHoldTime, `hold time ${holdTime}`);
  }
  if (bgpId === 0) return openError(OpenSubcode.BadBgpIdentifier, "BGP identifier 0");

  let p = 10;
  let end = 10 + body[9]!;
  let extended = false;
  // RFC 9072 §2: length 255 followed by a non-extended type of 255 selects the long form.
  if (body[9] === 255 && body[10] === OptParamType.ExtendedLength) {
    if (body.length < 13)
      return openError(OpenSubcode.Unspecific, "truncated extended parameters length");
    extended = true;
    p = 13;
    end = 13 + ((body[11]! << 8) | body[12]!);
  }
  if (end !== body.length) {
    return openError(
      OpenSubcode.Unspecific,
      `optional parameters length ${end - p} does not match the message`,
    );
  }
  const capabilities: Capability[] = [];
  const capsPerParam: number[] = [];
  while (p < end) {
    const head = extended ? 3 : 2;
    if (p + head > end) return openError(OpenSubcode.Unspecific, "truncated optional parameter");
    const type = body[p]!;
    const len = extended ? (body[p + 1]! << 8) | body[p + 2]! : body[p + 1]!;
    p += head;
    if (p + len > end) return openError(OpenSubcode.Unspecific, "optional parameter overruns");
    if (type !== OptParamType.Capabilities) {
      return openError(OpenSubcode.UnsupportedOptionalParameter, `optional parameter type ${type}`);
    }
    const paramEnd = p + len;
    let count = 0;
    while (p < paramEnd) {
      if (p + 2 > paramEnd) return openError(OpenSubcode.Unspecific, "truncated capability");
      const code = body[p]!;
      const clen = body[p + 1]!;
      p += 2;
      if (p + clen > paramEnd) {
        return openError(OpenSubcode.Unspecific, `capability ${code} overruns its parameter`);
      }
      const cap = decodeCapability(code, body.subarray(p, p + clen));
      if (typeof cap === "string") return openError(OpenSubcode.Unspecific, cap);
      capabilities.push(cap);
      count++;
      p += clen;
    }
    capsPerParam.push(count);
  }
  return ok({ version, myAs, holdTime, bgpId, capabilities, layout: { capsPerParam, extended } });
}

/** Encodes a complete OPEN message. */
export function encodeOpen(open: Open): Uint8Array {
  // Encode capability groups first: their sizes decide between the short and RFC 9072 forms.
  const groups: Uint8Array[] = [];
  const per = open.layout?.capsPerParam;
  const w = new ByteWriter(256);
  if (per && per.reduce((a, b) => a + b, 0) === open.capabilities.length) {
    let i = 0;
    for (const n of per) {
      w.reset();
      for (let k = 0; k < n; k++) encodeCapability(w, open.capabilities[i++]!);
      groups.push(w.finish());
    }
  } else if (open.capabilities.length > 0) {
    // One parameter holding all capabilities (what FRR and BIRD send), split at 255 octets
    // when the short form is used.
    w.reset();
    let groupStart = 0;
    for (const c of open.capabilities) {
      const before = w.pos;
      encodeCapability(w, c);
      if (w.pos - groupStart > 255 && before > groupStart) {
        groups.push(w.buf.slice(groupStart, before));
        groupStart = before;
      }
    }
    if (w.pos > groupStart) groups.push(w.buf.slice(groupStart, w.pos));
  }
  const shortSize = groups.reduce((a, g) => a + 2 + g.length, 0);
  const extended =
    open.layout?.extended === true || shortSize > 255 || groups.some((g) => g.length > 255);

  const out = new ByteWriter(64 + shortSize + groups.length);
  const start = beginMessage(out, MessageType.Open);
  out.u8(open.version);
  out.u16(open.myAs);
  out.u16(open.holdTime);
  out.u32(open.bgpId);
  if (extended) {
    out.u8(255);
    out.u8(OptParamType.ExtendedLength);
    const lenAt = out.reserve(2);
    for (const g of groups) {
      out.u8(OptParamType.Capabilities);
      out.u16(g.length);
      out.bytes(g);
    }
    out.patch16(lenAt, out.pos - lenAt - 2);
  } else {
    out.u8(shortSize);
    for (const g of groups) {
      out.u8(OptParamType.Capabilities);
      out.u8(g.length);
      out.bytes(g);
    }
  }
  endMessage(out, start, MAX_MESSAGE_LENGTH);
  return out.finish();
}

/** Builds an OPEN for `asn`, putting AS_TRANS in My AS when it needs 4 octets (RFC 6793 §4.1). */
export function makeOpen(options: {
  asn: number;
  holdTime: number;
  bgpId: number;
  capabilities: readonly Capability[];
}): Open {
  return {
    version: 4,
    myAs: options.asn > 0xffff ? AS_TRANS : options.asn,
    holdTime: options.holdTime,
    bgpId: options.bgpId,
    capabilities: options.capabilities,
  };
}

/** The peer's real AS: the 4-octet AS capability when present, else My AS. */
export function openAsn(open: Open): number {
  for (const c of open.capabilities) if (c.kind === "four-octet-as") return c.asn;
  return open.myAs;
}

const has = (open: Open, kind: Capability["kind"]) =>
  open.capabilities.some((c) => c.kind === kind);

function addPathMode(open: Open, afi: number): number {
  for (const c of open.capabilities) {
    if (c.kind !== "add-path") continue;
    for (const f of c.families) if (f.afi === afi && f.safi === Safi.Unicast) return f.sendReceive;
  }
  return 0;
}

export interface Negotiated {
  /** Context for decoding what the peer sends. */
  readonly rx: CodecContext;
  /** Context for encoding what we send. */
  readonly tx: CodecContext;
  readonly holdTime: number;
  readonly routeRefresh: boolean;
  readonly enhancedRouteRefresh: boolean;
  /** AFI/SAFI both sides advertised (RFC 4760 §8: IPv4 unicast when neither sent any). */
  readonly families: readonly AfiSafi[];
}

function familiesOf(open: Open): AfiSafi[] | null {
  const mp = open.capabilities.flatMap((c) =>
    c.kind === "multiprotocol" ? [{ afi: c.afi, safi: c.safi }] : [],
  );
  return mp.length > 0 ? mp : null;
}

/** Derives both codec contexts from the two OPENs (each capability counts only if both sent it). */
export function negotiate(local: Open, remote: Open, ibgp = false): Negotiated {
  const both = (kind: Capability["kind"]) => has(local, kind) && has(remote, kind);
  const as4 = both("four-octet-as");
  // RFC 8654 §3: both must advertise it before either may send more than 4096 octets.
  const maxMessageLength = both("extended-message")
    ? MAX_EXTENDED_MESSAGE_LENGTH
    : MAX_MESSAGE_LENGTH;
  // RFC 7911 §4: we receive path ids if we said receive (1|3) and the peer said send (2|3).
  const rxPath = (afi: number) =>
    (addPathMode(local, afi) & 1) !== 0 && (addPathMode(remote, afi) & 2) !== 0;
  const txPath = (afi: number) =>
    (addPathMode(local, afi) & 2) !== 0 && (addPathMode(remote, afi) & 1) !== 0;
  const enh = (open: Open) =>
    open.capabilities.some(
      (c) =>
        c.kind === "extended-next-hop" &&
        c.entries.some((e) => e.afi === Afi.Ipv4 && e.nextHopAfi === Afi.Ipv6),
    );
  const extendedNextHop = enh(local) && enh(remote);
  const holdTime = Math.min(local.holdTime, remote.holdTime);
  const ours = familiesOf(local) ?? [{ afi: Afi.Ipv4, safi: Safi.Unicast }];
  const theirs = familiesOf(remote) ?? [{ afi: Afi.Ipv4, safi: Safi.Unicast }];
  const families = ours.filter((f) => theirs.some((t) => t.afi === f.afi && t.safi === f.safi));
  return {
    rx: {
      as4,
      maxMessageLength,
      addPath: { ipv4: rxPath(Afi.Ipv4), ipv6: rxPath(Afi.Ipv6) },
      extendedNextHop,
      ibgp,
    },
    tx: {
      as4,
      maxMessageLength,
      addPath: { ipv4: txPath(Afi.Ipv4), ipv6: txPath(Afi.Ipv6) },
      extendedNextHop,
      ibgp,
    },
    holdTime,
    routeRefresh: both("route-refresh"),
    enhancedRouteRefresh: both("enhanced-route-refresh"),
    families,
  };
}
