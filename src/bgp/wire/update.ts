// UPDATE (RFC 4271 §4.3) decode and encode, with RFC 7606 error handling: every malformed
// case ends as a session reset (exact NOTIFICATION), treat-as-withdraw or attribute-discard.

import { err, ok, type Result } from "../../util/result.ts";
import { type AsPath, asPathLength, reconcileAs4Path } from "./as-path.ts";
import {
  ATTRIBUTES,
  type AttrScratch,
  hasAttribute,
  type PathAttributes,
  type RawAttribute,
} from "./attributes.ts";
import { ByteWriter } from "./buffer.ts";
import type { AfiSafi } from "./capabilities.ts";
import {
  Afi,
  AS_TRANS,
  AttrCode,
  AttrFlag,
  ErrorCode,
  MessageType,
  Safi,
  UpdateSubcode,
} from "./constants.ts";
import type { CodecContext } from "./context.ts";
import { beginMessage, endMessage } from "./header.ts";
import { decodeNlri, writeNlriEntry } from "./nlri.ts";
import {
  type AttributeIssue,
  discard,
  type SessionReset,
  sessionReset,
  withdraw,
} from "./outcome.ts";
import { emptyPrefixList, type Ipv4PrefixList, type PrefixList } from "./prefix.ts";

/** Flags as received, per attribute in wire order: lets a decoded UPDATE re-encode exactly. */
export interface AttrLayoutEntry {
  readonly code: number;
  readonly flags: number;
}

export interface Update {
  /** IPv4 Withdrawn Routes field. */
  readonly withdrawn: Ipv4PrefixList;
  readonly attrs: PathAttributes;
  /** IPv4 NLRI field. */
  readonly nlri: Ipv4PrefixList;
  /** Wire order and flags of the attributes; omit for canonical encoding. */
  readonly layout?: readonly AttrLayoutEntry[];
}

export interface DecodedUpdate extends Update {
  /** RFC 7606 §2: every route announced by this UPDATE must be handled as withdrawn. */
  readonly treatAsWithdraw: boolean;
  /** Attribute-level problems, each with the approach taken and a reason. */
  readonly issues: readonly AttributeIssue[];
  /** Set when this UPDATE is an End-of-RIB marker (RFC 4724 §2). */
  readonly endOfRib?: AfiSafi;
}

export type UpdateResult = Result<DecodedUpdate, SessionReset>;

const updateError = (subcode: number, reason: string, data?: Uint8Array): UpdateResult =>
  err(sessionReset(ErrorCode.Update, subcode, reason, data));

// Duplicate detection without allocating per message: a slot holds the message generation
// that last saw the code.
const seenGen = new Uint32Array(256);
let generation = 0;

/** RFC 4271 §6.3 / RFC 7606 §7.3: a NEXT_HOP that cannot be a host address. */
const martianNextHop = (nh: number): boolean =>
  nh >>> 24 === 0 || nh >>> 24 === 127 || nh >>> 29 === 7; // 0/8, 127/8, 224/3

export function decodeUpdate(body: Uint8Array, ctx: CodecContext): UpdateResult {
  const total = body.length;
  if (total < 4)
    return updateError(UpdateSubcode.MalformedAttributeList, "UPDATE shorter than 4 octets");
  const wlen = (body[0]! << 8) | body[1]!;
  // RFC 7606 §4: if the lengths cannot locate the NLRI, nothing can be trusted.
  if (2 + wlen + 2 > total) {
    return updateError(
      UpdateSubcode.MalformedAttributeList,
      `withdrawn routes length ${wlen} overruns the message`,
    );
  }
  const alen = (body[2 + wlen]! << 8) | body[3 + wlen]!;
  const attrStart = 4 + wlen;
  const attrEnd = attrStart + alen;
  if (attrEnd > total) {
    return updateError(
      UpdateSubcode.MalformedAttributeList,
      `total path attribute length ${alen} overruns the message`,
    );
  }
  // RFC 7606 §5.3: syntactically incorrect NLRI fields reset the session.
  const withdrawn = decodeNlri(body, 2, 2 + wlen, Afi.Ipv4, ctx.addPath.ipv4);
  if (typeof withdrawn === "string")
    return updateError(UpdateSubcode.InvalidNetworkField, `withdrawn routes: ${withdrawn}`);
  const nlri = decodeNlri(body, attrEnd, total, Afi.Ipv4, ctx.addPath.ipv4);
  if (typeof nlri === "string")
    return updateError(UpdateSubcode.InvalidNetworkField, `NLRI: ${nlri}`);

  const st: AttrScratch = { attrs: {}, issues: [] };
  const layout: AttrLayoutEntry[] = [];
  const unknown: RawAttribute[] = [];
  generation = (generation + 1) >>> 0 || 1;
  if (generation === 1) seenGen.fill(0);
  const gen = generation;

  let truncated = false;
  for (let p = attrStart; p < attrEnd; ) {
    const left = attrEnd - p;
    const flags = body[p]!;
    const code = body[p + 1] ?? 0;
    const hlen = flags & AttrFlag.ExtendedLength ? 4 : 3;
    const len = left < hlen ? -1 : hlen === 4 ? (body[p + 2]! << 8) | body[p + 3]! : body[p + 2]!;
    if (len < 0 || hlen + len > left) {
      // RFC 7606 §4: the last attribute overruns the attribute field. Treat-as-withdraw is
      // only safe when no MP attribute can be hiding in the unparsed bytes.
      const mpSeen =
        seenGen[AttrCode.MpReachNlri] === gen || seenGen[AttrCode.MpUnreachNlri] === gen;
      if (!mpSeen) {
        return updateError(
          UpdateSubcode.MalformedAttributeList,
          `attribute ${code} overruns the path attribute field`,
        );
      }
      st.issues.push(withdraw(code, `attribute ${code} overruns the path attribute field`));
      truncated = true;
      break;
    }
    const raw = body.subarray(p, p + hlen + len);
    const v = body.subarray(p + hlen, p + hlen + len);
    p += hlen + len;
    layout.push({ code, flags });
    const desc = ATTRIBUTES[code];
    if (seenGen[code] === gen) {
      // RFC 7606 §3.g: MP attributes twice reset the session; others keep the first.
      if (code === AttrCode.MpReachNlri || code === AttrCode.MpUnreachNlri) {
        return updateError(
          UpdateSubcode.MalformedAttributeList,
          `${desc?.name} appears more than once`,
        );
      }
      st.issues.push(discard(code, `duplicate attribute ${desc?.name ?? code}; the first is kept`));
      continue;
    }
    seenGen[code] = gen;
    if (desc === undefined) {
      // RFC 4271 §6.3 / §5: unknown well-known is fatal; unknown optional transitive is
      // kept with Partial set; unknown optional non-transitive is quietly ignored.
      if (!(flags & AttrFlag.Optional)) {
        return updateError(
          UpdateSubcode.UnrecognizedWellKnownAttribute,
          `unrecognized well-known attribute ${code}`,
          raw.slice(),
        );
      }
      if (flags & AttrFlag.Transitive) {
        // Extended Length is framing (kept in the layout), not a property of the attribute.
        const kept = (flags | AttrFlag.Partial) & ~AttrFlag.ExtendedLength & 0xff;
        unknown.push({ flags: kept, code, value: v.slice() });
      }
      continue;
    }
    let problem: string | SessionReset | null;
    if ((flags & (AttrFlag.Optional | AttrFlag.Transitive)) !== desc.flags) {
      // RFC 7606 §3.c: wrong Optional/Transitive bits make the attribute malformed.
      problem =
        desc.malformed === "session-reset"
          ? sessionReset(
              ErrorCode.Update,
              UpdateSubcode.AttributeFlagsError,
              `${desc.name} flags 0x${flags.toString(16)}`,
              raw.slice(),
            )
          : `${desc.name} flags 0x${flags.toString(16)} conflict with the attribute type`;
    } else {
      problem = desc.decode(v, ctx, st, raw);
    }
    if (problem === null) continue;
    if (typeof problem !== "string") return err(problem);
    if (desc.malformed === "session-reset") {
      return updateError(UpdateSubcode.OptionalAttributeError, problem, raw.slice());
    }
    st.issues.push(
      desc.malformed === "attribute-discard" ? discard(code, problem) : withdraw(code, problem),
    );
  }

  const attrs = st.attrs;
  if (unknown.length > 0) attrs.unknown = unknown;
  if (!ctx.as4) reconcileAs4(st);

  // RFC 7606 §3.d: missing well-known mandatory attributes mean treat-as-withdraw, but only
  // when the UPDATE announces something (NEXT_HOP only for IPv4 NLRI, RFC 4760 §3).
  if (!truncated && (nlri.count > 0 || attrs.mpReach !== undefined)) {
    const required: number[] = [AttrCode.Origin, AttrCode.AsPath];
    if (nlri.count > 0) required.push(AttrCode.NextHop);
    if (ctx.ibgp) required.push(AttrCode.LocalPref);
    for (const code of required) {
      if (seenGen[code] !== gen)
        st.issues.push(withdraw(code, `missing well-known attribute ${ATTRIBUTES[code]!.name}`));
    }
    if (nlri.count > 0 && attrs.nextHop !== undefined && martianNextHop(attrs.nextHop)) {
      st.issues.push(withdraw(AttrCode.NextHop, "NEXT_HOP is not a valid host address"));
    }
  }

  const issues = st.issues;
  const treatAsWithdraw = issues.some((i) => i.action === "treat-as-withdraw");
  const value: DecodedUpdate = {
    withdrawn: withdrawn as Ipv4PrefixList,
    attrs,
    nlri: nlri as Ipv4PrefixList,
    layout,
    treatAsWithdraw,
    issues,
  };
  const eor = endOfRibOf(value, total);
  return ok(eor ? { ...value, endOfRib: eor } : value);
}

/** RFC 6793 §4.2.3: fold AS4_PATH / AS4_AGGREGATOR into the 4-octet view. */
function reconcileAs4(st: AttrScratch): void {
  const a = st.attrs;
  const { as4Path, as4Aggregator } = st;
  if (as4Path === undefined && as4Aggregator === undefined) return;
  if (a.aggregator !== undefined && a.aggregator.asn !== AS_TRANS) {
    st.issues.push(
      discard(AttrCode.As4Path, "AS4_PATH/AS4_AGGREGATOR ignored: AGGREGATOR is not AS_TRANS"),
    );
    return;
  }
  if (as4Aggregator !== undefined) {
    if (a.aggregator !== undefined) a.aggregator = as4Aggregator;
    else
      st.issues.push(discard(AttrCode.As4Aggregator, "AS4_AGGREGATOR without AGGREGATOR ignored"));
  }
  if (as4Path !== undefined && a.asPath !== undefined) {
    if (asPathLength(a.asPath) < asPathLength(as4Path)) {
      st.issues.push(discard(AttrCode.As4Path, "AS4_PATH longer than AS_PATH ignored"));
    } else {
      a.asPath = reconcileAs4Path(a.asPath, as4Path) as AsPath;
    }
  }
}

function endOfRibOf(u: DecodedUpdate, total: number): AfiSafi | undefined {
  // RFC 4724 §2: IPv4 unicast EoR is an UPDATE with no withdrawn routes, attributes or NLRI;
  // for other families it carries only an empty MP_UNREACH_NLRI.
  if (total === 4) return { afi: Afi.Ipv4, safi: Safi.Unicast };
  const mp = u.attrs.mpUnreach;
  if (
    u.withdrawn.count === 0 &&
    u.nlri.count === 0 &&
    u.layout?.length === 1 &&
    mp &&
    mp.withdrawn.count === 0
  ) {
    return { afi: mp.afi, safi: mp.safi };
  }
  return undefined;
}

/** What an UPDATE means for the RIB once RFC 7606 treat-as-withdraw is applied. */
export interface RouteChanges {
  readonly withdrawn: readonly PrefixList[];
  readonly announced: readonly PrefixList[];
  readonly attrs: PathAttributes;
}

export function routeChanges(u: DecodedUpdate): RouteChanges {
  const w: PrefixList[] = [];
  const a: PrefixList[] = [];
  if (u.withdrawn.count > 0) w.push(u.withdrawn);
  if (u.attrs.mpUnreach && u.attrs.mpUnreach.withdrawn.count > 0)
    w.push(u.attrs.mpUnreach.withdrawn);
  const reach: PrefixList[] = [];
  if (u.nlri.count > 0) reach.push(u.nlri);
  if (u.attrs.mpReach && u.attrs.mpReach.nlri.count > 0) reach.push(u.attrs.mpReach.nlri);
  (u.treatAsWithdraw ? w : a).push(...reach);
  return { withdrawn: w, announced: a, attrs: u.attrs };
}

// ---- encoding ----

/** RFC 7606 §5.1: MP_UNREACH/MP_REACH first, then ascending type code (RFC 4271 §5). */
function canonicalOrder(a: PathAttributes, ctx: CodecContext): number[] {
  const codes: number[] = [];
  for (let code = 1; code < 256; code++) {
    if (code === AttrCode.MpReachNlri || code === AttrCode.MpUnreachNlri) continue;
    if (ATTRIBUTES[code] !== undefined && hasAttribute(a, code, ctx)) codes.push(code);
  }
  for (const u of a.unknown ?? [])
    if (ATTRIBUTES[u.code] === undefined && !codes.includes(u.code)) codes.push(u.code);
  codes.sort((x, y) => x - y);
  if (a.mpReach) codes.unshift(AttrCode.MpReachNlri);
  if (a.mpUnreach) codes.unshift(AttrCode.MpUnreachNlri);
  return codes;
}

function attributeOrder(
  a: PathAttributes,
  ctx: CodecContext,
  layout?: readonly AttrLayoutEntry[],
): number[] {
  const canonical = canonicalOrder(a, ctx);
  if (!layout) return canonical;
  const present = new Set(canonical);
  const out: number[] = [];
  for (const e of layout) {
    if (present.delete(e.code)) out.push(e.code);
  }
  for (const code of canonical) if (present.has(code)) out.push(code);
  return out;
}

/** Writes all attributes of `a` (without the Total Path Attribute Length field). */
export function writeAttributes(
  w: ByteWriter,
  a: PathAttributes,
  ctx: CodecContext,
  layout?: readonly AttrLayoutEntry[],
): void {
  for (const code of attributeOrder(a, ctx, layout)) {
    const wire = layout?.find((e) => e.code === code)?.flags;
    const desc = ATTRIBUTES[code];
    if (desc === undefined) {
      for (const u of a.unknown ?? [])
        if (u.code === code) writeOne(w, u.flags, code, wire, (out) => out.bytes(u.value));
      continue;
    }
    let flags = desc.flags;
    // Partial is only meaningful for optional transitive attributes (RFC 4271 §4.3).
    if (wire !== undefined && desc.flags === (AttrFlag.Optional | AttrFlag.Transitive))
      flags |= wire & AttrFlag.Partial;
    writeOne(w, flags, code, wire, (out) => desc.encode(a, ctx, out));
  }
}

function writeOne(
  w: ByteWriter,
  flags: number,
  code: number,
  wireFlags: number | undefined,
  body: (w: ByteWriter) => void,
): void {
  w.ensure(4);
  const at = w.pos;
  w.pos += 4; // flags, code and a 2-octet length; shrunk below when 1 octet suffices
  body(w);
  const len = w.pos - at - 4;
  if (len > 0xffff) throw new RangeError(`attribute ${code} value of ${len} octets`);
  const forceExt = wireFlags !== undefined && (wireFlags & AttrFlag.ExtendedLength) !== 0;
  const f = flags & ~AttrFlag.ExtendedLength & 0xf0;
  if (len > 255 || forceExt) {
    w.buf[at] = f | AttrFlag.ExtendedLength;
    w.buf[at + 1] = code;
    w.patch16(at + 2, len);
  } else {
    w.buf.copyWithin(at + 3, at + 4, w.pos);
    w.pos -= 1;
    w.buf[at] = f;
    w.buf[at + 1] = code;
    w.buf[at + 2] = len;
  }
}

/** Encodes one UPDATE; throws RangeError if it exceeds `ctx.maxMessageLength`. */
export function encodeUpdate(
  u: Update,
  ctx: CodecContext,
  w: ByteWriter = new ByteWriter(4096),
): Uint8Array {
  w.reset();
  const start = beginMessage(w, MessageType.Update);
  const wAt = w.reserve(2);
  for (let i = 0; i < u.withdrawn.count; i++) {
    w.ensure(5 + 4);
    w.pos = writeNlriEntry(w.buf, w.pos, u.withdrawn, i, ctx.addPath.ipv4);
  }
  w.patch16(wAt, w.pos - wAt - 2);
  const aAt = w.reserve(2);
  writeAttributes(w, u.attrs, ctx, u.layout);
  w.patch16(aAt, w.pos - aAt - 2);
  for (let i = 0; i < u.nlri.count; i++) {
    w.ensure(5 + 4);
    w.pos = writeNlriEntry(w.buf, w.pos, u.nlri, i, ctx.addPath.ipv4);
  }
  endMessage(w, start, ctx.maxMessageLength);
  return w.finish();
}

const EMPTY_V4 = emptyPrefixList(1) as Ipv4PrefixList;

/** End-of-RIB for a family (RFC 4724 §2). */
export function encodeEndOfRib(afi: 1 | 2, ctx: CodecContext): Uint8Array {
  if (afi === Afi.Ipv4)
    return encodeUpdate({ withdrawn: EMPTY_V4, attrs: {}, nlri: EMPTY_V4 }, ctx);
  return encodeUpdate(
    {
      withdrawn: EMPTY_V4,
      attrs: { mpUnreach: { afi, safi: Safi.Unicast, withdrawn: emptyPrefixList(afi) } },
      nlri: EMPTY_V4,
    },
    ctx,
  );
}
