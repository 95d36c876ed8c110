// Encoder packing: a set of prefixes sharing attributes becomes the fewest UPDATEs that fit
// the negotiated maximum size (RFC 4271 §4.3 / RFC 8654), IPv6 via MP_REACH / MP_UNREACH
// (RFC 4760). The attributes are encoded once; each message then only copies bytes.

import type { PathAttributes } from "./attributes.ts";
import { ByteWriter } from "./buffer.ts";
import { Afi, AttrCode, AttrFlag, HEADER_LENGTH, MessageType, Safi } from "./constants.ts";
import type { CodecContext } from "./context.ts";
import { beginMessage, endMessage } from "./header.ts";
import { writeNlriEntry } from "./nlri.ts";
import type { PrefixList } from "./prefix.ts";
import { writeAttributes } from "./update.ts";

export interface PackedUpdates {
  /** Complete UPDATE messages; views into one shared buffer (`buffer`). */
  readonly messages: Uint8Array[];
  /** All messages back to back, ready for a single socket write. */
  readonly buffer: Uint8Array;
}

const addPathFor = (ctx: CodecContext, afi: number) =>
  afi === Afi.Ipv4 ? ctx.addPath.ipv4 : ctx.addPath.ipv6;

/**
 * Splits the entries of `list` into groups whose encoded size fits `capacity`. Each group
 * is filled largest-size-first, so every group but the last has less free space than the
 * smallest entry left: with the same-size prefixes of a VIP table (all /32 or all /128)
 * that is exactly ceil(total / capacity) messages, the minimum.
 */
function plan(list: PrefixList, addPath: boolean, capacity: number): Int32Array[] {
  const extra = addPath ? 5 : 1;
  const maxBytes = list.afi === Afi.Ipv4 ? 4 : 16;
  // Bucket entry indices by encoded size (counting sort, no per-prefix objects).
  const counts = new Int32Array(maxBytes + 1);
  for (let i = 0; i < list.count; i++) counts[(list.lens[i]! + 7) >> 3]!++;
  const starts = new Int32Array(maxBytes + 2);
  for (let b = 0; b <= maxBytes; b++) starts[b + 1] = starts[b]! + counts[b]!;
  const order = new Int32Array(list.count);
  const fill = starts.slice(0, maxBytes + 1);
  for (let i = 0; i < list.count; i++) order[fill[(list.lens[i]! + 7) >> 3]!++] = i;
  const next = starts.slice(0, maxBytes + 1); // next unused entry per bucket
  const groups: Int32Array[] = [];
  let left = list.count;
  const scratch = new Int32Array(Math.max(1, Math.min(list.count, capacity)));
  while (left > 0) {
    let room = capacity;
    let n = 0;
    for (let b = maxBytes; b >= 0; b--) {
      const size = b + extra;
      let avail = starts[b + 1]! - next[b]!;
      while (avail > 0 && size <= room) {
        scratch[n++] = order[next[b]!++]!;
        room -= size;
        avail--;
      }
    }
    if (n === 0) throw new RangeError(`no room for a single prefix in ${capacity} octets`);
    groups.push(scratch.slice(0, n));
    left -= n;
  }
  return groups;
}

function finish(w: ByteWriter, starts: number[]): PackedUpdates {
  const buffer = w.finish();
  const messages = starts.map((s, i) => buffer.subarray(s, starts[i + 1] ?? buffer.length));
  return { messages, buffer };
}

/**
 * UPDATEs announcing every prefix of `list` with `attrs`. IPv4 uses the NLRI field and
 * `attrs.nextHop`; IPv6 uses MP_REACH_NLRI with `nextHop6` (16 octets global, or 32
 * global + link-local), and any IPv4 NEXT_HOP in `attrs` is left out (RFC 4760 §3).
 */
export function packAnnouncements(
  list: PrefixList,
  attrs: PathAttributes,
  ctx: CodecContext,
  nextHop6?: Uint8Array,
): PackedUpdates {
  const addPath = addPathFor(ctx, list.afi);
  const common = new ByteWriter(512);
  const { mpReach: _r, mpUnreach: _u, ...rest } = attrs;
  if (list.afi === Afi.Ipv6) {
    if (nextHop6 === undefined || (nextHop6.length !== 16 && nextHop6.length !== 32)) {
      throw new TypeError("IPv6 announcements need a 16- or 32-octet next hop");
    }
    writeAttributes(common, { ...rest, nextHop: undefined }, ctx);
  } else {
    writeAttributes(common, rest, ctx);
  }
  const attrBytes = common.buf.subarray(0, common.pos);
  const fixed = HEADER_LENGTH + 4 + attrBytes.length;
  const w = new ByteWriter(Math.max(4096, list.count * (addPath ? 9 : 5) + 64));
  const starts: number[] = [];
  if (list.count === 0) return finish(w, starts);

  if (list.afi === Afi.Ipv4) {
    for (const group of plan(list, addPath, ctx.maxMessageLength - fixed)) {
      starts.push(w.pos);
      const start = beginMessage(w, MessageType.Update);
      w.u16(0);
      w.u16(attrBytes.length);
      w.bytes(attrBytes);
      w.ensure(group.length * 9);
      for (const i of group) w.pos = writeNlriEntry(w.buf, w.pos, list, i, addPath);
      endMessage(w, start, ctx.maxMessageLength);
    }
    return finish(w, starts);
  }

  const nh = nextHop6!;
  // MP_REACH header is counted at 4 octets (extended length) when planning.
  const capacity = ctx.maxMessageLength - fixed - 4 - (5 + nh.length);
  for (const group of plan(list, addPath, capacity)) {
    starts.push(w.pos);
    const start = beginMessage(w, MessageType.Update);
    w.u16(0);
    const aAt = w.reserve(2);
    let valueLen = 5 + nh.length;
    for (const i of group) valueLen += (addPath ? 5 : 1) + ((list.lens[i]! + 7) >> 3);
    // RFC 7606 §5.1: MP_REACH_NLRI first.
    writeMpHeader(w, AttrCode.MpReachNlri, valueLen);
    w.u16(Afi.Ipv6);
    w.u8(Safi.Unicast);
    w.u8(nh.length);
    w.bytes(nh);
    w.u8(0);
    w.ensure(valueLen);
    for (const i of group) w.pos = writeNlriEntry(w.buf, w.pos, list, i, addPath);
    w.bytes(attrBytes);
    w.patch16(aAt, w.pos - aAt - 2);
    endMessage(w, start, ctx.maxMessageLength);
  }
  return finish(w, starts);
}

function writeMpHeader(w: ByteWriter, code: number, valueLen: number): void {
  if (valueLen > 255) {
    w.u8(AttrFlag.Optional | AttrFlag.ExtendedLength);
    w.u8(code);
    w.u16(valueLen);
  } else {
    w.u8(AttrFlag.Optional);
    w.u8(code);
    w.u8(valueLen);
  }
}

/** UPDATEs withdrawing every prefix of `list` (Withdrawn Routes for IPv4, MP_UNREACH for IPv6). */
export function packWithdrawals(list: PrefixList, ctx: CodecContext): PackedUpdates {
  const addPath = addPathFor(ctx, list.afi);
  const w = new ByteWriter(Math.max(4096, list.count * (addPath ? 9 : 5) + 64));
  const starts: number[] = [];
  if (list.count === 0) return finish(w, starts);
  if (list.afi === Afi.Ipv4) {
    for (const group of plan(list, addPath, ctx.maxMessageLength - HEADER_LENGTH - 4)) {
      starts.push(w.pos);
      const start = beginMessage(w, MessageType.Update);
      const wAt = w.reserve(2);
      w.ensure(group.length * 9);
      for (const i of group) w.pos = writeNlriEntry(w.buf, w.pos, list, i, addPath);
      w.patch16(wAt, w.pos - wAt - 2);
      w.u16(0);
      endMessage(w, start, ctx.maxMessageLength);
    }
    return finish(w, starts);
  }
  for (const group of plan(list, addPath, ctx.maxMessageLength - HEADER_LENGTH - 4 - 4 - 3)) {
    starts.push(w.pos);
    const start = beginMessage(w, MessageType.Update);
    w.u16(0);
    const aAt = w.reserve(2);
    let valueLen = 3;
    for (const i of group) valueLen += (addPath ? 5 : 1) + ((list.lens[i]! + 7) >> 3);
    writeMpHeader(w, AttrCode.MpUnreachNlri, valueLen);
    w.u16(Afi.Ipv6);
    w.u8(Safi.Unicast);
    w.ensure(valueLen);
    for (const i of group) w.pos = writeNlriEntry(w.buf, w.pos, list, i, addPath);
    w.patch16(aAt, w.pos - aAt - 2);
    endMessage(w, start, ctx.maxMessageLength);
  }
  return finish(w, starts);
}
