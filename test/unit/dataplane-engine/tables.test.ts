// Table snapshots (what crosses to the worker) and the config → service model mapping.
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../../src/config/index.ts";
import { Forwarder, Verdict } from "../../../src/dataplane/forwarder.ts";
import {
  backendKey,
  restoreTable,
  serviceModelFromConfig,
  snapshotTable,
  tableVips,
} from "../../../src/dataplane/tables.ts";
import { buildForwardingTable } from "../../../src/lb/forwarding-table.ts";
import { VipMap } from "../../../src/lb/vip-map.ts";
import { buildPacket } from "../packet/packets.ts";

const CONFIG = `
node: { name: mux1, router-id: 192.0.2.2 }
bgp: { asn: 65101, next-hop-v6: "2001:db8:0:1::2", peers: [ { address: 192.0.2.1, asn: 65000 } ] }
health: { listen: "off" }
dataplane: { maglev-table-size: 65537 }
services:
  - name: web
    vip: 20.20.20.100
    ports:
      - { protocol: tcp, port: 80, backend-port: 8080 }
      - { protocol: udp, port-range: 7000-7003 }
    vni: 100
    backends:
      - { dip: 10.10.1.11, host: 198.51.100.2, weight: 2 }
      - { dip: 10.10.2.21, host: 198.51.100.6 }
  - name: off
    vip: 20.20.20.101
    enabled: false
    ports: [ { protocol: tcp, port: 80 } ]
    vni: 100
    backends: [ { dip: 10.10.1.12, host: 198.51.100.2 } ]
  - name: web6
    vip: 2001:db8:f::100
    ports: [ { protocol: tcp, port: 80 } ]
    vni: 100
    backends: [ { dip: "fd00:10:1::11", host: 198.51.100.2 } ]
`;

function config() {
  const r = parseConfig(CONFIG, "mux.yml", {});
  if (!r.ok) throw new Error(JSON.stringify(r.error));
  return r.value;
}

describe("serviceModelFromConfig", () => {
  it("maps enabled services, expands port ranges, applies health states", () => {
    const states = new Map([[backendKey("web", "10.10.2.21"), "draining" as const]]);
    const m = serviceModelFromConfig(config(), states);
    expect(m.services.map((s) => s.name)).toEqual(["web", "web6"]);
    const web = m.services[0]!;
    expect(web.ports).toEqual([
      { protocol: "tcp", port: 80 },
      { protocol: "udp", port: 7000 },
      { protocol: "udp", port: 7001 },
      { protocol: "udp", port: 7002 },
      { protocol: "udp", port: 7003 },
    ]);
    expect(web.maglevSize).toBe(65537);
    expect(web.backends).toEqual([
      { dip: "10.10.1.11", host: "198.51.100.2", weight: 2, state: "up" },
      { dip: "10.10.2.21", host: "198.51.100.6", weight: 1, state: "draining" },
    ]);
    expect(
      serviceModelFromConfig(config(), new Map(), "down").services[1]!.backends[0]!.state,
    ).toBe("down");
  });
});

describe("table snapshots", () => {
  it("a structured clone restores to a table that forwards byte for byte like the original", () => {
    const built = buildForwardingTable(serviceModelFromConfig(config()));
    if (!built.ok) throw new Error(built.error.join());
    const clone = structuredClone(snapshotTable(3, built.value));
    expect(clone.table.vips instanceof VipMap).toBe(false);
    const restored = restoreTable(clone);
    if (typeof restored === "string") throw new Error(restored);
    expect(restored.version).toBe(3);
    expect(restored.table.vips instanceof VipMap).toBe(true);
    expect(tableVips(restored.table)).toEqual(["20.20.20.100", "2001:db8:f::100"]);

    const opts = {
      localV4: "192.0.2.2",
      innerDstMac: "02:00:00:00:00:01",
      innerSrcMac: "02:00:00:00:00:02",
    };
    const a = new Forwarder(opts);
    const b = new Forwarder(opts);
    expect(a.setTable(built.value).ok).toBe(true);
    expect(b.setTable(restored.table).ok).toBe(true);
    for (let i = 0; i < 300; i++) {
      const p = buildPacket({
        src: `203.0.113.${1 + (i % 250)}`,
        dst: i % 3 === 0 ? "2001:db8:f::100" : "20.20.20.100",
        proto: i % 2 ? "tcp" : "udp",
        sport: 2000 + i,
        dport: i % 2 ? 80 : 7000 + (i % 5),
      });
      const va = a.forward(p, p.length, 1000);
      const vb = b.forward(p, p.length, 1000);
      expect(vb).toBe(va);
      if (va === Verdict.forward)
        expect([...b.out.subarray(0, b.outLength)]).toEqual([...a.out.subarray(0, a.outLength)]);
    }
    expect(a.counters().forwarded).toBeGreaterThan(100);
  });

  it("refuses a snapshot of unknown shape instead of throwing", () => {
    expect(restoreTable(undefined)).toMatch(/no version or table/);
    expect(restoreTable({ version: 1, table: { vips: {} } })).toMatch(/VIP map/);
    expect(() => snapshotTable(0, {} as never)).toThrow(RangeError);
  });
});
