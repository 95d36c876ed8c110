// Two BfdManagers (each with its worker thread and native UDP sockets) on loopback, no root:
// sessions come Up with negotiated timers, malformed packets are dropped and counted by
// reason without touching the session, AdminDown on shutdown, detection on silence.

import { randomInt } from "node:crypto";
import { once } from "node:events";
import { afterEach, describe, expect, it } from "vitest";
import { BfdManager, type BfdPeerEvent } from "../../../src/bfd/manager.ts";
import {
  BfdState,
  type ControlPacket,
  controlPacket,
  encodeControl,
} from "../../../src/bfd/packet.ts";
import { TtlUdpSocket } from "../../../src/native/index.ts";

const managers: BfdManager[] = [];
const sockets: TtlUdpSocket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.close();
  await Promise.all(managers.splice(0).map((m) => m.shutdown()));
});

async function pair(opts: { passiveB?: boolean; host?: string } = {}) {
  const host = opts.host ?? "127.0.0.1";
  const pa = randomInt(20000, 40000);
  const pb = pa + 1;
  const a = await BfdManager.start({ listenPort: pa, peerPort: pb });
  managers.push(a);
  const b = await BfdManager.start({ listenPort: pb, peerPort: pa });
  managers.push(b);
  const upA = once(a, "up") as Promise<[BfdPeerEvent]>;
  const upB = once(b, "up") as Promise<[BfdPeerEvent]>;
  await a.addPeer({ peer: host, intervalMs: 100, multiplier: 3 });
  await b.addPeer({ peer: host, intervalMs: 100, multiplier: 3, passive: opts.passiveB ?? false });
  const [[evA], [evB]] = await Promise.all([upA, upB]);
  return { a, b, pa, pb, evA, evB, host };
}

async function until<T>(fn: () => Promise<T | undefined>, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("BfdManager on loopback", () => {
  for (const host of ["127.0.0.1", "::1"])
    it(`${host}: comes Up and negotiates 100 ms × 3 on both sides`, async () => {
      const { a, b, evA } = await pair({ host });
      expect(evA).toMatchObject({ peer: host, to: "Up" });
      const s = await until(async () => {
        const st = await a.stats();
        return st.peers[0]?.txIntervalMs === 100 && st.peers[0]?.detectTimeMs === 300
          ? st
          : undefined;
      }, 3000);
      expect(s.peers[0]).toMatchObject({ state: "Up", remoteState: "Up", remoteMultiplier: 3 });
      expect(Number(s.peers[0]!.local.split(":").at(-1))).toBeGreaterThanOrEqual(49152);
      expect(a.isUp(host)).toBe(true);
      expect(b.isUp(host)).toBe(true);
      // Steady: a sends every 75-100 ms (RFC 5880 §6.8.7 jitter), b gets all of it. How
      // many fit in the window depends on how late a's timers fired (its own gauge), so the
      // check holds on a busy machine too.
      const sentBefore = (await a.stats()).peers[0]!.txPackets;
      const gotBefore = (await b.stats()).peers[0]!.rxPackets;
      const t0 = Date.now();
      await new Promise((r) => setTimeout(r, 1000));
      const aAfter = await a.stats();
      const after = await b.stats();
      const elapsed = Date.now() - t0;
      const sent = aAfter.peers[0]!.txPackets - sentBefore;
      expect(sent).toBeLessThanOrEqual(Math.floor(elapsed / 75) + 2);
      expect(sent).toBeGreaterThanOrEqual(
        Math.floor(elapsed / (100 + aAfter.maxTimerLatenessMs)) - 1,
      );
      // One packet may be in flight at each end of the window.
      expect(after.peers[0]!.rxPackets - gotBefore).toBeGreaterThanOrEqual(sent - 1);
      expect(Object.values(after.drops).every((n) => n === 0)).toBe(true);
    });

  it("a passive side comes Up when the active side speaks", async () => {
    const { evB } = await pair({ passiveB: true });
    expect(evB.to).toBe("Up");
  });

  it("shutdown sends AdminDown: the peer goes Down with remote diag administratively-down", async () => {
    const { a, b, host } = await pair();
    const down = once(b, "down") as Promise<[BfdPeerEvent]>;
    managers.splice(managers.indexOf(a), 1);
    await a.shutdown();
    const [ev] = await down;
    // The diagnostics say why b went Down: a's AdminDown, not its silence (that would be
    // control-detection-time-expired), whatever the time it took.
    expect(ev).toMatchObject({
      peer: host,
      from: "Up",
      to: "Down",
      diag: "neighbor-signaled-session-down",
      remoteDiag: "administratively-down",
    });
  });

  it("removePeer tells the peer AdminDown; re-adding brings it back Up", async () => {
    const { a, b, host } = await pair();
    const down = once(b, "down") as Promise<[BfdPeerEvent]>;
    await a.removePeer(host);
    expect((await down)[0].remoteDiag).toBe("administratively-down");
    const up = once(b, "up");
    await a.addPeer({ peer: host, intervalMs: 100, multiplier: 3 });
    await up;
  });

  it("setAdminDown takes one session down and back up", async () => {
    const { a, b, host } = await pair();
    const down = once(b, "down");
    await a.setAdminDown(host, true);
    await down;
    expect(a.peerState(host)).toBe("AdminDown");
    const up = once(b, "up");
    await a.setAdminDown(host, false);
    await up;
  });

  it("rejects bad peers and timers with a clear error", async () => {
    const m = await BfdManager.start({ listenPort: randomInt(40000, 50000), peerPort: 9 });
    managers.push(m);
    await expect(m.addPeer({ peer: "nope", intervalMs: 100, multiplier: 3 })).rejects.toThrow(
      /not an IP/,
    );
    await expect(
      m.addPeer({ peer: "::1", local: "127.0.0.1", intervalMs: 100, multiplier: 3 }),
    ).rejects.toThrow(/IPv6/);
    await expect(m.addPeer({ peer: "::1", intervalMs: 0, multiplier: 3 })).rejects.toThrow(
      /interval/,
    );
    await expect(m.addPeer({ peer: "::1", intervalMs: 100, multiplier: 0 })).rejects.toThrow(
      /multiplier/,
    );
    await expect(
      m.addPeer({ peer: "::1", local: "::2", intervalMs: 100, multiplier: 3 }),
    ).rejects.toMatchObject({ code: "EADDRNOTAVAIL" });
  });

  it("drops malformed packets by reason and never acts on them", async () => {
    const { a, b, pa, host } = await pair();
    const st = await a.stats();
    const mine = st.peers[0]!.localDiscriminator;
    const theirs = st.peers[0]!.remoteDiscriminator;
    const tx255 = new TtlUdpSocket({ address: host, port: 0, ttl: 255 });
    const tx64 = new TtlUdpSocket({ address: host, port: 0, ttl: 64 });
    sockets.push(tx255, tx64);
    // Each would bring the session Down if acted on: AdminDown / Down from the real peer.
    const base: Partial<ControlPacket> = {
      state: BfdState.AdminDown,
      diag: 7,
      myDiscriminator: theirs,
      yourDiscriminator: mine,
    };
    const send = (s: TtlUdpSocket, b: Uint8Array) => s.send(b, host, pa);
    const bytes = (p: Partial<ControlPacket>) => encodeControl(controlPacket({ ...base, ...p }));
    const patched = (at: number, v: number) => {
      const x = bytes({});
      x[at] = v;
      return x;
    };
    const cases: [string, Uint8Array, TtlUdpSocket][] = [
      ["ttl", bytes({}), tx64],
      ["too-short", bytes({}).subarray(0, 20), tx255],
      ["bad-version", patched(0, (2 << 5) | 7), tx255],
      ["bad-length", patched(3, 30), tx255],
      ["detect-mult-zero", bytes({ detectMult: 0 }), tx255],
      ["multipoint", bytes({ multipoint: true }), tx255],
      ["my-discriminator-zero", bytes({ myDiscriminator: 0 }), tx255],
      ["your-discriminator-zero", bytes({ state: BfdState.Up, yourDiscriminator: 0 }), tx255],
      [
        "auth-not-configured",
        (() => {
          const x = new Uint8Array(28);
          x.set(bytes({ authPresent: true }));
          x[3] = 28;
          x.set([1, 4, 1, 0x61], 24);
          return x;
        })(),
        tx255,
      ],
      ["no-session", bytes({ yourDiscriminator: (mine ^ 0xffff) >>> 0 || 1 }), tx255],
    ];
    const states: string[] = [];
    a.on("state", (e) => states.push(e.to));
    for (const [, b2, s] of cases) send(s, b2);
    const drops = await until(async () => {
      const d = (await a.stats()).drops;
      return cases.every(([r]) => d[r as keyof typeof d] >= 1) ? d : undefined;
    }, 3000);
    for (const [reason] of cases) expect(drops[reason as keyof typeof drops], reason).toBe(1);
    expect(drops["admin-down"]).toBe(0);
    // Still Up after a few more detection times: none of it was acted on.
    await new Promise((r) => setTimeout(r, 500));
    expect(states).toEqual([]);
    expect(a.isUp(host)).toBe(true);
    expect(b.isUp(host)).toBe(true);
    // And a well-formed AdminDown with the right TTL *is* acted on.
    const down = once(a, "down") as Promise<[BfdPeerEvent]>;
    send(tx255, bytes({}));
    expect((await down)[0].remoteDiag).toBe("administratively-down");
  });

  it("detects a silent peer within the detection time (300 ms + scheduling slack)", async () => {
    const { a, b } = await pair();
    await until(
      async () => ((await a.stats()).peers[0]?.detectTimeMs === 300 ? true : undefined),
      3000,
    );
    const down = once(a, "down") as Promise<[BfdPeerEvent]>;
    // Silence b without AdminDown: terminate its worker outright.
    managers.splice(managers.indexOf(b), 1);
    await (b as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
    const silentSince = Date.now(); // b's worker is gone: nothing is sent after this
    const [ev] = await down;
    expect(ev.diag).toBe("control-detection-time-expired");
    // Within the detection time of b's silence, plus however late a's timers fired (a's
    // own gauge: 0-2 ms on an idle machine, more on a busy one).
    const late = (await a.stats()).maxTimerLatenessMs;
    expect(ev.at - silentSince).toBeLessThan(300 + 50 + late);
  });

  it("removePeer immediately followed by addPeer gives one fresh session that comes Up", async () => {
    const { a, b, host } = await pair();
    const remove = a.removePeer(host);
    await a.addPeer({ peer: host, intervalMs: 100, multiplier: 3 });
    await remove;
    await until(async () => {
      const s = await a.stats();
      return s.peers.length === 1 && s.peers[0]!.state === "Up" ? s : undefined;
    }, 5000);
    expect(b.isUp(host)).toBe(true);
  });

  it("a main thread blocked for 400 ms at a time does not disturb the workers' sessions", async () => {
    const { a, b, host } = await pair();
    await until(
      async () => ((await a.stats()).peers[0]?.detectTimeMs === 300 ? true : undefined),
      3000,
    );
    const changes: string[] = [];
    a.on("state", (e) => changes.push(`a ${e.to}`));
    b.on("state", (e) => changes.push(`b ${e.to}`));
    const before = (await a.stats()).peers[0]!.rxPackets;
    const started = Date.now();
    for (let i = 0; i < 5; i++) {
      const t0 = Date.now();
      while (Date.now() - t0 < 400); // 400 ms > 300 ms detection time: fatal on this thread
      await new Promise((r) => setImmediate(r));
    }
    const blocked = Date.now() - started;
    const after = await a.stats();
    const bAfter = await b.stats();
    expect(changes).toEqual([]);
    expect(after.peers[0]!.state).toBe("Up");
    // Packets kept flowing while the main thread was stuck: one every 100 ms at most,
    // give or take how late b's timers fired (b's own gauge: small unless the whole
    // machine is busy).
    expect(after.peers[0]!.rxPackets - before).toBeGreaterThanOrEqual(
      Math.floor(blocked / (100 + bAfter.maxTimerLatenessMs)) - 5,
    );
    expect(a.isUp(host) && b.isUp(host)).toBe(true);
  });
});
