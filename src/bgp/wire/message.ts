// One entry point per direction: a framed message (or raw bytes) to a typed message, and
// back. Decoding never throws on peer bytes; errors carry the NOTIFICATION to send.

import { err, ok, type Result } from "../../util/result.ts";
import { ByteWriter } from "./buffer.ts";
import { ErrorCode, HEADER_LENGTH, HeaderSubcode, MessageType } from "./constants.ts";
import type { CodecContext } from "./context.ts";
import { checkHeader, type Frame } from "./framer.ts";
import { beginMessage, endMessage } from "./header.ts";
import { decodeNotification, encodeNotification, type Notification } from "./notification.ts";
import { decodeOpen, encodeOpen, type Open } from "./open.ts";
import { type SessionReset, sessionReset } from "./outcome.ts";
import { decodeRouteRefresh, encodeRouteRefresh, type RouteRefresh } from "./route-refresh.ts";
import { type DecodedUpdate, decodeUpdate, encodeUpdate, type Update } from "./update.ts";

export type Message =
  | ({ readonly type: "open" } & Open)
  | ({ readonly type: "update" } & DecodedUpdate)
  | ({ readonly type: "notification" } & Notification)
  | { readonly type: "keepalive" }
  | ({ readonly type: "route-refresh" } & RouteRefresh);

export type OutgoingMessage =
  | ({ readonly type: "open" } & Open)
  | ({ readonly type: "update" } & Update)
  | ({ readonly type: "notification" } & {
      code: number;
      subcode: number;
      data?: Uint8Array;
      communication?: string;
    })
  | { readonly type: "keepalive" }
  | ({ readonly type: "route-refresh" } & RouteRefresh);

export type DecodeResult = Result<Message, SessionReset>;

/** Decodes a message whose header the framer already checked. */
export function decodeFrame(frame: Frame, ctx: CodecContext): DecodeResult {
  switch (frame.type) {
    case MessageType.Open: {
      const r = decodeOpen(frame.body);
      return r.ok ? ok({ type: "open", ...r.value }) : r;
    }
    case MessageType.Update: {
      const r = decodeUpdate(frame.body, ctx);
      return r.ok ? ok({ type: "update", ...r.value }) : r;
    }
    case MessageType.Notification:
      return ok({ type: "notification", ...decodeNotification(frame.body) });
    case MessageType.Keepalive:
      return ok(KEEPALIVE_MESSAGE);
    case MessageType.RouteRefresh: {
      const r = decodeRouteRefresh(frame.body, frame.message);
      return r.ok ? ok({ type: "route-refresh", ...r.value }) : r;
    }
    default:
      // Only reachable with a hand-made frame: the framer already rejects unknown types.
      return err(
        sessionReset(
          ErrorCode.MessageHeader,
          HeaderSubcode.BadMessageType,
          `unknown message type ${frame.type}`,
          Uint8Array.of(frame.type & 0xff),
        ),
      );
  }
}

const KEEPALIVE_MESSAGE: Message = { type: "keepalive" };

/** Decodes one complete message (header included), checking the header first. */
export function decodeMessage(bytes: Uint8Array, ctx: CodecContext): DecodeResult {
  if (bytes.length < HEADER_LENGTH) {
    return err(
      sessionReset(
        ErrorCode.MessageHeader,
        HeaderSubcode.BadMessageLength,
        `only ${bytes.length} octets, shorter than the header`,
        Uint8Array.of(0, bytes.length),
      ),
    );
  }
  const error = checkHeader(bytes, 0, ctx.maxMessageLength);
  if (error) return err(error);
  const length = (bytes[16]! << 8) | bytes[17]!;
  if (length !== bytes.length) {
    return err(
      sessionReset(
        ErrorCode.MessageHeader,
        HeaderSubcode.BadMessageLength,
        `length field ${length} but ${bytes.length} octets given`,
        bytes.slice(16, 18),
      ),
    );
  }
  const message = bytes.subarray(0, length);
  return decodeFrame({ type: bytes[18]!, message, body: message.subarray(HEADER_LENGTH) }, ctx);
}

/** The 19-octet KEEPALIVE (RFC 4271 §4.4); shared, do not modify. */
export const KEEPALIVE: Uint8Array = (() => {
  const w = new ByteWriter(19);
  const start = beginMessage(w, MessageType.Keepalive);
  endMessage(w, start);
  return w.finish();
})();

export function encodeMessage(m: OutgoingMessage, ctx: CodecContext): Uint8Array {
  switch (m.type) {
    case "open":
      return encodeOpen(m);
    case "update":
      return encodeUpdate(m, ctx);
    case "notification":
      return encodeNotification(m);
    case "keepalive":
      return KEEPALIVE.slice();
    case "route-refresh":
      return encodeRouteRefresh(m);
  }
}
