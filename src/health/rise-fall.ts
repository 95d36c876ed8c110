// Rise/fall damping (HAProxy/keepalived semantics): a backend changes state only after
// `rise` consecutive successes or `fall` consecutive failures, so one lost probe does not
// withdraw a VIP and one lucky probe does not bring a broken backend back. Pure.

export interface RiseFallState {
  up: boolean;
  /** Consecutive results contradicting the current state. */
  streak: number;
}

export interface RiseFall {
  rise: number;
  fall: number;
}

/** A new target starts down: it must prove itself `rise` times before taking traffic. */
export const initialRiseFall = (): RiseFallState => ({ up: false, streak: 0 });

/** Applies one probe result; `changed` tells whether the state flipped. */
export function applyResult(
  s: RiseFallState,
  ok: boolean,
  cfg: RiseFall,
): { state: RiseFallState; changed: boolean } {
  if (ok === s.up) return { state: { up: s.up, streak: 0 }, changed: false };
  const streak = s.streak + 1;
  if (streak >= (s.up ? cfg.fall : cfg.rise))
    return { state: { up: ok, streak: 0 }, changed: true };
  return { state: { up: s.up, streak }, changed: false };
}
