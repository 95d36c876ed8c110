// RFC 4271 §8.2.2, state by state: scripted events in, state and actions out.
import { describe, expect, it } from "vitest";
import {
  backoffMs,
  checkOpen,
  collisionSurvivor,
  defaultFsmConfig,
  expiredTimers,
  type FsmAction,
  type FsmEvent,
  type FsmState,
  type FsmStateName,
  initialFsmState,
  localOpen,
  nextDeadline,
  step,
} from "../../../src/bgp/fsm.ts";
import type { Open } from "../../../src/bgp/wire/index.ts";
import { decodeCapability, makeOpen } from "../../../src/bgp/wire/index.ts";

const rng = () => 1; // jitter factor 1.0: timers are exact
const config = defaultFsmConfig({
  localAs: 65101,
  peerAs: 65000,
  bgpId: 0xc0000202,
  holdTimeSec: 9,
  connectRetryMs: 5_000,
  capabilities: [
    { kind: "multiprotocol", afi: 1, safi: 1 },
    { kind: "four-octet-as", asn: 65101 },
    { kind: "route-refresh" },
  ],
});
const peerOpen = (patch: Partial<Open> = {}): Open => ({
  ...makeOpen({
    asn: 65000,
    holdTime: 3,
    bgpId: 0xcb007101,
    capabilities: [{ kind: "four-octet-as", asn: 65000 }, { kind: "route-refresh" }],
  }),
  ...patch,
});

/** Drives the FSM into `name` the ordinary way; returns the state at time `t`. */
function reach(name: FsmStateName, t = 0): FsmState {
  let s = initialFsmState();
  const go = (e: FsmEvent) => {
    s = step(config, s, e, t, rng).state;
  };
  if (name === "Idle") return s;
  go({ type: "AutomaticStart", passive: name === "Active" });
  if (name === "Connect" || name === "Active") return s;
  go({ type: "TcpCrAcked" });
  if (name === "OpenSent") return s;
  go({ type: "BgpOpen", open: peerOpen() });
  if (name === "OpenConfirm") return s;
  go({ type: "KeepAliveMsg" });
  return s;
}

const kinds = (actions: readonly FsmAction[]) =>
  actions.map((a) => (a.type === "send-notification" ? `notify ${a.code}/${a.subcode}` : a.type));

const err = {
  action: "session-reset" as const,
  code: 3,
  subcode: 1,
  data: new Uint8Array(0),
  reason: "bad",
};
const notif = { code: 6, subcode: 2, data: new Uint8Array(0) };

// [from, event, to, actions]
const table: [FsmStateName, FsmEvent, FsmStateName, string[]][] = [
  ["Idle", { type: "ManualStart" }, "Connect", ["connect"]],
  ["Idle", { type: "ManualStart", passive: true }, "Active", []],
  ["Idle", { type: "AutomaticStart" }, "Connect", ["connect"]],
  ["Idle", { type: "ManualStop" }, "Idle", []],
  ["Idle", { type: "KeepAliveMsg" }, "Idle", []],
  ["Idle", { type: "TcpConnectionConfirmed" }, "Idle", []],
  ["Connect", { type: "ManualStart" }, "Connect", []],
  ["Connect", { type: "ManualStop" }, "Idle", ["drop-connection", "down"]],
  ["Connect", { type: "ConnectRetryTimerExpires" }, "Connect", ["drop-connection", "connect"]],
  ["Connect", { type: "TcpCrAcked" }, "OpenSent", ["send-open"]],
  ["Connect", { type: "TcpConnectionConfirmed" }, "OpenSent", ["send-open"]],
  ["Connect", { type: "TcpConnectionFails" }, "Idle", ["drop-connection", "down"]],
  ["Connect", { type: "KeepAliveMsg" }, "Idle", ["drop-connection", "down"]],
  // `reach("Active")` is a passive start: a passive session never connects.
  ["Active", { type: "ConnectRetryTimerExpires" }, "Active", []],
  ["Active", { type: "AutomaticStop", subcode: 1 }, "Idle", ["drop-connection", "down"]],
  ["Active", { type: "TcpConnectionConfirmed" }, "OpenSent", ["send-open"]],
  ["Active", { type: "TcpConnectionFails" }, "Idle", ["drop-connection", "down"]],
  ["Active", { type: "ManualStop" }, "Idle", ["drop-connection", "down"]],
  ["Active", { type: "UpdateMsg" }, "Idle", ["drop-connection", "down"]],
  ["OpenSent", { type: "ManualStop" }, "Idle", ["notify 6/2", "drop-connection", "down"]],
  ["OpenSent", { type: "AutomaticStop" }, "Idle", ["notify 6/4", "drop-connection", "down"]],
  ["OpenSent", { type: "HoldTimerExpires" }, "Idle", ["notify 4/0", "drop-connection", "down"]],
  ["OpenSent", { type: "TcpConnectionFails" }, "Active", ["drop-connection"]],
  ["OpenSent", { type: "BgpOpen", open: peerOpen() }, "OpenConfirm", ["send-keepalive"]],
  [
    "OpenSent",
    { type: "BgpHeaderErr", error: { ...err, code: 1, subcode: 2 } },
    "Idle",
    ["notify 1/2", "drop-connection", "down"],
  ],
  [
    "OpenSent",
    { type: "BgpOpenMsgErr", error: { ...err, code: 2, subcode: 4 } },
    "Idle",
    ["notify 2/4", "drop-connection", "down"],
  ],
  ["OpenSent", { type: "OpenCollisionDump" }, "Idle", ["notify 6/7", "drop-connection", "down"]],
  [
    "OpenSent",
    { type: "NotifMsgVerErr", notification: { code: 2, subcode: 1, data: new Uint8Array(0) } },
    "Idle",
    ["drop-connection", "down"],
  ],
  ["OpenSent", { type: "NotifMsg", notification: notif }, "Idle", ["drop-connection", "down"]],
  ["OpenSent", { type: "KeepAliveMsg" }, "Idle", ["notify 5/1", "drop-connection", "down"]],
  ["OpenSent", { type: "UpdateMsg" }, "Idle", ["notify 5/1", "drop-connection", "down"]],
  [
    "OpenSent",
    { type: "ConnectRetryTimerExpires" },
    "Idle",
    ["notify 5/1", "drop-connection", "down"],
  ],
  ["OpenSent", { type: "RouteRefreshMsg" }, "Idle", ["notify 5/1", "drop-connection", "down"]],
  ["OpenConfirm", { type: "ManualStop" }, "Idle", ["notify 6/2", "drop-connection", "down"]],
  ["OpenConfirm", { type: "HoldTimerExpires" }, "Idle", ["notify 4/0", "drop-connection", "down"]],
  ["OpenConfirm", { type: "KeepaliveTimerExpires" }, "OpenConfirm", ["send-keepalive"]],
  ["OpenConfirm", { type: "TcpConnectionFails" }, "Idle", ["drop-connection", "down"]],
  ["OpenConfirm", { type: "NotifMsg", notification: notif }, "Idle", ["drop-connection", "down"]],
  ["OpenConfirm", { type: "OpenCollisionDump" }, "Idle", ["notify 6/7", "drop-connection", "down"]],
  ["OpenConfirm", { type: "KeepAliveMsg" }, "Established", ["established"]],
  ["OpenConfirm", { type: "UpdateMsg" }, "Idle", ["notify 5/2", "drop-connection", "down"]],
  [
    "OpenConfirm",
    { type: "BgpOpen", open: peerOpen() },
    "Idle",
    ["notify 5/2", "drop-connection", "down"],
  ],
  [
    "Established",
    { type: "ManualStop", communication: "bye" },
    "Idle",
    ["notify 6/2", "drop-connection", "down"],
  ],
  [
    "Established",
    { type: "AutomaticStop", subcode: 1 },
    "Idle",
    ["notify 6/1", "drop-connection", "down"],
  ],
  ["Established", { type: "HoldTimerExpires" }, "Idle", ["notify 4/0", "drop-connection", "down"]],
  ["Established", { type: "KeepaliveTimerExpires" }, "Established", ["send-keepalive"]],
  ["Established", { type: "KeepAliveMsg" }, "Established", []],
  ["Established", { type: "UpdateMsg" }, "Established", []],
  ["Established", { type: "RouteRefreshMsg" }, "Established", []],
  [
    "Established",
    { type: "UpdateMsgErr", error: err },
    "Idle",
    ["notify 3/1", "drop-connection", "down"],
  ],
  [
    "Established",
    { type: "BgpHeaderErr", error: { ...err, code: 1, subcode: 1 } },
    "Idle",
    ["notify 1/1", "drop-connection", "down"],
  ],
  ["Established", { type: "NotifMsg", notification: notif }, "Idle", ["drop-connection", "down"]],
  ["Established", { type: "TcpConnectionFails" }, "Idle", ["drop-connection", "down"]],
  ["Established", { type: "OpenCollisionDump" }, "Idle", ["notify 6/7", "drop-connection", "down"]],
  [
    "Established",
    { type: "BgpOpen", open: peerOpen() },
    "Idle",
    ["notify 5/3", "drop-connection", "down"],
  ],
  [
    "Established",
    { type: "ConnectRetryTimerExpires" },
    "Idle",
    ["notify 5/3", "drop-connection", "down"],
  ],
  ["Established", { type: "TcpConnectionConfirmed" }, "Established", []],
];

describe("FSM transitions (RFC 4271 §8.2.2)", () => {
  it.each(table.map(([from, e, to, a]) => [from, e.type, to, a.join(", "), e] as const))(
    "%s + %s -> %s [%s]",
    (from, _t, to, actions, event) => {
      const r = step(config, reach(from), event, 1000, rng);
      expect(r.state.name).toBe(to);
      expect(kinds(r.actions).join(", ")).toBe(actions);
    },
  );

  it("only the Established session reports a route-affecting down", () => {
    const down = (s: FsmStateName) =>
      step(config, reach(s), { type: "TcpConnectionFails" }, 0, rng).actions.find(
        (a) => a.type === "down",
      );
    expect(down("Established")).toMatchObject({ wasEstablished: true });
    expect(down("OpenConfirm")).toMatchObject({ wasEstablished: false });
  });
});

describe("PassiveTcpEstablishment: a passive session never connects", () => {
  it("a passive start waits in Active with no ConnectRetryTimer, however long", () => {
    const s = step(config, initialFsmState(), { type: "AutomaticStart", passive: true }, 0, rng);
    expect(s.state.name).toBe("Active");
    expect(s.actions).toEqual([]);
    expect(nextDeadline(s.state)).toBeUndefined();
    // Even a stray expiry (e.g. a timer armed before) does not connect.
    const late = { ...s.state, timers: { connectRetry: 5000 } };
    const r = step(config, late, { type: "ConnectRetryTimerExpires" }, 5000, rng);
    expect(r.state.name).toBe("Active");
    expect(r.actions).toEqual([]);
    expect(nextDeadline(r.state)).toBeUndefined();
  });

  it("a passive session whose connection fails in OpenSent waits in Active again, no timer", () => {
    const r = step(config, reach("OpenSent"), { type: "TcpConnectionFails" }, 0, rng);
    expect(r.state.name).toBe("Active");
    expect(r.state.passive).toBe(false); // reach() connected out: not passive
    expect(r.state.timers.connectRetry).toBe(5000);
    const passive = { ...reach("OpenSent"), passive: true };
    const p = step(config, passive, { type: "TcpConnectionFails" }, 0, rng);
    expect(p.state.name).toBe("Active");
    expect(nextDeadline(p.state)).toBeUndefined();
  });

  it("an active session in Active connects when the ConnectRetryTimer expires (§8.2.2)", () => {
    const active = step(config, reach("OpenSent"), { type: "TcpConnectionFails" }, 0, rng).state;
    const r = step(config, active, { type: "ConnectRetryTimerExpires" }, 5000, rng);
    expect(r.state.name).toBe("Connect");
    expect(kinds(r.actions)).toEqual(["connect"]);
  });

  it("after a failure the IdleHoldTimer restarts a passive session passive again", () => {
    const s = step(config, initialFsmState(), { type: "AutomaticStart", passive: true }, 0, rng);
    const idle = step(config, s.state, { type: "TcpConnectionFails" }, 0, rng).state;
    const again = step(config, idle, { type: "IdleHoldTimerExpires" }, 1000, rng);
    expect(again.state.name).toBe("Active");
    expect(again.actions).toEqual([]);
  });
});

describe("AutomaticStop (event 8)", () => {
  it("carries the Cease data, and without autoRestart stays in Idle with no timer", () => {
    const data = Uint8Array.of(0, 1, 1, 0, 0, 3, 0xe8);
    const r = step(
      config,
      reach("Established"),
      { type: "AutomaticStop", subcode: 1, reason: "too many", data, autoRestart: false },
      0,
      rng,
    );
    expect(r.state.name).toBe("Idle");
    expect(r.state.autoRestart).toBe(false);
    expect(r.state.timers).toEqual({});
    expect(r.actions[0]).toEqual({ type: "send-notification", code: 6, subcode: 1, data });
    expect(r.actions.find((a) => a.type === "down")).toMatchObject({ reason: "too many" });
    // No timer is due: only a new start event brings it back.
    expect(nextDeadline(r.state)).toBeUndefined();
    expect(step(config, r.state, { type: "AutomaticStart" }, 1, rng).state.name).toBe("Connect");
  });

  it("by default restarts through the IdleHoldTimer", () => {
    const r = step(config, reach("Established"), { type: "AutomaticStop", subcode: 4 }, 0, rng);
    expect(r.state.autoRestart).toBe(true);
    expect(r.state.timers.idleHold).toBeDefined();
  });
});

describe("timers", () => {
  it("OpenSent waits for the OPEN with a 4-minute hold timer", () => {
    const s = reach("OpenSent", 1000);
    expect(s.timers.hold).toBe(1000 + 240_000);
    expect(s.timers.connectRetry).toBeUndefined();
  });

  it("negotiates the smaller hold time and keepalive = hold / 3", () => {
    const s = step(
      config,
      reach("OpenSent"),
      { type: "BgpOpen", open: peerOpen({ holdTime: 30 }) },
      0,
      rng,
    ).state;
    expect(s.holdTimeMs).toBe(9000);
    expect(s.keepaliveMs).toBe(3000);
    expect(s.timers).toEqual({ hold: 9000, keepalive: 3000 });
    const t = step(
      config,
      reach("OpenSent"),
      { type: "BgpOpen", open: peerOpen({ holdTime: 3 }) },
      0,
      rng,
    ).state;
    expect([t.holdTimeMs, t.keepaliveMs]).toEqual([3000, 1000]);
  });

  it("hold time 0 on either side means no hold and no keepalive timers", () => {
    const s = step(
      config,
      reach("OpenSent"),
      { type: "BgpOpen", open: peerOpen({ holdTime: 0 }) },
      0,
      rng,
    ).state;
    expect(s.holdTimeMs).toBe(0);
    expect(s.timers).toEqual({});
    const e = step(config, s, { type: "KeepAliveMsg" }, 5, rng).state;
    expect(e.name).toBe("Established");
    expect(nextDeadline(e)).toBeUndefined();
  });

  it("KEEPALIVE and UPDATE restart the hold timer in Established", () => {
    const s = reach("Established", 0);
    expect(s.timers.hold).toBe(3000);
    expect(step(config, s, { type: "UpdateMsg" }, 2000, rng).state.timers.hold).toBe(5000);
    expect(step(config, s, { type: "KeepAliveMsg" }, 2500, rng).state.timers.hold).toBe(5500);
  });

  it("expiredTimers reports due timers, hold first", () => {
    const s = reach("Established", 0);
    expect(expiredTimers(s, 999)).toEqual([]);
    expect(expiredTimers(s, 1000).map((e) => e.type)).toEqual(["KeepaliveTimerExpires"]);
    expect(expiredTimers(s, 3000).map((e) => e.type)).toEqual([
      "HoldTimerExpires",
      "KeepaliveTimerExpires",
    ]);
  });

  it("ConnectRetry is jittered into [0.75, 1] of the base (RFC 4271 §10)", () => {
    const low = step(config, initialFsmState(), { type: "AutomaticStart" }, 0, () => 0).state;
    const high = step(config, initialFsmState(), { type: "AutomaticStart" }, 0, () => 1).state;
    expect(low.timers.connectRetry).toBe(3750);
    expect(high.timers.connectRetry).toBe(5000);
  });

  it("failures back off exponentially through the IdleHoldTimer, capped, and restart", () => {
    let s = reach("Connect");
    const delays: number[] = [];
    for (let i = 0; i < 9; i++) {
      s = step(config, s, { type: "TcpConnectionFails" }, 0, rng).state;
      expect(s.name).toBe("Idle");
      delays.push(s.timers.idleHold!);
      s = step(config, s, { type: "IdleHoldTimerExpires" }, 0, rng).state;
      expect(s.name).toBe("Connect");
    }
    expect(delays).toEqual([1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]);
    expect(backoffMs(config, 3, () => 0)).toBe(3000);
  });

  it("a session that stayed up resets the back-off; ManualStop disables restarts", () => {
    let s = reach("Connect");
    for (let i = 0; i < 4; i++) {
      s = step(config, s, { type: "TcpConnectionFails" }, 0, rng).state;
      s = step(config, s, { type: "IdleHoldTimerExpires" }, 0, rng).state;
    }
    expect(s.connectRetryCounter).toBe(4);
    s = step(config, s, { type: "TcpCrAcked" }, 0, rng).state;
    s = step(config, s, { type: "BgpOpen", open: peerOpen() }, 0, rng).state;
    s = step(config, s, { type: "KeepAliveMsg" }, 0, rng).state;
    const after = step(config, s, { type: "TcpConnectionFails" }, 120_000, rng).state;
    expect(after.connectRetryCounter).toBe(1);
    expect(after.timers.idleHold).toBe(121_000);
    const stopped = step(config, s, { type: "ManualStop" }, 0, rng).state;
    expect(stopped.autoRestart).toBe(false);
    expect(stopped.timers).toEqual({});
    expect(stopped.connectRetryCounter).toBe(0);
  });
});

describe("OPEN checks", () => {
  it("accepts a good OPEN and negotiates capabilities", () => {
    expect(checkOpen(config, peerOpen())).toBeNull();
    const r = step(config, reach("OpenSent"), { type: "BgpOpen", open: peerOpen() }, 0, rng);
    expect(r.state.negotiated?.routeRefresh).toBe(true);
    expect(r.state.negotiated?.tx.as4).toBe(true);
  });

  it("wrong peer AS: 2/2 with the 2-octet My AS", () => {
    const n = checkOpen(config, peerOpen({ myAs: 65001, capabilities: [] }));
    expect(n).toMatchObject({ code: 2, subcode: 2, data: Uint8Array.of(0xfd, 0xe9) });
  });

  it("too small hold time: 2/6", () => {
    const c = { ...config, minHoldTimeSec: 5 };
    expect(checkOpen(c, peerOpen({ holdTime: 3 }))).toMatchObject({ code: 2, subcode: 6 });
    expect(checkOpen(c, peerOpen({ holdTime: 0 }))).toBeNull();
  });

  it("same BGP identifier on an internal session: 2/3", () => {
    const ibgp = { ...config, peerAs: 65101 };
    const open = peerOpen({
      bgpId: config.bgpId,
      capabilities: [{ kind: "four-octet-as", asn: 65101 }],
    });
    expect(checkOpen(ibgp, open)).toMatchObject({ code: 2, subcode: 3 });
  });

  it("a required capability the peer lacks: 2/7 carrying that capability", () => {
    const c = { ...config, requiredCapabilities: ["route-refresh", "four-octet-as"] as const };
    expect(checkOpen(c, peerOpen())).toBeNull();
    const n = checkOpen(c, peerOpen({ capabilities: [{ kind: "four-octet-as", asn: 65000 }] }));
    expect(n).toMatchObject({ code: 2, subcode: 7 });
    expect(decodeCapability(n!.data![0]!, n!.data!.subarray(2))).toEqual({ kind: "route-refresh" });
    const r = step(
      c,
      reach("OpenSent"),
      {
        type: "BgpOpen",
        open: peerOpen({ capabilities: [{ kind: "four-octet-as", asn: 65000 }] }),
      },
      0,
      rng,
    );
    expect(r.state.name).toBe("Idle");
    expect(kinds(r.actions)[0]).toBe("notify 2/7");
  });

  it("our OPEN carries AS_TRANS for a 4-octet AS", () => {
    const o = localOpen({ ...config, localAs: 4_200_000_000 });
    expect(o.myAs).toBe(23456);
    expect(o.holdTime).toBe(9);
  });
});

describe("collision resolution (RFC 4271 §6.8)", () => {
  it("the higher BGP Identifier keeps the connection it initiated", () => {
    expect(collisionSurvivor(1, 2)).toBe("incoming");
    expect(collisionSurvivor(2, 1)).toBe("outgoing");
    // Compared as unsigned 32-bit numbers.
    expect(collisionSurvivor(0xc0000001, 0x0a000001)).toBe("outgoing");
  });
});
