// vipmux BFD against FRR bfdd (8.4) in the namespace lab, IPv4 and IPv6 single hop at
// 100 ms × 3: sessions Up with the configured timers on both ends, detection of a silent
// (SIGSTOPped or blackholed) vipmux within the detection time, AdminDown on shutdown, and
// FRR's own AdminDown seen by vipmux.
import type { ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BfdStats } from "../../src/bfd/index.ts";
import { pollUntil, startLab, type TestLab } from "../../src/lab/testing.ts";
import { fixture, isRoot } from "./helpers.ts";

interface FrrBfdPeer {
  peer: string;
  status: string;
  diagnostic: string;
  "remote-diagnostic": string;
  "receive-interval": number;
  "transmit-interval": number;
  "detect-multiplier": number;
  "remote-receive-interval": number;
  "remote-transmit-interval": number;
  "remote-detect-multiplier": number;
  "remote-id": number;
}

const V4 = { edge: "192.0.2.1", mux: "192.0.2.2" };
const V6 = { edge: "2001:db8:0:1::1", mux: "2001:db8:0:1::2" };

async function frrPeer(lab: TestLab, peer: string): Promise<FrrBfdPeer | undefined> {
  const peers = await lab.vtyshJson<FrrBfdPeer[]>("edge", "show bfd peers json");
  return peers.find((p) => p.peer === peer);
}

/** Polls FRR as fast as vtysh answers; returns ms from t0 until `pred` holds. */
async function msUntilFrr(
  lab: TestLab,
  peer: string,
  t0: number,
  pred: (p: FrrBfdPeer) => boolean,
  timeoutMs: number,
): Promise<number> {
  const deadline = t0 + timeoutMs;
  while (Date.now() < deadline) {
    const p = await frrPeer(lab, peer);
    if (p && pred(p)) return Date.now() - t0;
  }
  throw new Error(`FRR peer ${peer}: condition not met within ${timeoutMs} ms`);
}

interface LogLine {
  event: string;
  peer?: string;
  to?: string;
  from?: string;
  diag?: string;
  remoteState?: string;
  remoteDiag?: string;
}

describe.skipIf(!isRoot)("BFD interop with FRR bfdd", () => {
  let lab: TestLab;
  let mux: ChildProcess;
  let statsFile: string;
  const log = () =>
    readFileSync(join(lab.plan.dir, "vipmux-bfd.log"), "utf8")
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as LogLine);
  const stats = () => JSON.parse(readFileSync(statsFile, "utf8")) as BfdStats;

  function startMux() {
    mux = lab.spawn(
      "mux1",
      [
        process.execPath,
        fixture("bfd-lab/bfd-peer.ts"),
        JSON.stringify({
          peers: [
            { peer: V4.edge, local: V4.mux, intervalMs: 100, multiplier: 3 },
            { peer: V6.edge, local: V6.mux, intervalMs: 100, multiplier: 3 },
          ],
          statsFile,
        }),
      ],
      "vipmux-bfd",
    );
  }

  async function bothUp() {
    for (const peer of [V4.mux, V6.mux])
      await pollUntil(async () => (await frrPeer(lab, peer))?.status === "up", {
        timeoutMs: 15_000,
        intervalMs: 100,
        what: `FRR session to ${peer} up`,
      });
  }

  beforeAll(async () => {
    lab = await startLab(fixture("bfd-lab/bfd.clab.yml"), "bfd");
    statsFile = join(lab.plan.dir, "vipmux-bfd-stats.json");
    startMux();
    await bothUp();
  });
  afterAll(async () => {
    if (mux?.pid && mux.exitCode === null) mux.kill("SIGCONT");
    await lab?.down();
  });

  it("both sessions are Up with 100 ms × 3 negotiated on both ends", async () => {
    for (const peer of [V4.mux, V6.mux]) {
      // FRR shows our advertised timers once our Poll Sequence has run.
      const p = await pollUntil(
        async () => {
          const x = await frrPeer(lab, peer);
          return x?.["remote-transmit-interval"] === 100 ? x : undefined;
        },
        { timeoutMs: 5000, intervalMs: 100, what: `FRR sees 100 ms from ${peer}` },
      );
      expect(p).toMatchObject({
        status: "up",
        "receive-interval": 100,
        "transmit-interval": 100,
        "detect-multiplier": 3,
        "remote-receive-interval": 100,
        "remote-transmit-interval": 100,
        "remote-detect-multiplier": 3,
      });
    }
    const s = await pollUntil(
      async () => {
        if (!existsSync(statsFile)) return undefined;
        const st = stats();
        return st.peers.every((p) => p.detectTimeMs === 300) ? st : undefined;
      },
      { timeoutMs: 5000, intervalMs: 100, what: "vipmux at 300 ms detection" },
    );
    for (const p of s.peers) {
      expect(p).toMatchObject({
        state: "Up",
        remoteState: "Up",
        txIntervalMs: 100,
        detectTimeMs: 300,
        remoteMultiplier: 3,
      });
      expect(Number(p.local.split(":").at(-1))).toBeGreaterThanOrEqual(49152);
    }
    // FRR sends with TTL 255 and valid packets: nothing of it was dropped.
    expect(Object.values(s.drops).reduce((a, b) => a + b, 0)).toBe(0);
  });

  it("SIGSTOP (a hung MUX): FRR declares both sessions down within the detection time", async () => {
    const t0 = Date.now();
    process.kill(mux.pid!, "SIGSTOP");
    try {
      const [ms4, ms6] = await Promise.all([
        msUntilFrr(lab, V4.mux, t0, (p) => p.status === "down", 3000),
        msUntilFrr(lab, V6.mux, t0, (p) => p.status === "down", 3000),
      ]);
      const p = await frrPeer(lab, V4.mux);
      expect(p?.diagnostic).toBe("control detection time expired");
      // 300 ms detection + up to one 100 ms TX gap already elapsed + vtysh polling.
      expect(ms4).toBeLessThan(600);
      expect(ms6).toBeLessThan(600);
    } finally {
      process.kill(mux.pid!, "SIGCONT");
    }
    await bothUp();
  });

  it("an nftables drop-all table in the MUX namespace: FRR declares down, then back up", async () => {
    const nft = (cmd: string) => lab.must("mux1", ["nft", cmd]);
    const t0 = Date.now();
    await nft(
      "add table inet vmx_blackhole; add chain inet vmx_blackhole in { type filter hook input priority -300; policy drop; }; add chain inet vmx_blackhole out { type filter hook output priority -300; policy drop; }",
    );
    try {
      const ms = await msUntilFrr(lab, V4.mux, t0, (p) => p.status === "down", 3000);
      expect(ms).toBeLessThan(600);
      await msUntilFrr(lab, V6.mux, t0, (p) => p.status === "down", 3000);
    } finally {
      await nft("delete table inet vmx_blackhole");
    }
    await bothUp();
    // vipmux saw the same: detection expired on its side too, then Up again.
    const downs = log().filter((l) => l.event === "state" && l.from === "Up" && l.to === "Down");
    expect(downs.some((l) => l.diag === "control-detection-time-expired")).toBe(true);
  });

  it("FRR shutting the peer down administratively: vipmux reports Down with remote diag AdminDown", async () => {
    const before = log().length;
    await lab.must("edge", [
      "vtysh",
      "-c",
      "configure terminal",
      "-c",
      "bfd",
      "-c",
      `peer ${V4.mux} local-address ${V4.edge} interface eth1`,
      "-c",
      "shutdown",
    ]);
    try {
      await pollUntil(
        async () =>
          log()
            .slice(before)
            .find((l) => l.event === "state" && l.peer === V4.edge && l.to === "Down"),
        { timeoutMs: 3000, intervalMs: 50, what: "vipmux Down on FRR AdminDown" },
      ).then((l) =>
        expect(l).toMatchObject({
          diag: "neighbor-signaled-session-down",
          remoteState: "AdminDown",
        }),
      );
    } finally {
      await lab.must("edge", [
        "vtysh",
        "-c",
        "configure terminal",
        "-c",
        "bfd",
        "-c",
        `peer ${V4.mux} local-address ${V4.edge} interface eth1`,
        "-c",
        "no shutdown",
      ]);
    }
    await bothUp();
  });

  it("vipmux shutdown (SIGTERM) sends AdminDown: FRR shows the remote administratively down", async () => {
    const t0 = Date.now();
    mux.kill("SIGTERM");
    const [ms4, ms6] = await Promise.all(
      [V4.mux, V6.mux].map((peer) =>
        msUntilFrr(
          lab,
          peer,
          t0,
          (p) => p.status === "down" && p["remote-diagnostic"] === "administratively down",
          3000,
        ),
      ),
    );
    // Far sooner than any detection time: FRR acted on the AdminDown packet.
    expect(ms4).toBeLessThan(300);
    expect(ms6).toBeLessThan(300);
    await pollUntil(async () => mux.exitCode === 0, {
      timeoutMs: 5000,
      what: "vipmux BFD exits 0",
    });
    expect(log().some((l) => l.event === "shutdown")).toBe(true);
  });
});
