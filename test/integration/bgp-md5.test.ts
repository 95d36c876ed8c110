// TCP-MD5 (RFC 2385) and GTSM (RFC 5082) through the native addon: the right password
// establishes (both directions: vipmux connects, and FRR connects to vipmux's listener),
// a wrong one never does, and a password changed at run time takes effect on the listener
// at once: the new key is accepted, the old one refused.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fibNextHops, pollUntil, startLab, type TestLab } from "../../src/lab/testing.ts";
import { nativeAvailable } from "../../src/native/index.ts";
import {
  bgpFixture,
  type SpeakerHandle,
  startSpeaker,
  waitEstablished,
} from "../fixtures/bgp-lab/control.ts";
import { isRoot } from "./helpers.ts";

interface Summary {
  ipv4Unicast?: { peers: Record<string, { state: string }> };
}

describe.skipIf(!isRoot || !nativeAvailable())("TCP-MD5 and GTSM with FRR", () => {
  let lab: TestLab;
  let mux1: SpeakerHandle;
  let mux2: SpeakerHandle;
  let passive: SpeakerHandle;
  const frrState = async (addr: string) =>
    (await lab.vtyshJson<Summary>("edge", "show bgp summary json")).ipv4Unicast?.peers[addr]?.state;

  beforeAll(async () => {
    lab = await startLab(bgpFixture("md5.clab.yml"), "bgpmd5");
  });
  afterAll(async () => {
    try {
      if (process.env.BGP_DEBUG) {
        const { existsSync, readFileSync } = await import("node:fs");
        for (const f of ["vipmux-mux1.log", "vipmux-mux2.log"])
          if (existsSync(`${lab.plan.dir}/${f}`))
            console.log(f, readFileSync(`${lab.plan.dir}/${f}`, "utf8").slice(0, 4000));
      }
    } finally {
      await lab?.down();
    }
  });

  it("the right password (and GTSM, TTL 255) establishes and carries routes", async () => {
    mux1 = await startSpeaker(lab, "mux1", {
      asn: 65101,
      routerId: "192.0.2.2",
      holdTimeSec: 9,
      idleHoldMs: 300,
      peers: [
        {
          address: "192.0.2.1",
          asn: 65000,
          localAddress: "192.0.2.2",
          md5Password: "s3cret-mux1",
          gtsmHops: 1,
          families: ["ipv4"],
        },
      ],
      announce: ["20.20.20.100/32"],
    });
    await waitEstablished(mux1, 1, 30_000);
    await pollUntil(async () => (await fibNextHops(lab, "edge", "20.20.20.100")).length === 1, {
      timeoutMs: 15_000,
      what: "the VIP in the edge FIB over the MD5 session",
    });
    // The segments on the wire carry the MD5 option (kind 19).
    const cap = lab.spawn(
      "edge",
      ["tcpdump", "-c", "3", "-nvi", "eth2", "tcp port 179"],
      "tcpdump-md5",
    );
    await new Promise((r) => cap.on("exit", r));
    const { readFileSync } = await import("node:fs");
    const dump = readFileSync(`${lab.plan.dir}/tcpdump-md5.log`, "utf8");
    expect(dump).toMatch(/md5/i);
    expect(dump).toMatch(/ttl 255/);
  });

  it("a wrong password never establishes", async () => {
    mux2 = await startSpeaker(lab, "mux2", {
      asn: 65102,
      routerId: "192.0.2.6",
      holdTimeSec: 9,
      idleHoldMs: 300,
      idleHoldMaxMs: 1000,
      connectRetryMs: 2000,
      peers: [
        {
          address: "192.0.2.5",
          asn: 65000,
          localAddress: "192.0.2.6",
          md5Password: "wrong",
          families: ["ipv4"],
        },
      ],
    });
    const deadline = Date.now() + 12_000;
    while (Date.now() < deadline) {
      expect(await frrState("192.0.2.6")).not.toBe("Established");
      const st = await mux2.call<{
        peers: { state: string; counters: { established: number; connectAttempts: number } }[];
      }>("status");
      expect(st.peers[0]!.counters.established).toBe(0);
      await new Promise((r) => setTimeout(r, 500));
    }
    const st = await mux2.call<{ peers: { counters: { connectAttempts: number } }[] }>("status");
    expect(st.peers[0]!.counters.connectAttempts).toBeGreaterThan(1); // kept retrying, with back-off
  });

  it("a passive speaker: FRR connects to vipmux's listener, accepted with the per-peer key and the multihop TTL", async () => {
    await mux2.call("shutdown", { communication: "wrong password test over" });
    passive = await startSpeaker(
      lab,
      "mux2",
      {
        asn: 65102,
        routerId: "192.0.2.6",
        holdTimeSec: 9,
        peers: [
          {
            address: "192.0.2.5",
            asn: 65000,
            localAddress: "192.0.2.6",
            md5Password: "s3cret-mux2",
            passive: true,
            multihopTtl: 7, // eBGP multihop TTL, applied to the accepted socket
            families: ["ipv4"],
          },
        ],
      },
      "vipmux-mux2-passive",
    );
    await waitEstablished(passive, 1, 40_000);
    // The session's local port is 179: the edge opened it, through the MD5-keyed listener.
    const ss = await lab.must("mux2", ["ss", "-Htn", "state", "established", "sport = :179"]);
    expect(ss.trim().split("\n").filter(Boolean)).toHaveLength(1);
    const st = await passive.call<{ peers: { counters: { connectAttempts: number } }[] }>("status");
    expect(st.peers[0]!.counters.connectAttempts).toBe(0);
    // What mux2 sends leaves with the configured TTL (Linux would use 64).
    const cap = lab.spawn(
      "edge",
      ["tcpdump", "-c", "2", "-nvi", "eth3", "tcp port 179 and src host 192.0.2.6"],
      "tcpdump-ttl",
    );
    await new Promise((r) => cap.on("exit", r));
    const { readFileSync } = await import("node:fs");
    expect(readFileSync(`${lab.plan.dir}/tcpdump-ttl.log`, "utf8")).toMatch(/ttl 7,/);
  });

  it("a password changed at run time: the listener accepts the new key and refuses the old one", async () => {
    const frr = (...commands: string[]) =>
      lab.must("edge", [
        "vtysh",
        "-c",
        "conf t",
        "-c",
        "router bgp 65000",
        ...commands.flatMap((c) => ["-c", c]),
      ]);
    // FRR retries every second: refused attempts show at once.
    await frr("neighbor 192.0.2.6 timers connect 1");
    // Segments mux2's kernel dropped for a wrong signature (per network namespace).
    const md5Failures = async () => {
      const out = await lab.must("mux2", ["nstat", "-asz", "TcpExtTCPMD5Failure"]);
      return Number(/TcpExtTCPMD5Failure\s+(\d+)/.exec(out)?.[1] ?? "0");
    };
    const peer = {
      address: "192.0.2.5",
      asn: 65000,
      localAddress: "192.0.2.6",
      passive: true,
      multihopTtl: 7,
      families: ["ipv4"],
    };
    // What a config reload does with a changed password (src/controller/mux.ts reloadPeers):
    // the peer is removed (its session ends, its key leaves the listener) and added again.
    await passive.call("remove-peer", { address: "192.0.2.5", communication: "password changed" });
    const failuresBefore = await md5Failures();
    await passive.call("add-peer", { peer: { ...peer, md5Password: "n3w-s3cret-mux2" } });

    // FRR still signs with the old key: every attempt is dropped by mux2's kernel.
    await pollUntil(async () => (await md5Failures()) >= failuresBefore + 3, {
      timeoutMs: 30_000,
      what: "FRR's connections with the old key refused at mux2",
    });
    const stale = await passive.call<{
      peers: { state: string; counters: { established: number } }[];
    }>("status");
    expect(stale.peers[0]!.state).not.toBe("Established");
    expect(stale.peers[0]!.counters.established).toBe(0);
    expect(await frrState("192.0.2.6")).not.toBe("Established");

    // FRR gets the new key: its next attempt is accepted through the listener.
    await frr("neighbor 192.0.2.6 password n3w-s3cret-mux2");
    await waitEstablished(passive, 1, 40_000);
    const ss = await lab.must("mux2", ["ss", "-Htn", "state", "established", "sport = :179"]);
    expect(ss.trim().split("\n").filter(Boolean)).toHaveLength(1);
    const st = await passive.call<{ peers: { counters: { connectAttempts: number } }[] }>("status");
    expect(st.peers[0]!.counters.connectAttempts).toBe(0);
  });
});
