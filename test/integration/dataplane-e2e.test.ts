// End to end through the MUX engine and the host agents, with real clients and servers:
//
//   client ── edge ── mux1 (vipmux engine, TUN) ══VXLAN══► host1/host2 (vipmux host-agent)
//      ▲        ▲                                                │ DNAT ─► vm11 vm12 vm21 vm22
//      └────────┴────────────── DSR: replies from the VIP ───────┘
//
// VIP traffic reaches mux1 through a STATIC route on the edge: this test runs the forwarding
// engine alone (no BGP speaker announces the VIPs); system.test.ts runs it with BGP.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/index.ts";
import { Forwarder, Verdict } from "../../src/dataplane/forwarder.ts";
import { serviceModelFromConfig } from "../../src/dataplane/tables.ts";
import { pollUntil, startLab, type TestLab } from "../../src/lab/testing.ts";
import { buildForwardingTable } from "../../src/lb/forwarding-table.ts";
import {
  addonBuilt,
  capture,
  type RunningEngine,
  startEngine,
} from "../fixtures/dataplane-lab/helpers.ts";
import { buildPacket } from "../unit/packet/packets.ts";
import { canonicalTopology, isRoot, repoRoot } from "./helpers.ts";

const VMS = ["vm11", "vm12", "vm21", "vm22"];

/**
 * The DIP a MUX with mux1's config chooses for a new TCP flow (Maglev from the config
 * alone: every MUX computes the same answer), computed here with the same forwarder.
 */
function muxChoice(): (src: string, sport: number, vip: string, dport: number) => string {
  const cfg = loadConfig(`${repoRoot}containerlab/mux1.yml`);
  if (!cfg.ok) throw new Error("mux1.yml");
  const t = buildForwardingTable(serviceModelFromConfig(cfg.value));
  if (!t.ok) throw new Error(t.error.join("\n"));
  const f = new Forwarder({
    localV4: "192.0.2.2",
    localV6: "2001:db8:0:1::2",
    innerSrcMac: "02:76:6d:78:00:02",
  });
  f.setTable(t.value);
  return (src, sport, vip, dport) => {
    const syn = buildPacket({ src, dst: vip, proto: "tcp", sport, dport, flags: 0x02 });
    if (f.forward(syn, syn.length, 0) !== Verdict.forward) throw new Error("not forwarded");
    return f.forwardingTable!.backendById[f.lastBackendId]!.dip;
  };
}

describe.skipIf(!isRoot || !addonBuilt)(
  "dataplane: client → MUX engine → host agent → VM, DSR back",
  () => {
    let lab: TestLab;
    let engine: RunningEngine;

    beforeAll(async () => {
      lab = await startLab(canonicalTopology, "dpe", { skipCmd: true });
      for (const vm of VMS)
        lab.spawn(
          vm,
          [
            process.execPath,
            `${repoRoot}test/fixtures/hostagent-lab/backend.ts`,
            vm,
            "tcp:8080",
            "udp:7007",
          ],
          `backend-${vm}`,
        );
      for (const h of ["host1", "host2"])
        lab.spawn(
          h,
          ["vipmux", "host-agent", "--config", `${repoRoot}containerlab/${h}.yml`],
          `agent-${h}`,
        );
      engine = await startEngine(lab, "mux1", `${repoRoot}containerlab/mux1.yml`);
      await lab.must("edge", ["ip", "route", "add", "20.20.20.100/32", "via", "192.0.2.2"]);
      await lab.must("edge", [
        "ip",
        "-6",
        "route",
        "add",
        "2001:db8:f::100/128",
        "via",
        "2001:db8:0:1::2",
      ]);
      // Ready when a request through the whole path succeeds.
      await pollUntil(
        async () =>
          (await lab.exec("client", ["curl", "-s", "-m", "2", "http://20.20.20.100/"])).code === 0,
        { timeoutMs: 30_000, what: "HTTP through the VIP" },
      );
    });

    afterAll(async () => {
      await engine?.stop();
      await lab?.down();
    });

    it("HTTP to the IPv4 VIP reaches every backend; DSR: no VIP-sourced packet crosses the MUX", async () => {
      const answers: string[] = [];
      const onMux = await capture(
        lab,
        "mux1",
        "dsr-mux1",
        async () => {
          for (let i = 0; i < 24; i++)
            answers.push(
              await lab.must("client", ["curl", "-s", "-m", "5", "http://20.20.20.100/"]),
            );
        },
        "src host 20.20.20.100",
      );
      for (const a of answers)
        expect(a).toMatch(/^vm\d\d local=10\.10\.\d\.\d\d:8080 remote=203\.0\.113\.10:\d+\n$/);
      const vms = new Set(answers.map((a) => a.slice(0, 4)));
      expect(vms.size).toBeGreaterThanOrEqual(3);
      // The DIP that answered each connection is the one the MUX chose (the inner MAC
      // names it, the host agent honours it), not merely one on the chosen host.
      const choice = muxChoice();
      for (const a of answers) {
        const m = /local=(\S+):8080 remote=203\.0\.113\.10:(\d+)/.exec(a)!;
        expect(m[1], a).toBe(choice("203.0.113.10", Number(m[2]), "20.20.20.100", 80));
      }
      expect(onMux).toHaveLength(0);
      const c = engine.status().counters;
      expect(c.vips.find((v) => v.vip === "20.20.20.100")!.packets).toBeGreaterThan(24 * 3);
    });

    it("HTTP to the IPv6 VIP works", async () => {
      const a = await lab.must("client", [
        "curl",
        "-s",
        "-m",
        "5",
        "-g",
        "http://[2001:db8:f::100]/",
      ]);
      expect(a).toMatch(/^vm\d\d local=fd00:10:\d::\d\d:8080 remote=2001:db8:c::10:\d+\n$/);
      const m = /local=(\S+):8080 remote=2001:db8:c::10:(\d+)/.exec(a)!;
      expect(m[1]).toBe(muxChoice()("2001:db8:c::10", Number(m[2]), "2001:db8:f::100", 80));
    });

    it("UDP echo through the VIP answers from the VIP", async () => {
      // socat's UDP4 client is connected: it only accepts the reply from 20.20.20.100:7.
      const a = await lab.must("client", [
        "sh",
        "-c",
        "echo ping | socat -t 1 - UDP4:20.20.20.100:7",
      ]);
      expect(a).toMatch(/^vm\d\d local=0\.0\.0\.0:7007 remote=203\.0\.113\.10:\d+ ping\n/);
    });
  },
);
