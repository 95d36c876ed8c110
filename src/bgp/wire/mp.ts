// MP_REACH_NLRI and MP_UNREACH_NLRI (RFC 4760 §3, §4) for IPv4/IPv6 unicast, with IPv6
// next hops of 16 (global) or 32 (global + link-local, RFC 2545 §3) octets, and IPv6 next
// hops for IPv4 NLRI when RFC 8950 extended next hop is negotiated.

import type { ByteWriter } from "./buffer.ts";
import { Afi, AttrCode, ErrorCode, Safi, UpdateSubcode } from "./constants.ts";
import type { CodecContext } from "./context.ts";
import { decodeNlri, nlriSize, writeNlriEntry } from "./nlri.ts";
import { type SessionReset, sessionReset } from "./outcome.ts";
import type { PrefixList } from "./prefix.ts";

export interface MpReach {
  readonly afi: 1 | 2;
  readonly safi: number;
  /** 4 octets (IPv4), 16 (IPv6 global) or 32 (IPv6 global then link-local). */
  readonly nextHop: Uint8Array;
  readonly nlri: PrefixList;
}

export interface MpUnreach {
  readonly afi: 1 | 2;
  readonly safi: number;
  readonly withdrawn: PrefixList;
}

/** A family we do not decode: the attribute is dropped and reported, its routes unknown. */
export interface UnsupportedFamily {
  readonly unsupported: true;
  readonly afi: number;
  readonly safi: number;
}

// RFC 7606 §7.11/§5.3: an MP attribute we cannot parse hides NLRI, so the session resets;
// the data is the attribute itself as RFC 4271 §6.3 prescribes for Optional Attribute Error.
const mpError = (raw: Uint8Array, reason: string): SessionReset =>
  sessionReset(ErrorCode.Update, UpdateSubcode.OptionalAttributeError, reason, raw.slice());

const addPathFor = (ctx: CodecContext, afi: number) =>
  afi === Afi.Ipv4 ? ctx.addPath.ipv4 : ctx.addPath.ipv6;

export function decodeMpReach(
  v: Uint8Array,
  raw: Uint8Array,
  ctx: CodecContext,
): MpReach | UnsupportedFamily | SessionReset {
  if (v.length < 5) return mpError(raw, `MP_REACH_NLRI length ${v.length} too short`);
  const afi = (v[0]! << 8) | v[1]!;
  const safi = v[2]!;
  const nhLen = v[3]!;
  if (4 + nhLen + 1 > v.length)
    return mpError(raw, `MP_REACH_NLRI next hop length ${nhLen} overruns`);
  if ((afi !== Afi.Ipv4 && afi !== Afi.Ipv6) || safi !== Safi.Unicast) {
    return { unsupported: true, afi, safi };
  }
  const okNh =
    afi === Afi.Ipv6
      ? nhLen === 16 || nhLen === 32
      : nhLen === 4 || (ctx.extendedNextHop && (nhLen === 16 || nhLen === 32));
  if (!okNh) return mpError(raw, `MP_REACH_NLRI next hop length ${nhLen} invalid for AFI ${afi}`);
  const nextHop = v.slice(4, 4 + nhLen);
  // The octet after the next hop is Reserved (formerly SNPA count) and is ignored.
  const nlri = decodeNlri(v, 5 + nhLen, v.length, afi, addPathFor(ctx, afi));
  if (typeof nlri === "string") return mpError(raw, `MP_REACH_NLRI: ${nlri}`);
  return { afi, safi, nextHop, nlri };
}

export function decodeMpUnreach(
  v: Uint8Array,
  raw: Uint8Array,
  ctx: CodecContext,
): MpUnreach | UnsupportedFamily | SessionReset {
  if (v.length < 3) return mpError(raw, `MP_UNREACH_NLRI length ${v.length} too short`);
  const afi = (v[0]! << 8) | v[1]!;
  const safi = v[2]!;
  if ((afi !== Afi.Ipv4 && afi !== Afi.Ipv6) || safi !== Safi.Unicast) {
    return { unsupported: true, afi, safi };
  }
  const withdrawn = decodeNlri(v, 3, v.length, afi, addPathFor(ctx, afi));
  if (typeof withdrawn === "string") return mpError(raw, `MP_UNREACH_NLRI: ${withdrawn}`);
  return { afi, safi, withdrawn };
}

/** Fixed part of MP_REACH_NLRI before the NLRI. */
export const mpReachHeaderSize = (nextHopLength: number): number => 5 + nextHopLength;

export function encodeMpReach(w: ByteWriter, mp: MpReach, ctx: CodecContext): void {
  const addPath = addPathFor(ctx, mp.afi);
  w.ensure(5 + mp.nextHop.length + nlriSize(mp.nlri, addPath));
  w.u16(mp.afi);
  w.u8(mp.safi);
  w.u8(mp.nextHop.length);
  w.bytes(mp.nextHop);
  w.u8(0);
  for (let i = 0; i < mp.nlri.count; i++) w.pos = writeNlriEntry(w.buf, w.pos, mp.nlri, i, addPath);
}

export function encodeMpUnreach(w: ByteWriter, mp: MpUnreach, ctx: CodecContext): void {
  const addPath = addPathFor(ctx, mp.afi);
  w.ensure(3 + nlriSize(mp.withdrawn, addPath));
  w.u16(mp.afi);
  w.u8(mp.safi);
  for (let i = 0; i < mp.withdrawn.count; i++)
    w.pos = writeNlriEntry(w.buf, w.pos, mp.withdrawn, i, addPath);
}

export const MP_ATTR_CODES: readonly number[] = [AttrCode.MpUnreachNlri, AttrCode.MpReachNlri];
