// BFD Control packet codec (RFC 5880 §4.1), pure: bytes in, a packet or a typed drop reason
// out; a packet in, bytes out. The reception checks of RFC 5880 §6.8.6 that need no session
// state live here too, so every drop has one named reason that the manager counts.

import { err, ok, type Result } from "../util/result.ts";

/** RFC 5880 §4.1 state values. */
export const BfdState = {
  AdminDown: 0,
  Down: 1,
  Init: 2,
  Up: 3,
} as const;
export type BfdState = (typeof BfdState)[keyof typeof BfdState];
export const stateNames = ["AdminDown", "Down", "Init", "Up"] as const;
export type BfdStateName = (typeof stateNames)[number];

/** RFC 5880 §4.1 diagnostic codes. */
export const BfdDiag = {
  None: 0,
  ControlDetectionTimeExpired: 1,
  EchoFunctionFailed: 2,
  NeighborSignaledSessionDown: 3,
  ForwardingPlaneReset: 4,
  PathDown: 5,
  ConcatenatedPathDown: 6,
  AdministrativelyDown: 7,
  ReverseConcatenatedPathDown: 8,
} as const;
export type BfdDiag = (typeof BfdDiag)[keyof typeof BfdDiag];
export const diagNames = [
  "none",
  "control-detection-time-expired",
  "echo-function-failed",
  "neighbor-signaled-session-down",
  "forwarding-plane-reset",
  "path-down",
  "concatenated-path-down",
  "administratively-down",
  "reverse-concatenated-path-down",
] as const;

export function diagName(diag: number): string {
  return diagNames[diag] ?? `diag-${diag}`;
}

export interface ControlPacket {
  version: number;
  diag: number;
  state: BfdState;
  poll: boolean;
  final: boolean;
  controlPlaneIndependent: boolean;
  authPresent: boolean;
  demand: boolean;
  multipoint: boolean;
  detectMult: number;
  myDiscriminator: number;
  yourDiscriminator: number;
  /** Microseconds, as on the wire. */
  desiredMinTxUs: number;
  requiredMinRxUs: number;
  requiredMinEchoRxUs: number;
}

/** Why a received packet was dropped (RFC 5880 §6.8.6, RFC 5881 §5, and the edge's own). */
export const dropReasons = [
  "too-short", // fewer than 24 bytes of payload
  "bad-version", // version != 1
  "bad-length", // Length field < 24 (26 with A), or larger than the payload
  "detect-mult-zero",
  "multipoint", // M bit set
  "my-discriminator-zero",
  "your-discriminator-zero", // zero while the sender's state is Init or Up
  "auth-not-configured", // A bit set: vipmux configures no BFD authentication
  "ttl", // TTL / hop limit not 255 (RFC 5881 §5, GTSM)
  "no-session", // no session for Your Discriminator, or for the source when it is zero
  "admin-down", // the local session is AdminDown: received packets are discarded
] as const;
export type DropReason = (typeof dropReasons)[number];

export const CONTROL_PACKET_LENGTH = 24;

/** Decodes and validates one Control packet (RFC 5880 §6.8.6, the session-independent part). */
export function decodeControl(bytes: Uint8Array): Result<ControlPacket, DropReason> {
  if (bytes.length < CONTROL_PACKET_LENGTH) return err("too-short");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const b0 = view.getUint8(0);
  const b1 = view.getUint8(1);
  const version = b0 >>> 5;
  if (version !== 1) return err("bad-version");
  const authPresent = (b1 & 0x04) !== 0;
  const length = view.getUint8(3);
  // §6.8.6: Length < 24 (or < 26 with A) or larger than the payload: discard.
  if (length < (authPresent ? 26 : 24) || length > bytes.length) return err("bad-length");
  const detectMult = view.getUint8(2);
  if (detectMult === 0) return err("detect-mult-zero");
  const multipoint = (b1 & 0x01) !== 0;
  if (multipoint) return err("multipoint");
  const myDiscriminator = view.getUint32(4);
  if (myDiscriminator === 0) return err("my-discriminator-zero");
  const yourDiscriminator = view.getUint32(8);
  const state = (b1 >>> 6) as BfdState;
  if (yourDiscriminator === 0 && state !== BfdState.Down && state !== BfdState.AdminDown)
    return err("your-discriminator-zero");
  // No authentication is configured on any vipmux session: §6.8.6 says discard.
  if (authPresent) return err("auth-not-configured");
  return ok({
    version,
    diag: b0 & 0x1f,
    state,
    poll: (b1 & 0x20) !== 0,
    final: (b1 & 0x10) !== 0,
    controlPlaneIndependent: (b1 & 0x08) !== 0,
    authPresent,
    demand: (b1 & 0x02) !== 0,
    multipoint,
    detectMult,
    myDiscriminator,
    yourDiscriminator,
    desiredMinTxUs: view.getUint32(12),
    requiredMinRxUs: view.getUint32(16),
    requiredMinEchoRxUs: view.getUint32(20),
  });
}

/** Encodes a Control packet without authentication (24 bytes). */
export function encodeControl(p: ControlPacket, out = new Uint8Array(CONTROL_PACKET_LENGTH)) {
  const view = new DataView(out.buffer, out.byteOffset, CONTROL_PACKET_LENGTH);
  view.setUint8(0, ((p.version & 0x07) << 5) | (p.diag & 0x1f));
  view.setUint8(
    1,
    ((p.state & 0x03) << 6) |
      (p.poll ? 0x20 : 0) |
      (p.final ? 0x10 : 0) |
      (p.controlPlaneIndependent ? 0x08 : 0) |
      (p.authPresent ? 0x04 : 0) |
      (p.demand ? 0x02 : 0) |
      (p.multipoint ? 0x01 : 0),
  );
  view.setUint8(2, p.detectMult);
  view.setUint8(3, CONTROL_PACKET_LENGTH);
  view.setUint32(4, p.myDiscriminator >>> 0);
  view.setUint32(8, p.yourDiscriminator >>> 0);
  view.setUint32(12, p.desiredMinTxUs >>> 0);
  view.setUint32(16, p.requiredMinRxUs >>> 0);
  view.setUint32(20, p.requiredMinEchoRxUs >>> 0);
  return out;
}

/** A packet with the defaults of an RFC 5880 sender (version 1, no flags). */
export function controlPacket(fields: Partial<ControlPacket>): ControlPacket {
  return {
    version: 1,
    diag: 0,
    state: BfdState.Down,
    poll: false,
    final: false,
    controlPlaneIndependent: false,
    authPresent: false,
    demand: false,
    multipoint: false,
    detectMult: 3,
    myDiscriminator: 1,
    yourDiscriminator: 0,
    desiredMinTxUs: 1_000_000,
    requiredMinRxUs: 1_000_000,
    requiredMinEchoRxUs: 0,
    ...fields,
  };
}
