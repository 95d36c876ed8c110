// `vipmux status` as text: every column as wide as its widest value, so IPv6 peers, 4-octet
// AS numbers, long names and IPv6 VIPs keep the tables in line.
import { describe, expect, it } from "vitest";
import type { MuxStatus } from "../../../src/api/status.ts";
import { formatStatus } from "../../../src/cli/run.ts";
import { formatTable } from "../../../src/cli/table.ts";

const longPeer = "2001:db8:ffff:ffff:ffff:ffff:ffff:1";

const status: MuxStatus = {
  node: "mux1",
  uptimeSeconds: 10,
  muxHealthy: true,
  forwarderHeartbeatAgeMs: 1,
  peers: [
    {
      name: "edge6",
      address: longPeer,
      asn: 4200000000,
      state: "Established",
      establishedForMs: 1000,
      prefixesSent: 12345,
      prefixesReceived: 0,
      lastError: "",
    },
    {
      name: "edge1",
      address: "192.0.2.1",
      asn: 65000,
      state: "Active",
      establishedForMs: null,
      prefixesSent: 0,
      prefixesReceived: 0,
      lastError: "connect: ECONNREFUSED",
    },
  ],
  bfd: [],
  services: [
    {
      name: "a-service-with-a-long-name",
      vip: "2001:db8:ffff:ffff:ffff:ffff:ffff:100",
      healthy: 2,
      total: 2,
      announced: true,
      reason: "healthy",
      state: "healthy",
    },
    {
      name: "web",
      vip: "20.20.20.100",
      healthy: 0,
      total: 2,
      announced: false,
      reason: "below min-healthy (0 < 1)",
      state: "below-min-healthy",
    },
  ],
  announced: [],
  backends: [
    {
      service: "a-service-with-a-long-name",
      dip: "2001:db8:ffff:ffff:ffff:ffff:ffff:1011",
      host: "2001:db8:ffff:ffff:ffff:ffff:ffff:2",
      weight: 100,
      healthy: true,
      drained: false,
    },
    {
      service: "web",
      dip: "10.10.1.11",
      host: "198.51.100.2",
      weight: 1,
      healthy: null,
      drained: true,
    },
  ],
  admin: { muxDraining: false, servicesDraining: [] },
  hostAgents: { expected: [], connected: [] },
};

/** Where each header word starts, and the cells of a row cut at those columns. */
function columns(header: string, names: string[]): number[] {
  return names.map((n) => header.indexOf(n));
}

describe("formatStatus", () => {
  const text = formatStatus(status).split("\n");
  const table = (first: string) => {
    const start = text.findIndex((l) => l.startsWith(first));
    const end = text.indexOf("", start);
    return text.slice(start, end === -1 ? undefined : end);
  };

  it("peers: an IPv6 peer and a 4-octet AS keep every column in line", () => {
    const [header, v6, v4] = table("PEER");
    const at = columns(header!, ["PEER", "AS", "STATE", "BFD", "SENT", "LAST ERROR"]);
    expect(at.every((x, i) => i === 0 || x > at[i - 1]!)).toBe(true);
    // Each value starts at its column (SENT is right-aligned: it ends where SENT ends).
    expect(v6!.slice(at[0]!).startsWith(longPeer)).toBe(true);
    expect(v6!.slice(at[1]!).startsWith("4200000000 ")).toBe(true);
    expect(v6!.slice(at[2]!).startsWith("Established ")).toBe(true);
    expect(v4!.slice(at[1]!).startsWith("65000 ")).toBe(true);
    expect(v4!.slice(at[2]!).startsWith("Active ")).toBe(true);
    expect(v4!.slice(at[3]!).startsWith("- ")).toBe(true);
    const sentEnd = at[4]! + "SENT".length;
    expect(v6!.slice(0, sentEnd).endsWith(" 12345")).toBe(true);
    expect(v4!.slice(0, sentEnd).endsWith(" 0")).toBe(true);
    expect(v4!.slice(at[5]!)).toBe("connect: ECONNREFUSED");
    // Columns apart by at least two spaces, even after the longest value.
    expect(v6!.slice(at[0]! + longPeer.length, at[1]!)).toMatch(/^ {2,}$/);
  });

  it("services and backends: long names and IPv6 addresses too", () => {
    const [sh, s1, s2] = table("SERVICE");
    const sat = columns(sh!, ["SERVICE", "VIP", "HEALTHY", "ANNOUNCED", "REASON"]);
    expect(s1!.slice(sat[1]!).startsWith("2001:db8:ffff:ffff:ffff:ffff:ffff:100 ")).toBe(true);
    expect(s1!.slice(sat[2]!).startsWith("2/2 ")).toBe(true);
    expect(s2!.slice(sat[3]!).startsWith("no ")).toBe(true);
    expect(s2!.slice(sat[4]!)).toBe("below min-healthy (0 < 1)");
    const [bh, b1, b2] = table("BACKEND");
    const bat = columns(bh!, ["BACKEND", "HOST", "WEIGHT", "HEALTH"]);
    expect(b1!.slice(bat[1]!).startsWith("2001:db8:ffff:ffff:ffff:ffff:ffff:2 ")).toBe(true);
    expect(b1!.slice(bat[2]!).startsWith("100 ")).toBe(true);
    expect(b1!.slice(bat[3]!)).toBe("up");
    expect(b2!.slice(bat[3]!)).toBe("unknown (drained)");
  });

  it("no line ends in blanks", () => {
    for (const l of text) expect(l).toBe(l.trimEnd());
  });
});

describe("formatTable", () => {
  it("pads to the widest cell, right-aligns where asked, leaves no blanks at the end", () => {
    expect(
      formatTable(
        ["A", "NUMBER", "NOTE"],
        [
          ["x", "1", "short"],
          ["longer", "12345", ""],
        ],
        ["left", "right", "left"],
      ),
    ).toEqual(["A       NUMBER  NOTE", "x            1  short", "longer   12345"]);
  });
});
