// The engine's AF_PACKET input (the measured alternative to TUN, `--io packet`): it taps
// the uplink, so the MUX kernel must not forward VIP traffic itself (IP forwarding stays
// off, the lab default) and traffic to the MUX's own address (BGP, ping) still reaches its
// kernel. Each flow must arrive at a host exactly once.
//
// VIP traffic reaches mux1 through a STATIC route on the edge: this test runs the forwarding
// engine alone (no BGP speaker announces the VIPs), so the dataplane is checked by itself.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startLab, type TestLab } from "../../src/lab/testing.ts";
import {
  addonBuilt,
  capture,
  decap,
  type RunningEngine,
  sendUdpFlows,
  startEngine,
} from "../fixtures/dataplane-lab/helpers.ts";
import { canonicalTopology, isRoot, repoRoot } from "./helpers.ts";

describe.skipIf(!isRoot || !addonBuilt)("dataplane: AF_PACKET engine in the lab", () => {
  let lab: TestLab;
  let engine: RunningEngine;

  beforeAll(async () => {
    lab = await startLab(canonicalTopology, "dpp", { skipCmd: true });
    engine = await startEngine(lab, "mux1", `${repoRoot}containerlab/mux1.yml`, ["--io", "packet"]);
    await lab.must("edge", ["ip", "route", "add", "20.20.20.100/32", "via", "192.0.2.2"]);
  });

  afterAll(async () => {
    await engine?.stop();
    await lab?.down();
  });

  it("leaves the kernel's forwarding off and creates no device", async () => {
    expect((await lab.must("mux1", ["sysctl", "-n", "net.ipv4.ip_forward"])).trim()).toBe("0");
    expect(await lab.must("mux1", ["ip", "-o", "link", "show"])).not.toContain("vipmux0");
  });

  it("forwards every UDP flow exactly once as VXLAN to its host", async () => {
    const ports = Array.from({ length: 30 }, (_, i) => 32001 + i);
    let host2: Uint8Array[] = [];
    const host1 = await capture(lab, "host1", "pcap-host1", async () => {
      host2 = await capture(lab, "host2", "pcap-host2", () =>
        sendUdpFlows(lab, "client", "20.20.20.100", 7, ports),
      );
    });
    const seen: number[] = [];
    for (const [pa, pkts] of [
      ["198.51.100.2", host1],
      ["198.51.100.6", host2],
    ] as const) {
      for (const p of pkts) {
        const d = decap(p);
        expect(d.vni).toBe(100);
        expect(d.outerDst).toBe(pa);
        expect(d.outerSrc).toBe("192.0.2.2");
        seen.push((d.inner[20]! << 8) | d.inner[21]!);
      }
    }
    expect(seen.sort()).toEqual(ports);
    expect(engine.status().counters.io.txFailed).toBe(0);
  });

  it("the MUX's own traffic still reaches its kernel; the tap counts it as no service", async () => {
    const before = engine.status().counters.drops.noService ?? 0;
    await lab.must("edge", ["ping", "-c", "3", "-i", "0.2", "-W", "2", "192.0.2.2"]);
    await new Promise((r) => setTimeout(r, 300));
    expect((engine.status().counters.drops.noService ?? 0) - before).toBeGreaterThanOrEqual(3);
  });

  it("stops cleanly on SIGTERM", async () => {
    await engine.stop();
    expect(engine.child.exitCode).toBe(0);
  });
});
