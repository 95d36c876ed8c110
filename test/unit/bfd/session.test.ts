// The BFD session core, driven by events and a simulated clock: two sessions wired through
// the real codec, with RFC 5880 rules checked on every packet.
import { describe, expect, it } from "vitest";
import {
  BfdDiag,
  BfdState,
  type ControlPacket,
  controlPacket,
  decodeControl,
  encodeControl,
} from "../../../src/bfd/packet.ts";
import {
  detectionTimeUs,
  newSession,
  nextWakeMs,
  type SessionAction,
  type SessionConfig,
  type SessionEvent,
  type SessionState,
  step,
  txIntervalUs,
} from "../../../src/bfd/session.ts";

const fast: SessionConfig = { intervalMs: 100, multiplier: 3, passive: false };

interface Side {
  s: SessionState;
  sent: { at: number; p: ControlPacket }[];
  states: { at: number; to: BfdState; diag: number }[];
  polls: number;
}

// Two sessions joined by a link with `delayMs` latency; `cut` drops everything.
class Pair {
  now = 0;
  a: Side;
  b: Side;
  cut = false;
  private inflight: { at: number; to: "a" | "b"; bytes: Uint8Array }[] = [];
  readonly delayMs: number;
  constructor(ca: SessionConfig, cb: SessionConfig, delayMs = 1) {
    this.delayMs = delayMs;
    this.a = { s: newSession(ca, 0x1111), sent: [], states: [], polls: 0 };
    this.b = { s: newSession(cb, 0x2222), sent: [], states: [], polls: 0 };
  }
  side(n: "a" | "b") {
    return n === "a" ? this.a : this.b;
  }
  apply(n: "a" | "b", ev: SessionEvent) {
    const side = this.side(n);
    const r = step(side.s, ev, this.now);
    side.s = r.state;
    this.record(n, r.actions);
  }
  private record(n: "a" | "b", actions: SessionAction[]) {
    const side = this.side(n);
    for (const a of actions) {
      if (a.type === "send") {
        expect(a.packet.poll && a.packet.final).toBe(false);
        side.sent.push({ at: this.now, p: a.packet });
        if (!this.cut)
          this.inflight.push({
            at: this.now + this.delayMs,
            to: n === "a" ? "b" : "a",
            bytes: encodeControl(a.packet),
          });
      } else if (a.type === "state") side.states.push({ at: this.now, to: a.to, diag: a.diag });
      else side.polls++;
    }
  }
  run(untilMs: number) {
    for (let guard = 0; guard < 1_000_000; guard++) {
      const next = Math.min(
        nextWakeMs(this.a.s),
        nextWakeMs(this.b.s),
        ...this.inflight.map((p) => p.at),
      );
      if (next > untilMs) break;
      this.now = Math.max(this.now, next);
      const due = this.inflight.filter((p) => p.at <= this.now);
      this.inflight = this.inflight.filter((p) => p.at > this.now);
      for (const d of due) {
        const r = decodeControl(d.bytes);
        if (r.ok) this.apply(d.to, { type: "rx", packet: r.value });
      }
      for (const n of ["a", "b"] as const)
        if (nextWakeMs(this.side(n).s) <= this.now) this.apply(n, { type: "timer" });
    }
    this.now = untilMs;
  }
}

describe("BFD session core", () => {
  it("starts Down, sends slow (≥ 1 s) Down packets with Your Discriminator 0", () => {
    let s = newSession(fast, 42);
    expect(s.state).toBe(BfdState.Down);
    const r = step(s, { type: "timer" }, 0);
    s = r.state;
    expect(r.actions).toEqual([
      {
        type: "send",
        packet: controlPacket({
          state: BfdState.Down,
          detectMult: 3,
          myDiscriminator: 42,
          yourDiscriminator: 0,
          desiredMinTxUs: 1_000_000,
          requiredMinRxUs: 100_000,
        }),
      },
    ]);
    // Jittered 75-100% of one second.
    expect(s.nextTxAtMs).toBeGreaterThanOrEqual(750);
    expect(s.nextTxAtMs).toBeLessThanOrEqual(1000);
  });

  it("three-way handshake to Up, then Poll/Final moves both to 100 ms × 3", () => {
    const pair = new Pair(fast, fast);
    pair.run(5000);
    expect(pair.a.s.state).toBe(BfdState.Up);
    expect(pair.b.s.state).toBe(BfdState.Up);
    // Down → Init → Up on one side; the other may go Down → Up directly on seeing Init.
    expect([[BfdState.Init, BfdState.Up], [BfdState.Up]]).toContainEqual(
      pair.a.states.map((x) => x.to),
    );
    expect(pair.a.states.at(-1)?.to).toBe(BfdState.Up);
    expect(pair.a.s.remoteDiscr).toBe(0x2222);
    expect(pair.b.s.remoteDiscr).toBe(0x1111);
    // Each side polled once and got its Final: timers are the fast ones, on both ends.
    expect(pair.a.polls).toBe(1);
    expect(pair.b.polls).toBe(1);
    expect(pair.a.s.pollActive).toBe(false);
    expect(txIntervalUs(pair.a.s)).toBe(100_000);
    expect(detectionTimeUs(pair.a.s)).toBe(300_000);
    // Steady state: every gap between packets is 75-100 ms.
    const later = pair.a.sent.filter((x) => x.at > 3000).map((x) => x.at);
    const gaps = later.slice(1).map((t, i) => t - later[i]!);
    expect(gaps.length).toBeGreaterThan(15);
    for (const g of gaps) {
      expect(g).toBeGreaterThanOrEqual(75);
      expect(g).toBeLessThanOrEqual(100);
    }
    // No P bit once the poll completed, no F without a P.
    expect(pair.a.sent.filter((x) => x.at > 3000).every((x) => !x.p.poll && !x.p.final)).toBe(true);
  });

  it("declares Down with diag 1 after the detection time (3 × 100 ms) of silence", () => {
    const pair = new Pair(fast, fast);
    pair.run(5000);
    pair.cut = true;
    pair.run(6000);
    const down = pair.a.states.find((x) => x.at > 5000);
    expect(down?.to).toBe(BfdState.Down);
    expect(down?.diag).toBe(BfdDiag.ControlDetectionTimeExpired);
    // Last packet from b arrived before 5001 ms; detection fires 300 ms after the last one.
    const lastRx = Math.max(...pair.b.sent.filter((x) => x.at <= 5000).map((x) => x.at)) + 1;
    expect(down!.at - lastRx).toBeCloseTo(300, 5);
    // Back to slow TX and the remote discriminator forgotten.
    expect(pair.a.s.desiredMinTxUs).toBe(1_000_000);
    expect(pair.a.s.remoteDiscr).toBe(0);
    // Heal: they come back Up.
    pair.cut = false;
    pair.run(10_000);
    expect(pair.a.s.state).toBe(BfdState.Up);
    expect(pair.b.s.state).toBe(BfdState.Up);
  });

  it("AdminDown: the peer goes Down with diag 3 and does not come back Up", () => {
    const pair = new Pair(fast, fast);
    pair.run(5000);
    pair.apply("a", { type: "admin-down" });
    const sent = pair.a.sent.at(-1)!;
    expect(sent.at).toBe(5000);
    expect(sent.p).toMatchObject({ state: BfdState.AdminDown, diag: BfdDiag.AdministrativelyDown });
    pair.run(8000);
    expect(pair.b.s.state).toBe(BfdState.Down);
    expect(pair.b.states.at(-1)).toMatchObject({
      at: 5001,
      diag: BfdDiag.NeighborSignaledSessionDown,
    });
    expect(pair.a.s.state).toBe(BfdState.AdminDown);
    // a discards what it receives while AdminDown; admin-up brings both back.
    pair.apply("a", { type: "admin-up" });
    pair.run(12_000);
    expect(pair.a.s.state).toBe(BfdState.Up);
    expect(pair.b.s.state).toBe(BfdState.Up);
  });

  it("a passive session stays silent until the peer speaks, then comes Up", () => {
    const pair = new Pair({ ...fast, passive: true }, { ...fast, passive: true });
    pair.run(5000);
    expect(pair.a.sent).toEqual([]);
    expect(pair.b.sent).toEqual([]);
    const active = new Pair({ ...fast, passive: true }, fast);
    active.run(5000);
    expect(active.a.s.state).toBe(BfdState.Up);
    expect(active.a.sent[0]!.at).toBeGreaterThan(0);
  });

  it("negotiates to the slower side: 100 ms vs 300 ms × 5", () => {
    const pair = new Pair(fast, { intervalMs: 300, multiplier: 5, passive: false });
    pair.run(8000);
    expect(pair.a.s.state).toBe(BfdState.Up);
    expect(txIntervalUs(pair.a.s)).toBe(300_000); // b wants RX no faster than 300 ms
    expect(detectionTimeUs(pair.a.s)).toBe(5 * 300_000); // b's multiplier × b's TX
    expect(detectionTimeUs(pair.b.s)).toBe(3 * 300_000); // a's multiplier × max(b RX, a TX)
  });

  it("a timer change while Up runs a Poll Sequence; a slower TX waits for the Final", () => {
    const pair = new Pair(fast, fast);
    pair.run(5000);
    const polls = pair.b.polls;
    pair.apply("a", { type: "set-config", config: { ...fast, intervalMs: 500 } });
    // Polling now, still transmitting at the old rate until b's Final arrives.
    expect(pair.a.s.pollActive).toBe(true);
    expect(pair.a.sent.at(-1)!.p).toMatchObject({ poll: true, desiredMinTxUs: 500_000 });
    expect(txIntervalUs(pair.a.s)).toBe(100_000);
    pair.run(5003);
    expect(pair.a.s.pollActive).toBe(false);
    expect(txIntervalUs(pair.a.s)).toBe(500_000);
    // b answered with F (not a poll of its own) and now expects 3 × 500 ms.
    expect(pair.b.polls).toBe(polls);
    expect(pair.b.sent.some((x) => x.at > 5000 && x.p.final)).toBe(true);
    expect(detectionTimeUs(pair.b.s)).toBe(1_500_000);
    pair.run(10_000);
    expect(pair.a.s.state).toBe(BfdState.Up);
    expect(pair.b.s.state).toBe(BfdState.Up);
  });

  it("answers a Poll at once with a Final, outside the TX schedule", () => {
    const pair = new Pair(fast, fast);
    pair.run(5000);
    const before = pair.b.sent.length;
    const p = controlPacket({
      state: BfdState.Up,
      poll: true,
      myDiscriminator: 0x1111,
      yourDiscriminator: 0x2222,
      desiredMinTxUs: 100_000,
      requiredMinRxUs: 100_000,
    });
    pair.apply("b", { type: "rx", packet: p });
    expect(pair.b.sent.length).toBe(before + 1);
    expect(pair.b.sent.at(-1)!.p).toMatchObject({ final: true, poll: false, state: BfdState.Up });
  });

  it("Down on a remote Down while Up (diag 3); a remote Init in Down goes straight Up", () => {
    let s = newSession(fast, 9);
    const from = (state: BfdState) =>
      controlPacket({
        state,
        myDiscriminator: 5,
        yourDiscriminator: state === BfdState.Down ? 0 : 9,
      });
    s = step(s, { type: "rx", packet: from(BfdState.Init) }, 0).state;
    expect(s.state).toBe(BfdState.Up);
    const r = step(s, { type: "rx", packet: from(BfdState.Down) }, 10);
    expect(r.state.state).toBe(BfdState.Down);
    expect(r.actions[0]).toEqual({
      type: "state",
      from: BfdState.Up,
      to: BfdState.Down,
      diag: 3,
      remoteDiag: 0,
    });
  });

  it("stops periodic TX when the peer's Required Min RX is 0 (§6.8.7)", () => {
    let s = newSession(fast, 9);
    s = step(
      s,
      {
        type: "rx",
        packet: controlPacket({ state: BfdState.Down, myDiscriminator: 5, requiredMinRxUs: 0 }),
      },
      0,
    ).state;
    expect(txIntervalUs(s)).toBe(0);
    expect(s.nextTxAtMs).toBe(Number.POSITIVE_INFINITY);
  });

  it("rejects nonsense timers", () => {
    expect(() => newSession({ intervalMs: 0, multiplier: 3, passive: false }, 1)).toThrow(
      RangeError,
    );
    expect(() => newSession({ intervalMs: 100, multiplier: 0, passive: false }, 1)).toThrow(
      RangeError,
    );
    expect(() => newSession(fast, 0)).toThrow(RangeError);
  });

  it("step never mutates its input state", () => {
    const s = newSession(fast, 9);
    const copy = structuredClone(s);
    step(s, { type: "timer" }, 0);
    step(s, { type: "admin-down" }, 0);
    expect(s).toEqual(copy);
  });
});
