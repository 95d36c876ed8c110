// Writing the RFC 4271 §4.1 header around a message body.

import type { ByteWriter } from "./buffer.ts";

/** Writes marker, a length placeholder and the type; returns the message start offset. */
export function beginMessage(w: ByteWriter, type: number): number {
  const start = w.pos;
  w.ensure(19);
  w.buf.fill(0xff, w.pos, w.pos + 16);
  w.pos += 18;
  w.buf[w.pos++] = type;
  return start;
}

/** Patches the length of the message begun at `start`; returns that length. */
export function endMessage(w: ByteWriter, start: number, maxLength = 65535): number {
  const length = w.pos - start;
  if (length > maxLength) throw new RangeError(`message of ${length} octets exceeds ${maxLength}`);
  w.patch16(start + 16, length);
  return length;
}
