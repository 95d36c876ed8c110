// RFC 7606 §2 error-handling outcomes as values. A decoder returns one of these; it never
// throws on peer bytes.

/** Tear the session down with exactly this NOTIFICATION (RFC 4271 §6, RFC 7606 §2). */
export interface SessionReset {
  readonly action: "session-reset";
  readonly code: number;
  readonly subcode: number;
  readonly data: Uint8Array;
  readonly reason: string;
}

/**
 * A problem with one path attribute that does not end the session: either the routes of
 * the UPDATE are treated as withdrawn, or only the attribute is dropped (RFC 7606 §2).
 */
export interface AttributeIssue {
  readonly action: "treat-as-withdraw" | "attribute-discard";
  /** Attribute type code, or 0 when the problem is not tied to one attribute. */
  readonly attrCode: number;
  readonly reason: string;
}

const EMPTY = new Uint8Array(0);

export const sessionReset = (
  code: number,
  subcode: number,
  reason: string,
  data: Uint8Array = EMPTY,
): SessionReset => ({ action: "session-reset", code, subcode, data, reason });

export const withdraw = (attrCode: number, reason: string): AttributeIssue => ({
  action: "treat-as-withdraw",
  attrCode,
  reason,
});

export const discard = (attrCode: number, reason: string): AttributeIssue => ({
  action: "attribute-discard",
  attrCode,
  reason,
});
