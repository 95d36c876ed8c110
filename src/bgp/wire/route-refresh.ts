// ROUTE-REFRESH (RFC 2918) with the RFC 7313 subtypes BoRR / EoRR.

import { err, ok, type Result } from "../../util/result.ts";
import { ByteWriter } from "./buffer.ts";
import { ErrorCode, MessageType, RouteRefreshSubcode } from "./constants.ts";
import { beginMessage, endMessage } from "./header.ts";
import { type SessionReset, sessionReset } from "./outcome.ts";

export interface RouteRefresh {
  readonly afi: number;
  readonly safi: number;
  /** 0 normal request, 1 BoRR, 2 EoRR; other values are to be ignored (RFC 7313 §5). */
  readonly subtype: number;
}

/** Decodes the 4-octet body; `message` is the whole message for the error data. */
export function decodeRouteRefresh(
  body: Uint8Array,
  message: Uint8Array,
): Result<RouteRefresh, SessionReset> {
  // RFC 7313 §5: a length other than 23 (without ORF) is an error whose data is the message.
  if (body.length !== 4) {
    return err(
      sessionReset(
        ErrorCode.RouteRefresh,
        RouteRefreshSubcode.InvalidMessageLength,
        `ROUTE-REFRESH length ${body.length + 19}, expected 23`,
        message.slice(),
      ),
    );
  }
  return ok({ afi: (body[0]! << 8) | body[1]!, safi: body[3]!, subtype: body[2]! });
}

export function encodeRouteRefresh(r: RouteRefresh): Uint8Array {
  const w = new ByteWriter(23);
  const start = beginMessage(w, MessageType.RouteRefresh);
  w.u16(r.afi);
  w.u8(r.subtype);
  w.u8(r.safi);
  endMessage(w, start);
  return w.finish();
}
