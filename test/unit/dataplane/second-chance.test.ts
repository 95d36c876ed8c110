// Second chance at the MUX: a flow without an entry whose earlier owner differs from
// today's Maglev choice carries that owner's DIP MAC as inner Ethernet source, so the host
// of today's choice can hand it on (docs/dataplane.md#second-chance). Only mid-flow packets
// (never a SYN), only for flows without an entry, only during the grace period or while
// the earlier owner drains.
import { describe, expect, it } from "vitest";
import { Forwarder, type ForwarderOptions, Verdict } from "../../../src/dataplane/forwarder.ts";
import { dipMacText } from "../../../src/lb/dip-mac.ts";
import { buildForwardingTable, type ForwardingTable } from "../../../src/lb/forwarding-table.ts";
import type { BackendSpec, ServiceModel } from "../../../src/lb/service.ts";
import { formatMac } from "../../../src/packet/address.ts";
import { buildPacket } from "../packet/packets.ts";

const MUX_MAC = "02:00:00:00:00:01";
const OPTIONS: ForwarderOptions = {
  localV4: "192.168.1.2",
  localV6: "fd00:1::2",
  innerSrcMac: MUX_MAC,
  secondChanceMs: 60_000,
};
const DIPS = ["10.10.10.11", "10.10.10.12", "10.10.10.13", "10.10.10.14"];
const host = (dip: string) => `192.168.30.${dip.split(".")[3]}`;

function model(dips: string[], over: Record<string, Partial<BackendSpec>> = {}): ServiceModel {
  return {
    services: [
      {
        name: "web",
        vip: "20.20.20.100",
        ports: [
          { protocol: "tcp", port: 80 },
          { protocol: "udp", port: 53 },
        ],
        vni: 100,
        maglevSize: 1009,
        backends: dips.map((dip) => ({ dip, host: host(dip), state: "up", ...over[dip] })),
      },
    ],
  };
}

function table(m: ServiceModel, prev?: ForwardingTable): ForwardingTable {
  const r = buildForwardingTable(m, prev);
  if (!r.ok) throw new Error(r.error.join("\n"));
  return r.value;
}

const SYN = 0x02;
const ACK = 0x10;
const tcp = (sport: number, flags: number) =>
  buildPacket({ src: "198.51.100.7", dst: "20.20.20.100", proto: "tcp", sport, dport: 80, flags });
const udp = (sport: number) =>
  buildPacket({ src: "198.51.100.7", dst: "20.20.20.100", proto: "udp", sport, dport: 53 });

/** The DIP a packet went to and the inner source MAC it carried (IPv4 underlay). */
function send(f: Forwarder, pkt: Uint8Array, now: number): { dip: string; src: string } {
  expect(f.forward(pkt, pkt.length, now)).toBe(Verdict.forward);
  const dip = f.forwardingTable!.backendById[f.lastBackendId]!.dip;
  // Outer IPv4 (20) + UDP (8) + VXLAN (8) + inner destination MAC (6).
  return { dip, src: formatMac(f.out.subarray(42, 48)) };
}

describe("second chance at the MUX", () => {
  it("after a backend is added, a moved flow names the DIP the old table chose; SYNs and tracked flows never do", () => {
    const f = new Forwarder(OPTIONS);
    const old = table(model(DIPS.slice(0, 3)));
    f.setTable(old);
    const before = new Map<number, string>();
    for (let port = 20_000; port < 20_400; port++) before.set(port, send(f, tcp(port, SYN), 0).dip);
    // This MUX saw ports 20000-20199 open (they have entries); 20200-20399 stand for flows
    // that were opened through another MUX: their entries are not here.
    for (let port = 20_000; port < 20_200; port++) send(f, tcp(port, ACK), 1);
    const fresh = new Forwarder(OPTIONS);
    fresh.setTable(old);
    fresh.setTable(table(model(DIPS), old));
    f.setTable(table(model(DIPS), old));
    let hinted = 0;
    let moved = 0;
    for (let port = 20_200; port < 20_400; port++) {
      const r = send(fresh, tcp(port, ACK), 1000);
      const was = before.get(port)!;
      if (r.dip !== was) {
        moved++;
        expect(r.src).toBe(dipMacText(was));
        hinted++;
      } else expect(r.src).toBe(MUX_MAC);
      // A SYN is a new connection: today's table, no earlier owner.
      expect(send(fresh, tcp(port + 10_000, SYN), 1000).src).toBe(MUX_MAC);
    }
    expect(moved).toBeGreaterThan(20); // a quarter of the flows move to the new DIP
    expect(fresh.secondChanceHints).toBe(hinted);
    // Flows with an entry here stay on their DIP and name nobody.
    for (let port = 20_000; port < 20_200; port++) {
      const r = send(f, tcp(port, ACK), 1000);
      expect(r).toEqual({ dip: before.get(port), src: MUX_MAC });
    }
    // UDP too; and after the grace period, no more hints.
    const u = new Forwarder(OPTIONS);
    u.setTable(old);
    const udpBefore = new Map<number, string>();
    for (let port = 30_000; port < 30_200; port++) udpBefore.set(port, send(u, udp(port), 0).dip);
    const v = new Forwarder(OPTIONS);
    v.setTable(old);
    v.setTable(table(model(DIPS), old));
    let udpHints = 0;
    for (let port = 30_000; port < 30_200; port++) {
      const r = send(v, udp(port), 5_000);
      if (r.dip !== udpBefore.get(port)) {
        expect(r.src).toBe(dipMacText(udpBefore.get(port)!));
        udpHints++;
      }
    }
    expect(udpHints).toBeGreaterThan(10);
    for (let port = 31_000; port < 31_200; port++)
      expect(send(v, tcp(port, ACK), 5_000 + 60_000).src).toBe(MUX_MAC);
  });

  it("a MUX that starts with a draining DIP names it for the flows the drain moved, with no earlier table", () => {
    const all = table(model(DIPS.slice(0, 3)));
    const ref = new Forwarder(OPTIONS);
    ref.setTable(all);
    const drained = "10.10.10.12";
    const f = new Forwarder(OPTIONS);
    f.setTable(table(model(DIPS.slice(0, 3), { [drained]: { state: "draining" } })));
    let named = 0;
    for (let port = 40_000; port < 40_300; port++) {
      const was = send(ref, tcp(port, SYN), 0).dip;
      const r = send(f, tcp(port, ACK), 0);
      expect(r.dip).not.toBe(drained); // new choices never go to a draining DIP
      // The earlier owner is named exactly when it differs from today's choice: the
      // drained DIP's flows, and Maglev's small reshuffle among the others.
      expect(r.src).toBe(was === r.dip ? MUX_MAC : dipMacText(was));
      if (was === drained) named++;
      expect(send(f, tcp(port + 1000, SYN), 0).src).toBe(MUX_MAC);
    }
    expect(named).toBeGreaterThan(50);
    // A DIP that is down is named to nobody: its connections are gone.
    const g = new Forwarder(OPTIONS);
    g.setTable(all);
    g.setTable(table(model(DIPS.slice(0, 3), { [drained]: { state: "down" } }), all));
    for (let port = 40_000; port < 40_300; port++) {
      const r = send(g, tcp(port, ACK), 0);
      expect(r.src).not.toBe(dipMacText(drained));
      // (Maglev's small reshuffle among the others still names their earlier owner.)
      if (r.src !== MUX_MAC) expect(send(ref, tcp(port, SYN), 0).dip).not.toBe(r.dip);
    }
    // Off: nobody is ever named.
    const off = new Forwarder({ ...OPTIONS, secondChanceMs: 0 });
    off.setTable(table(model(DIPS.slice(0, 3), { [drained]: { state: "draining" } })));
    for (let port = 40_000; port < 40_300; port++)
      expect(send(off, tcp(port, ACK), 0).src).toBe(MUX_MAC);
  });

  it("vipmux flow shows the earlier owner the packet would name", () => {
    const f = new Forwarder(OPTIONS);
    const drained = "10.10.10.12";
    f.setTable(table(model(DIPS.slice(0, 3), { [drained]: { state: "draining" } })));
    const ref = new Forwarder(OPTIONS);
    ref.setTable(table(model(DIPS.slice(0, 3))));
    let port = 40_000;
    while (send(ref, tcp(port, SYN), 0).dip !== drained) port++;
    const pkt = tcp(port, ACK);
    expect(f.lookup(pkt, pkt.length, 0).secondChance).toEqual({
      dip: drained,
      host: host(drained),
    });
    const syn = tcp(port, SYN);
    expect(f.lookup(syn, syn.length, 0).secondChance).toBeUndefined();
  });
});
