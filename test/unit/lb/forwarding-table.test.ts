import { describe, expect, it } from "vitest";
import { BackendStateCode, buildForwardingTable } from "../../../src/lb/forwarding-table.ts";
import type { ServiceModel } from "../../../src/lb/service.ts";

const model = (backendState: "up" | "draining" | "down" = "up"): ServiceModel => ({
  services: [
    {
      name: "web",
      vip: "20.20.20.100",
      ports: [{ protocol: "tcp", port: 80 }, { protocol: "tcp", port: 443 }, { protocol: "icmp" }],
      vni: 100,
      maglevSize: 251,
      backends: [
        { dip: "10.10.10.12", host: "192.168.30.12" },
        { dip: "10.10.10.11", host: "192.168.30.11", weight: 2, state: backendState },
      ],
    },
    {
      name: "dns6",
      vip: "2001:db8:100::53",
      ports: [{ protocol: "udp", port: 53 }],
      distribution: "3-tuple",
      vni: 200,
      maglevSize: 251,
      backends: [{ dip: "fd10::1", host: "fd00:30::11" }],
    },
  ],
});

describe("forwarding table", () => {
  it("maps (VIP, proto, port) to services, including echo and the fragment fallback", () => {
    const r = buildForwardingTable(model());
    if (!r.ok) throw new Error(r.error.join("\n"));
    const t = r.value;
    const vip4 = Uint8Array.from([20, 20, 20, 100]);
    expect(t.vips.lookup(vip4, 0, 4, 6, 80)).toBe(0);
    expect(t.vips.lookup(vip4, 0, 4, 6, 443)).toBe(0);
    expect(t.vips.lookup(vip4, 0, 4, 6, 0)).toBe(0); // fragments
    expect(t.vips.lookup(vip4, 0, 4, 1, 0)).toBe(0); // echo
    expect(t.vips.lookup(vip4, 0, 4, 17, 80)).toBe(-1);
    expect(t.vips.lookup(Uint8Array.from([20, 20, 20, 101]), 0, 4, 6, 80)).toBe(-1);
    const web = t.services[0]!;
    expect(web.backends.map((b) => b.dip)).toEqual(["10.10.10.11", "10.10.10.12"]);
    expect(web.maglev.length).toBe(251);
    expect(t.services[1]!.distribution).toBe(3);
  });

  it("keeps ids across rebuilds, reuses unchanged Maglev tables and rebuilds changed ones", () => {
    const a = buildForwardingTable(model());
    if (!a.ok) throw new Error("invalid");
    const b = buildForwardingTable(model("draining"), a.value);
    if (!b.ok) throw new Error("invalid");
    expect(b.value.backendIds).toEqual(a.value.backendIds);
    expect(b.value.maglevBuilt).toBe(1); // web changed, dns6 reused
    expect(b.value.services[1]!.maglev).toBe(a.value.services[1]!.maglev);
    const drained = b.value.services[0]!.backends.find((x) => x.dip === "10.10.10.11")!;
    expect(b.value.backendState[drained.id]).toBe(BackendStateCode.draining);
    expect([...b.value.services[0]!.maglevBackends]).not.toContain(drained.id);
    // A removed service keeps its id reserved; a new one gets a fresh id.
    const c = buildForwardingTable(
      { services: [{ ...model().services[1]!, name: "other" }] },
      b.value,
    );
    if (!c.ok) throw new Error("invalid");
    expect(c.value.services[0]!.id).toBe(2);
    expect(c.value.serviceById[0]).toBeUndefined();
  });

  it("refuses an invalid model with every problem named", () => {
    const r = buildForwardingTable({
      services: [
        {
          name: "a",
          vip: "20.20.20.300",
          ports: [{ protocol: "tcp", port: 0 }],
          vni: 1 << 24,
          backends: [{ dip: "x", host: "10.0.0.1", weight: -1 }],
        },
        {
          name: "a",
          vip: "1.1.1.1",
          ports: [{ protocol: "sctp" as "tcp", port: 1 }],
          vni: 1,
          maglevSize: 1000,
          backends: [],
        },
      ],
    });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const text = r.error.join("\n");
    for (const want of [
      "vip: 20.20.20.300",
      "port: 0",
      "vni",
      "dip: x",
      "weight: -1",
      "duplicate service name",
      "protocol: sctp",
      "maglevSize: 1000",
    ]) {
      expect(text).toContain(want);
    }
  });
});
