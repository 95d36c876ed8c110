import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  ConnectionTable,
  DEFAULT_TIMEOUTS,
  FlowKind,
  FlowState,
  InsertFailure,
} from "../../../src/lb/conn-table.ts";
import { FLOW_KEY_WORDS } from "../../../src/lb/flow-hash.ts";
import { hashBytes } from "../../../src/lb/hash.ts";

/** A flow key for flow number `n` (IPv4 5-tuple shape) and its hash. */
function keyOf(n: number, key = new Uint32Array(FLOW_KEY_WORDS)): Uint32Array {
  key.fill(0);
  key[0] = (0x0a000000 + n) >>> 0;
  key[4] = 0x14141464;
  key[8] = (((n * 7919) & 0xffff) << 16) | 80;
  key[9] = 6;
  return key;
}
function hashOf(key: Uint32Array): number {
  return hashBytes(new Uint8Array(key.buffer, key.byteOffset, key.byteLength), 1) & 0x3fffffff;
}

const SYN = 0x02;
const ACK = 0x10;
const FIN = 0x01;

describe("connection table", () => {
  it("finds what it stored and forgets it after the idle timeout", () => {
    const t = new ConnectionTable({ capacity: 100 });
    const k = keyOf(1);
    const h = hashOf(k);
    expect(t.find(h, k, 0)).toBe(-1);
    const slot = t.insert(h, k, 42, FlowKind.tcp, 1000);
    expect(slot).toBeGreaterThanOrEqual(0);
    expect(t.find(h, k, 1000)).toBe(slot);
    expect(t.backendAt(slot)).toBe(42);
    expect(t.stateAt(slot)).toBe(FlowState.untrusted);
    expect(t.find(h, k, 1000 + DEFAULT_TIMEOUTS.untrustedMs - 1)).toBe(slot);
    expect(t.find(h, k, 1000 + DEFAULT_TIMEOUTS.untrustedMs)).toBe(-1);
    expect(t.size).toBe(0);
    expect(t.expired).toBe(1);
  });

  it("promotes a TCP flow on the handshake ACK, not on a retransmitted SYN", () => {
    const t = new ConnectionTable({ capacity: 100 });
    const k = keyOf(2);
    const h = hashOf(k);
    const s = t.insert(h, k, 1, FlowKind.tcp, 0);
    t.touch(s, 10, SYN);
    expect(t.stateAt(s)).toBe(FlowState.untrusted);
    expect(t.untrustedCount).toBe(1);
    t.touch(s, 20, ACK);
    expect(t.stateAt(s)).toBe(FlowState.established);
    expect(t.untrustedCount).toBe(0);
    expect(t.find(h, k, 20 + DEFAULT_TIMEOUTS.tcpEstablishedMs - 1)).toBe(s);
    t.touch(s, 30, FIN | ACK);
    expect(t.stateAt(s)).toBe(FlowState.closing);
    expect(t.find(h, k, 30 + DEFAULT_TIMEOUTS.tcpClosingMs)).toBe(-1);
  });

  it("promotes a TCP flow only on an ACK without SYN: a SYN-ACK or a flagless segment proves nothing", () => {
    const t = new ConnectionTable({ capacity: 100 });
    const k = keyOf(3);
    const s = t.insert(hashOf(k), k, 1, FlowKind.tcp, 0);
    t.touch(s, 10, SYN | ACK);
    expect(t.stateAt(s)).toBe(FlowState.untrusted);
    t.touch(s, 20, 0);
    expect(t.stateAt(s)).toBe(FlowState.untrusted);
    t.touch(s, 30, ACK | 0x08);
    expect(t.stateAt(s)).toBe(FlowState.established);
  });

  it("promotes a UDP flow on its second packet", () => {
    const t = new ConnectionTable({ capacity: 10 });
    const k = keyOf(3);
    const s = t.insert(hashOf(k), k, 1, FlowKind.udp, 0);
    t.touch(s, 5, 0);
    expect(t.stateAt(s)).toBe(FlowState.established);
    expect(t.find(hashOf(k), k, 5 + DEFAULT_TIMEOUTS.udpMs - 1)).toBe(s);
  });

  it("handles deadlines across uint32 wrap-around of the clock", () => {
    const t = new ConnectionTable({ capacity: 10 });
    const k = keyOf(4);
    const now = 2 ** 32 - 1000;
    const s = t.insert(hashOf(k), k, 1, FlowKind.udp, now);
    expect(t.find(hashOf(k), k, now + 4000)).toBe(s);
    expect(t.find(hashOf(k), k, now + DEFAULT_TIMEOUTS.untrustedMs)).toBe(-1);
  });

  it("refuses inserts beyond capacity and beyond the untrusted quota", () => {
    const t = new ConnectionTable({ capacity: 10, untrustedQuota: 4 });
    const k = new Uint32Array(FLOW_KEY_WORDS);
    for (let i = 0; i < 4; i++)
      expect(t.insert(hashOf(keyOf(i, k)), k, 1, FlowKind.tcp, 0)).toBeGreaterThanOrEqual(0);
    expect(t.insert(hashOf(keyOf(4, k)), k, 1, FlowKind.tcp, 0)).toBe(InsertFailure.untrustedQuota);
    // Promote them; more untrusted fit again, until the table itself is full.
    for (let i = 0; i < 4; i++) t.touch(t.find(hashOf(keyOf(i, k)), k, 1), 1, ACK);
    for (let i = 4; i < 8; i++)
      t.touch(t.insert(hashOf(keyOf(i, k)), k, 1, FlowKind.tcp, 1), 1, ACK);
    for (let i = 8; i < 10; i++)
      expect(t.insert(hashOf(keyOf(i, k)), k, 1, FlowKind.tcp, 1)).toBeGreaterThanOrEqual(0);
    expect(t.insert(hashOf(keyOf(10, k)), k, 1, FlowKind.tcp, 1)).toBe(InsertFailure.full);
    // Once the untrusted ones expire, a full insert reclaims them by itself.
    expect(
      t.insert(hashOf(keyOf(10, k)), k, 1, FlowKind.tcp, 1 + DEFAULT_TIMEOUTS.untrustedMs),
    ).toBeGreaterThanOrEqual(0);
    expect(t.size).toBe(9);
  });

  it("matches a Map model under random insert / lookup / touch / remove / expire / time", () => {
    const capacity = 64;
    const timeouts = {
      untrustedMs: 50,
      tcpEstablishedMs: 400,
      tcpClosingMs: 30,
      udpMs: 200,
      otherMs: 100,
    };
    type Op =
      | { op: "insert"; flow: number; udp: boolean }
      | { op: "find"; flow: number }
      | { op: "touch"; flow: number; flags: number }
      | { op: "remove"; flow: number }
      | { op: "sweep"; budget: number }
      | { op: "tick"; ms: number };
    const flow = fc.integer({ min: 0, max: 120 });
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ op: fc.constant("insert" as const), flow, udp: fc.boolean() }),
      fc.record({ op: fc.constant("find" as const), flow }),
      fc.record({
        op: fc.constant("touch" as const),
        flow,
        flags: fc.constantFrom(SYN, ACK, FIN | ACK, 0x04),
      }),
      fc.record({ op: fc.constant("remove" as const), flow }),
      fc.record({ op: fc.constant("sweep" as const), budget: fc.integer({ min: 1, max: 100 }) }),
      fc.record({ op: fc.constant("tick" as const), ms: fc.integer({ min: 0, max: 120 }) }),
    );
    fc.assert(
      fc.property(
        fc.array(op, { maxLength: 400 }),
        fc.integer({ min: 0, max: 64 }),
        (ops, quota) => {
          const t = new ConnectionTable({ capacity, untrustedQuota: quota, timeouts });
          // Model: flow -> { backend, udp, state, deadline }.
          const model = new Map<
            number,
            { backend: number; udp: boolean; state: number; deadline: number }
          >();
          let now = 0;
          const k = new Uint32Array(FLOW_KEY_WORDS);
          const timeoutOf = (udp: boolean, state: number) =>
            state === FlowState.untrusted
              ? timeouts.untrustedMs
              : udp
                ? timeouts.udpMs
                : state === FlowState.closing
                  ? timeouts.tcpClosingMs
                  : timeouts.tcpEstablishedMs;
          const live = (f: number) => {
            const m = model.get(f);
            if (m && m.deadline <= now) model.delete(f);
            return model.get(f);
          };
          for (const o of ops) {
            if (o.op === "tick") {
              now += o.ms;
              continue;
            }
            if (o.op === "sweep") {
              t.expire(now, o.budget);
              continue;
            }
            keyOf(o.flow, k);
            const h = hashOf(k);
            const m = live(o.flow);
            const slot = t.find(h, k, now);
            expect(slot >= 0).toBe(m !== undefined);
            if (o.op === "find" && m) expect(t.backendAt(slot)).toBe(m.backend);
            if (o.op === "insert" && !m) {
              for (const f of [...model.keys()]) live(f);
              const untrusted = [...model.values()].filter(
                (x) => x.state === FlowState.untrusted,
              ).length;
              const r = t.insert(h, k, o.flow * 3, o.udp ? FlowKind.udp : FlowKind.tcp, now);
              // The table may only refuse when the model is at a limit counting live flows
              // (it may still hold expired ones it has not swept: then it may refuse too).
              if (r >= 0)
                model.set(o.flow, {
                  backend: o.flow * 3,
                  udp: o.udp,
                  state: FlowState.untrusted,
                  deadline: now + timeouts.untrustedMs,
                });
              else if (r === InsertFailure.untrustedQuota)
                expect(t.untrustedCount).toBeGreaterThanOrEqual(quota);
              else expect(t.size).toBeGreaterThanOrEqual(capacity);
              if (r < 0 && untrusted < quota && model.size < capacity) {
                // Refused only because of not-yet-swept expired entries: they must exist.
                expect(t.size).toBeGreaterThan(model.size);
              }
            }
            if (o.op === "touch" && m) {
              t.touch(slot, now, m.udp ? 0 : o.flags);
              let s = m.state;
              if (!m.udp && (o.flags & 0x05) !== 0) s = FlowState.closing;
              else if (s === FlowState.untrusted && (m.udp || (o.flags & 0x12) === ACK))
                s = FlowState.established;
              else if (s === FlowState.closing && (o.flags & 0x12) === SYN)
                s = FlowState.established;
              m.state = s;
              m.deadline = now + timeoutOf(m.udp, s);
              expect(t.stateAt(slot)).toBe(s);
            }
            if (o.op === "remove" && m) {
              t.remove(slot);
              model.delete(o.flow);
            }
          }
          // Every live model flow is still found with its backend; counts agree after a full sweep.
          for (const [f, m] of model) {
            if (m.deadline <= now) continue;
            keyOf(f, k);
            const s = t.find(hashOf(k), k, now);
            expect(s).toBeGreaterThanOrEqual(0);
            expect(t.backendAt(s)).toBe(m.backend);
          }
          t.expire(now, t.slots * 2);
          const liveFlows = [...model.values()].filter((m) => m.deadline > now);
          expect(t.size).toBe(liveFlows.length);
          expect(t.untrustedCount).toBe(
            liveFlows.filter((m) => m.state === FlowState.untrusted).length,
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it("survives a flood: 1M SYN-only flows do not evict 10k established ones", () => {
    const t = new ConnectionTable(); // default: 1M flows, untrusted quota 250k
    const k = new Uint32Array(FLOW_KEY_WORDS);
    const established = 10_000;
    for (let i = 0; i < established; i++) {
      keyOf(i, k);
      k[9] = 6 | (1 << 9); // service 1: the real clients
      const s = t.insert(hashOf(k), k, i % 97, FlowKind.tcp, 0);
      t.touch(s, 1, ACK);
    }
    let refused = 0;
    for (let i = 0; i < 1_000_000; i++) {
      keyOf(i, k);
      k[9] = 6 | (2 << 9); // service 2: spoofed SYNs
      k[1] = i; // distinct flows
      const h = hashOf(k);
      if (t.find(h, k, 2) < 0 && t.insert(h, k, 0, FlowKind.tcp, 2) < 0) refused++;
    }
    expect(t.untrustedCount).toBe(t.untrustedQuota);
    expect(refused).toBe(1_000_000 - t.untrustedQuota);
    for (let i = 0; i < established; i++) {
      keyOf(i, k);
      k[9] = 6 | (1 << 9);
      const s = t.find(hashOf(k), k, 3);
      expect(s).toBeGreaterThanOrEqual(0);
      expect(t.backendAt(s)).toBe(i % 97);
      expect(t.stateAt(s)).toBe(FlowState.established);
    }
    // After the flood's short timeout, new flows get entries again.
    keyOf(1, k);
    k[9] = 6 | (3 << 9);
    expect(
      t.insert(hashOf(k), k, 5, FlowKind.tcp, 2 + DEFAULT_TIMEOUTS.untrustedMs),
    ).toBeGreaterThanOrEqual(0);
  });
});
