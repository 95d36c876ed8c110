// The MUX's effective health: raw self-health (forwarder heartbeat, ...) with a hold-down
// after recovery, so a MUX that just came back waits before attracting traffic again
// while a failure takes effect at once. Pure: state in, state out, time passed in.

export interface MuxHealthState {
  healthy: boolean;
  /** While unhealthy: when raw health came back (the hold-down runs from here). */
  recoveredAtMs?: number;
}

export const initialMuxHealth = (): MuxHealthState => ({ healthy: true });

export function stepMuxHealth(
  prev: MuxHealthState,
  rawHealthy: boolean,
  nowMs: number,
  holdDownMs: number,
): MuxHealthState {
  if (!rawHealthy) return { healthy: false };
  if (prev.healthy) return prev;
  const recoveredAtMs = prev.recoveredAtMs ?? nowMs;
  if (nowMs - recoveredAtMs < holdDownMs) return { healthy: false, recoveredAtMs };
  return { healthy: true };
}

/** Milliseconds of hold-down left (0 when healthy or still failing). */
export function holdDownLeftMs(s: MuxHealthState, nowMs: number, holdDownMs: number): number {
  return s.healthy || s.recoveredAtMs === undefined
    ? 0
    : Math.max(0, holdDownMs - (nowMs - s.recoveredAtMs));
}
