// The whole system in the canonical lab, as `vipmux lab up` starts it: two MUXes running
// `vipmux run` (BGP + BFD to the FRR edge, health, userspace forwarding), two host agents,
// four backend VMs. What the README promises (HTTP/UDP over IPv4 and IPv6, spread,
// affinity, DSR, MUX failure with live connections, backend drain) and the failures the
// dataplane must answer (a DIP failing, a stalled forwarder: its MUX withdraws,
// docs/architecture.md#control-plane-survives-the-data-plane) are checked against real
// traffic.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  fibNextHops,
  pollUntil,
  startLab,
  TEST_FAULTS,
  type TestLab,
} from "../../src/lab/testing.ts";
import { run, sleep } from "../../src/util/proc.ts";
import { canonicalTopology, fixture, isRoot, openStreams, repoRoot } from "./helpers.ts";

const node = process.execPath;
const cli = `${repoRoot}src/cli/main.ts`;
const V4 = "20.20.20.100";
const STICKY = "20.20.20.102";
const V6 = "2001:db8:f::100";
const BOTH = ["192.0.2.2", "192.0.2.6"];
const sock = (mux: string) => `/run/vipmux/${mux}.sock`;

describe.skipIf(!isRoot)("the whole system: vipmux lab up", () => {
  let lab: TestLab;
  const hops = (prefix: string) => fibNextHops(lab, "edge", prefix);
  const waitHops = (prefix: string, want: string[], what: string, timeoutMs = 20_000) =>
    pollUntil(
      async () => {
        const h = await hops(prefix);
        return JSON.stringify(h) === JSON.stringify(want) ? h : undefined;
      },
      { timeoutMs, intervalMs: 50, what },
    );
  const spread = async (url: string, count: number, local?: string) => {
    const out = await lab.must(
      "client",
      [node, fixture("system/spread.ts"), url, String(count), "10", ...(local ? [local] : [])],
      { timeoutMs: 120_000 },
    );
    return JSON.parse(out) as { counts: Record<string, number>; failed: number };
  };
  /** PIDs in a node's namespace whose command line contains `needle`. */
  const pidsOf = async (nodeName: string, needle: string) => {
    const r = await run(["ip", "netns", "pids", lab.node(nodeName).netns]);
    return r.stdout
      .split(/\s+/)
      .filter(Boolean)
      .filter((pid) => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, "utf8")
            .replaceAll("\0", " ")
            .includes(needle);
        } catch {
          return false;
        }
      })
      .map(Number);
  };
  const status = async (mux: string) =>
    JSON.parse(await lab.must(mux, [node, cli, "status", "--json", "-s", sock(mux)])) as {
      muxHealthy: boolean;
      backends: { service: string; dip: string; healthy: boolean | null }[];
      bfd: { peer: string; state: string }[];
    };

  beforeAll(async () => {
    lab = await startLab(canonicalTopology, "sys", {
      env: { mux1: TEST_FAULTS, mux2: TEST_FAULTS },
    });
    await waitHops(`${V4}/32`, BOTH, "the IPv4 VIP via both MUXes", 40_000);
    await waitHops(
      `${V6}/128`,
      ["2001:db8:0:1::2", "2001:db8:0:2::2"],
      "the IPv6 VIP via both MUXes",
    );
  });
  afterAll(async () => {
    await lab?.down();
  });

  it("HTTP to the IPv4 and IPv6 VIPs, UDP and TCP echo; the backend sees the client's own address", async () => {
    const v4 = await lab.must("client", ["curl", "-s", "-m", "3", `http://${V4}/`]);
    expect(v4).toMatch(/^vm\d\d 10\.10\.\d\.\d+:8080 client 203\.0\.113\.10:\d+\n$/);
    const v6 = await lab.must("client", ["curl", "-s", "-m", "3", `http://[${V6}]/`]);
    expect(v6).toMatch(/^vm\d\d fd00:10:\d::\d+:8080 client 2001:db8:c::10:\d+\n$/);
    // socat's UDP socket is connected to the VIP: only a reply from the VIP is accepted.
    expect(await lab.must("client", ["sh", "-c", `echo ping-v4 | socat -t2 - UDP4:${V4}:7`])).toBe(
      "ping-v4\n",
    );
    expect(
      await lab.must("client", ["sh", "-c", `echo ping-v6 | socat -t2 - UDP6:[${V6}]:7`]),
    ).toBe("ping-v6\n");
    expect(await lab.must("client", ["sh", "-c", `echo hi | socat -t2 - TCP4:${V4}:7`])).toMatch(
      /^vm\d\d hi\n$/,
    );
    const st = await status("mux1");
    expect(st.bfd).toEqual([expect.objectContaining({ peer: "192.0.2.1", state: "Up" })]);
  });

  it("vipmux flow: the MUX carrying a live TCP connection has it in its table, on the DIP that answers", async () => {
    const client = "203.0.113.10";
    const sport = 31_000; // below the ephemeral range: no earlier connection holds it
    const stop = join(lab.plan.dir, "flow-hold.stop");
    const logFile = join(lab.plan.dir, "flow-hold.log");
    // Every backend healthy on both MUXes first, so the Maglev tables are the full ones the
    // connection's SYN meets (a flow placed while a DIP was still down keeps its entry).
    await pollUntil(
      async () => {
        for (const mux of ["mux1", "mux2"])
          if (!(await status(mux)).backends.every((b) => b.healthy === true)) return false;
        return true;
      },
      { timeoutMs: 20_000, intervalMs: 200, what: "every backend healthy on both MUXes" },
    );
    lab.spawn(
      "client",
      [node, fixture("system/hold.ts"), V4, "7", client, String(sport), stop],
      "flow-hold",
    );
    try {
      const vm = await pollUntil(
        async () => {
          const log = existsSync(logFile) ? readFileSync(logFile, "utf8") : "";
          if (log.includes("error ")) throw new Error(`the client failed: ${log}`);
          return /^reply (vm\d\d) flow$/m.exec(log)?.[1];
        },
        { timeoutMs: 10_000, what: "the echo reply" },
      );
      // vmXY is DIP 10.10.X.XY on host 198.51.100.2 (X = 1) or 198.51.100.6 (X = 2).
      const dip = `10.10.${vm[2]}.${vm.slice(2)}`;
      const host = vm[2] === "1" ? "198.51.100.2" : "198.51.100.6";
      const args = ["flow", "tcp", client, String(sport), V4, "7"];
      const looked = await Promise.all(
        ["mux1", "mux2"].map(async (mux) => ({
          mux,
          r: JSON.parse(await lab.must(mux, [node, cli, ...args, "--json", "-s", sock(mux)])) as {
            verdict: string;
            service: string;
            via: string;
            dip: string;
            entry: { dip: string; state: string; backend: string } | null;
            maglev: { dip: string; host: string } | null;
          },
        })),
      );
      const carrying = looked.filter((l) => l.r.entry !== null);
      expect(carrying.map((l) => l.mux)).toHaveLength(1);
      expect(carrying[0]!.r).toMatchObject({
        verdict: "forward",
        service: "web",
        via: "entry",
        dip,
        entry: { dip, host, state: "established", backend: "up" },
      });
      // Both MUXes compute the same Maglev choice; the other one has no entry but would
      // send the flow to the same DIP after an ECMP change.
      for (const l of looked) expect(l.r.maglev).toEqual({ dip, host });
      const other = looked.find((l) => l.r.entry === null)!;
      expect(other.r).toMatchObject({ verdict: "forward", via: "maglev", dip });

      const mux = carrying[0]!.mux;
      const text = await lab.must(mux, [node, cli, ...args, "-s", sock(mux)]);
      expect(text).toBe(
        `tcp ${client}:${sport} -> ${V4}:7: service web, DIP ${dip} (host ${host}), in the connection table (established)\n`,
      );
      // Looking did not refresh or add anything: the other MUX still has no entry.
      const again = JSON.parse(
        await lab.must(other.mux, [node, cli, ...args, "--json", "-s", sock(other.mux)]),
      ) as { entry: unknown };
      expect(again.entry).toBeNull();
    } finally {
      writeFileSync(stop, "");
    }
  });

  it("1,000 new connections (5-tuple) land on all 4 DIPs within ±15% of an even share", async () => {
    const r = await spread(`http://${V4}/`, 1000);
    expect(r.failed).toBe(0);
    expect(Object.keys(r.counts).sort()).toEqual(["vm11", "vm12", "vm21", "vm22"]);
    for (const n of Object.values(r.counts)) {
      expect(n).toBeGreaterThanOrEqual(250 * 0.85);
      expect(n).toBeLessThanOrEqual(250 * 1.15);
    }
  });

  it("2-tuple distribution: one client always lands on one DIP", async () => {
    await lab.must("client", ["ip", "addr", "add", "203.0.113.11/24", "dev", "eth1"]);
    for (const local of ["203.0.113.10", "203.0.113.11"]) {
      const r = await spread(`http://${STICKY}/`, 100, local);
      expect(r.failed).toBe(0);
      expect(Object.keys(r.counts)).toHaveLength(1);
    }
  });

  it("DSR: replies never cross a MUX", async () => {
    const caps: { mux: string; file: string }[] = [];
    const tcpdumps = [];
    for (const mux of ["mux1", "mux2"]) {
      const file = join(lab.plan.dir, `dsr-${mux}.txt`);
      // Everything on the MUX's only link, as one line per packet.
      tcpdumps.push(
        lab.spawn(
          mux,
          [
            "tcpdump",
            "-n",
            "-U",
            "--immediate-mode",
            "-i",
            "eth1",
            "-w",
            `${file}.pcap`,
            "ip or ip6",
          ],
          `tcpdump-${mux}`,
        ),
      );
      caps.push({ mux, file });
    }
    for (const mux of ["mux1", "mux2"])
      await pollUntil(
        async () =>
          readFileSync(join(lab.plan.dir, `tcpdump-${mux}.log`), "utf8").includes("listening on"),
        { timeoutMs: 10_000, what: `tcpdump on ${mux}` },
      );
    const r = await spread(`http://${V4}/`, 200);
    expect(r.failed).toBe(0);
    await sleep(500);
    for (const t of tcpdumps) t.kill("SIGINT");
    await sleep(1000);
    let toVip = 0;
    for (const { mux, file } of caps) {
      const fromVip = await lab.must(mux, [
        "tcpdump",
        "-n",
        "-r",
        `${file}.pcap`,
        `src host ${V4} and tcp`,
      ]);
      // Not one reply packet (source = VIP) on either MUX's link.
      expect(fromVip.trim()).toBe("");
      toVip += (
        await lab.must(mux, ["tcpdump", "-n", "-r", `${file}.pcap`, `dst host ${V4} and tcp`])
      )
        .trim()
        .split("\n").length;
      writeFileSync(file, "");
    }
    // ...while the client's packets to the VIP did arrive at the MUXes (and were encapsulated).
    expect(toVip).toBeGreaterThan(200);
  });

  /**
   * 200 long-lived TCP streams through both MUXes; `fail` takes mux1 away; afterwards every
   * stream is still open, answered by the same VM, with no reset.
   */
  async function survive(name: string, fail: () => Promise<void>, recover: () => Promise<void>) {
    const { before, snapshot, stop } = await openStreams(lab, name, V4, 7, 200);
    try {
      await fail();
      await waitHops(`${V4}/32`, ["192.0.2.6"], `edge rerouted to mux2 (${name})`, 15_000);
      await sleep(2_000);
      const during = await snapshot();
      await recover();
      await waitHops(`${V4}/32`, BOTH, `mux1 back (${name})`, 30_000);
      await sleep(2_000);
      const after = await snapshot();
      for (const s of [during, after]) {
        expect(s.errors).toEqual([]);
        expect(s.open).toBe(200);
        expect(s.vms).toEqual(before.vms);
      }
      // Every stream kept exchanging data through the failure and the recovery.
      after.replies.forEach((r, i) => {
        expect(r).toBeGreaterThan(during.replies[i]!);
      });
      during.replies.forEach((r, i) => {
        expect(r).toBeGreaterThan(before.replies[i]!);
      });
    } finally {
      stop();
    }
  }

  it("mux1 SIGKILLed: 200 live connections survive on mux2, and again when mux1 comes back", async () => {
    await survive(
      "kill",
      async () => {
        const pids = await pidsOf("mux1", "run --config");
        expect(pids).toHaveLength(1);
        process.kill(pids[0]!, "SIGKILL"); // the lab supervisor restarts it
      },
      async () => {},
    );
  });

  it("mux1 hung (every packet dropped): BFD reroutes within a second; 200 connections survive", async () => {
    const mux1 = lab.node("mux1").netns;
    const drop = `table inet vipmux-test-blackhole {
  chain input { type filter hook input priority -300; policy drop; }
  chain output { type filter hook output priority -300; policy drop; }
  chain forward { type filter hook forward priority -300; policy drop; }
}`;
    await survive(
      "hang",
      async () => {
        const t0 = Date.now();
        const r = await run(["ip", "netns", "exec", mux1, "nft", "-f", "-"], { input: drop });
        expect(r.code).toBe(0);
        await waitHops(`${V4}/32`, ["192.0.2.6"], "BFD takes mux1 out", 5_000);
        expect(Date.now() - t0).toBeLessThan(1_500);
      },
      async () => {
        await run([
          "ip",
          "netns",
          "exec",
          mux1,
          "nft",
          "delete",
          "table",
          "inet",
          "vipmux-test-blackhole",
        ]);
      },
    );
  });

  it("draining a backend breaks no established connection; new connections avoid it", async () => {
    for (const mux of ["mux1", "mux2"])
      await lab.must(mux, [node, cli, "drain", "backend", "web/10.10.1.11", "-s", sock(mux)]);
    try {
      await sleep(500);
      const r = await spread(`http://${V4}/`, 200);
      expect(r.failed).toBe(0);
      expect(r.counts.vm11 ?? 0).toBe(0);
    } finally {
      for (const mux of ["mux1", "mux2"])
        await lab.must(mux, [node, cli, "undrain", "backend", "web/10.10.1.11", "-s", sock(mux)]);
    }
    await sleep(500);
    expect((await spread(`http://${V4}/`, 200)).counts.vm11).toBeGreaterThan(0);
  });

  it("a DIP's server stops: it leaves the table on both MUXes and gets no new connection", async () => {
    // The server refusing connections (TCP RST), as a stopped process would; the lab's
    // supervisor would restart a killed one at once.
    const vm12 = lab.node("vm12").netns;
    // Connections already open: those on the other DIPs must not notice.
    const streams = await openStreams(lab, "dipstop", V4, 7, 100);
    const stopRule = `table inet vipmux-test-stopped {
  chain input { type filter hook input priority 0; tcp dport 8080 reject with tcp reset; }
}`;
    expect(
      (await run(["ip", "netns", "exec", vm12, "nft", "-f", "-"], { input: stopRule })).code,
    ).toBe(0);
    try {
      const t0 = Date.now();
      await pollUntil(
        async () => {
          for (const mux of ["mux1", "mux2"]) {
            const b = (await status(mux)).backends.find(
              (x) => x.service === "web" && x.dip === "10.10.1.12",
            );
            if (b?.healthy !== false) return false;
          }
          return true;
        },
        { timeoutMs: 15_000, intervalMs: 200, what: "10.10.1.12 down on both MUXes" },
      );
      // health: tcp, interval 1 s x fall 2, then the stream: a few seconds at most.
      expect(Date.now() - t0).toBeLessThan(5_000);
      const r = await spread(`http://${V4}/`, 200);
      expect(r.failed).toBe(0);
      expect(r.counts.vm12 ?? 0).toBe(0);
      expect(Object.keys(r.counts).sort()).toEqual(["vm11", "vm21", "vm22"]);
      const after = await streams.snapshot();
      const others = streams.before.vms
        .map((vm, i) => [vm, i] as const)
        .filter(([vm]) => vm !== "vm12");
      expect(others.length).toBeGreaterThan(0);
      for (const [, i] of others) {
        expect(after.errors.filter((e) => e.startsWith(`${i}:`))).toEqual([]);
        expect(after.replies[i]).toBeGreaterThan(streams.before.replies[i]!);
        expect(after.vms[i]).toBe(streams.before.vms[i]);
      }
    } finally {
      streams.stop();
      await run([
        "ip",
        "netns",
        "exec",
        vm12,
        "nft",
        "delete",
        "table",
        "inet",
        "vipmux-test-stopped",
      ]);
    }
  });

  it("a stalled forwarder: that MUX withdraws every VIP and the other carries the traffic", async () => {
    await waitHops(`${V4}/32`, BOTH, "both MUXes before the stall");
    const [pid] = await pidsOf("mux1", "run --config");
    process.kill(pid!, "SIGUSR2"); // TEST_FAULTS (VIPMUX_TEST_FAULTS=1): stall the worker
    try {
      await waitHops(
        `${V4}/32`,
        ["192.0.2.6"],
        "mux1 withdrew after its forwarder stalled",
        10_000,
      );
      await waitHops(`${V6}/128`, ["2001:db8:0:2::2"], "mux1 withdrew the IPv6 VIP too", 10_000);
      expect((await status("mux1")).muxHealthy).toBe(false);
      const r = await spread(`http://${V4}/`, 100);
      expect(r.failed).toBe(0);
    } finally {
      process.kill(pid!, "SIGUSR2");
    }
    // Back after the hold-down.
    await waitHops(`${V4}/32`, BOTH, "mux1 re-announces after recovering", 20_000);
  });
});
