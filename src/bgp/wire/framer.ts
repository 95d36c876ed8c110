// Stream reassembly (node-postgres `parser.ts` shape): feed TCP chunks of any size, pull
// complete messages. Header checks are RFC 4271 §6.1, with the exact NOTIFICATION to send.

import { err, ok, type Result } from "../../util/result.ts";
import {
  ErrorCode,
  HEADER_LENGTH,
  HeaderSubcode,
  MARKER_LENGTH,
  MAX_MESSAGE_LENGTH,
  MessageType,
  MIN_LENGTH_BY_TYPE,
} from "./constants.ts";
import { type SessionReset, sessionReset } from "./outcome.ts";

export interface Frame {
  readonly type: number;
  /** The whole message, header included. */
  readonly message: Uint8Array;
  /** The message after the 19-octet header. */
  readonly body: Uint8Array;
}

export type FrameResult = Result<Frame, SessionReset>;

/**
 * Checks the 19-octet header at `bytes[off]` (the caller guarantees 19 bytes). Returns the
 * NOTIFICATION to send, or null. `maxLength` is 4096, or 65535 after RFC 8654 negotiation.
 */
export function checkHeader(
  bytes: Uint8Array,
  off: number,
  maxLength: number,
): SessionReset | null {
  for (let i = 0; i < MARKER_LENGTH; i++) {
    if (bytes[off + i] !== 0xff) {
      return sessionReset(
        ErrorCode.MessageHeader,
        HeaderSubcode.ConnectionNotSynchronized,
        "marker is not all ones",
      );
    }
  }
  const length = ((bytes[off + 16] ?? 0) << 8) | (bytes[off + 17] ?? 0);
  const type = bytes[off + 18] ?? 0;
  // §6.1: the data of Bad Message Length is the erroneous Length field.
  const badLength = (why: string) =>
    sessionReset(
      ErrorCode.MessageHeader,
      HeaderSubcode.BadMessageLength,
      `bad message length ${length}: ${why}`,
      bytes.slice(off + 16, off + 18),
    );
  if (length < HEADER_LENGTH) return badLength("shorter than the header");
  if (length > maxLength) return badLength(`longer than the maximum ${maxLength}`);
  const min = MIN_LENGTH_BY_TYPE[type];
  if (min === undefined) {
    return sessionReset(
      ErrorCode.MessageHeader,
      HeaderSubcode.BadMessageType,
      `unknown message type ${type}`,
      Uint8Array.of(type),
    );
  }
  if (length < min) return badLength(`type ${type} needs at least ${min}`);
  if (type === MessageType.Keepalive && length !== HEADER_LENGTH) {
    return badLength("KEEPALIVE must be exactly 19 octets");
  }
  return null;
}

/**
 * Reassembles BGP messages from a byte stream. Frames returned by `next()` are views into
 * the framer's buffer: valid until the next `push()`. After a framing error the stream is
 * unusable (the session must close), so `next()` keeps returning that error.
 */
export class Framer {
  /** Raise to 65535 once extended messages are negotiated (RFC 8654 §4). */
  maxMessageLength: number;
  private buf: Uint8Array;
  private start = 0;
  private end = 0;
  private failed: SessionReset | null = null;

  constructor(maxMessageLength = MAX_MESSAGE_LENGTH, initialSize = 8192) {
    this.maxMessageLength = maxMessageLength;
    this.buf = new Uint8Array(initialSize);
  }

  /** Bytes received but not yet returned as frames. */
  get buffered(): number {
    return this.end - this.start;
  }

  push(chunk: Uint8Array): void {
    const pending = this.end - this.start;
    if (this.end + chunk.length > this.buf.length) {
      if (pending + chunk.length <= this.buf.length) {
        // Enough room once the consumed prefix is dropped.
        this.buf.copyWithin(0, this.start, this.end);
      } else {
        let size = this.buf.length * 2;
        while (size < pending + chunk.length) size *= 2;
        const next = new Uint8Array(size);
        next.set(this.buf.subarray(this.start, this.end));
        this.buf = next;
      }
      this.start = 0;
      this.end = pending;
    }
    this.buf.set(chunk, this.end);
    this.end += chunk.length;
  }

  /** The next complete message, a framing error, or undefined when more bytes are needed. */
  next(): FrameResult | undefined {
    if (this.failed) return err(this.failed);
    const avail = this.end - this.start;
    if (avail < HEADER_LENGTH) return undefined;
    const error = checkHeader(this.buf, this.start, this.maxMessageLength);
    if (error) {
      this.failed = error;
      return err(error);
    }
    const length = (this.buf[this.start + 16]! << 8) | this.buf[this.start + 17]!;
    if (avail < length) return undefined;
    const message = this.buf.subarray(this.start, this.start + length);
    this.start += length;
    if (this.start === this.end) this.start = this.end = 0;
    return ok({ type: message[18]!, message, body: message.subarray(HEADER_LENGTH) });
  }
}
