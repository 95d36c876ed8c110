// Second chance on the host (docs/dataplane.md#second-chance), without root: which earlier
// owners a MUX may name the plan knows, what it programs for a local and for a remote one
// (owner map, pass mark, FDB entry, egress rewrite, pass route and rule, NAT skip, guard
// exception), what it leaves out and why, and how the diff keeps it.
import { describe, expect, it } from "vitest";
import { type HostAgentConfig, parseHostAgentConfig } from "../../../src/config/host-agent.ts";
import { DEFAULT_INNER_SRC_MAC } from "../../../src/dataplane/engine.ts";
import {
  type Action,
  describeAction,
  diff,
  fdbScript,
  type ObservedState,
} from "../../../src/hostagent/diff.ts";
import {
  type DesiredState,
  isDipTable,
  isPassTable,
  passTable,
  plan,
} from "../../../src/hostagent/plan.ts";
import {
  DIP_MARK_MASK,
  dipMacText,
  dipMark,
  NO_OWNER_MAC,
  PASS_MARK_FLAG,
  passMark,
  VIPMUX_MARK_MASK,
} from "../../../src/lb/dip-mac.ts";

const PA = "198.51.100.2";

function cfg(services: string, host = `pa: ${PA}`): HostAgentConfig {
  const r = parseHostAgentConfig(
    `node: { name: h }\nhost: { ${host} }\nservices:\n${services}`,
    "t.yml",
  );
  if (!r.ok) throw new Error(r.error.map((e) => `${e.path}: ${e.message}`).join("\n"));
  return r.value;
}

function errors(services: string, host = `pa: ${PA}`): string[] {
  const r = parseHostAgentConfig(
    `node: { name: h }\nhost: { ${host} }\nservices:\n${services}`,
    "t.yml",
  );
  return r.ok ? [] : r.error.map((e) => `${e.path}: ${e.message}`);
}

// VNI 100: web (IPv4 VIP) and web6 (IPv6 VIP), two DIPs here, two on 198.51.100.6.
const WEB = `
  - name: web
    vip: 20.20.20.100
    ports: [ { protocol: tcp, port: 7, backend-port: 7007 } ]
    vni: 100
    backends:
      - { dip: 10.10.1.11, host: ${PA} }
      - { dip: 10.10.1.12, host: ${PA} }
      - { dip: 10.10.2.21, host: 198.51.100.6 }
      - { dip: 10.10.2.22, host: 198.51.100.6, weight: 0 }
`;
const WEB6 = `
  - name: web6
    vip: 2001:db8:f::100
    ports: [ { protocol: udp, port: 7, backend-port: 7007 } ]
    vni: 100
    backends:
      - { dip: "fd00:10:1::11", host: ${PA} }
      - { dip: "fd00:10:2::21", host: 198.51.100.6 }
`;
// A service of another VNI with one DIP, here: a hint could only name it.
const DNS = `
  - name: dns
    vip: 20.20.20.53
    ports: [ { protocol: udp, port: 53 } ]
    vni: 200
    backends: [ { dip: 10.10.1.13, host: ${PA} } ]
`;

const table = (d: DesiredState, name: string) => d.tables.find((t) => t.table === name)!;
const chainLines = (text: string, chain: string) => {
  const start = text.indexOf(`\tchain ${chain} {\n`);
  expect(start).toBeGreaterThanOrEqual(0);
  const body = text.slice(start, text.indexOf("\n\t}", start));
  return body
    .split("\n")
    .slice(1)
    .map((l) => l.trim())
    .filter((l) => !l.startsWith("comment "));
};

function observedFrom(d: DesiredState): ObservedState {
  return {
    links: d.links.map((l, i) => ({ ...l, index: 10 + i, kind: "vxlan", up: true, noarp: true })),
    tables: d.tables.map((t) => ({ name: t.table, digest: t.digest, endpoints: t.endpoints })),
    routes: d.routes,
    rules: d.rules,
    sysctls: Object.fromEntries(d.sysctls.map((s) => [s.key, s.value])),
  };
}

describe("marks and MACs", () => {
  it("the pass mark is bit 25 plus the DIP's 24 mark bits; vipmux owns bits 0-25, the default dsr-mark is outside", () => {
    expect(passMark("10.10.2.21")).toBe(0x020a0215);
    expect(dipMark("10.10.2.21")).toBe(0x010a0215);
    expect(passMark("fd00:10:2::21") & 0x00ffffff).toBe(dipMark("fd00:10:2::21") & 0x00ffffff);
    expect(PASS_MARK_FLAG & DIP_MARK_MASK).toBe(0);
    expect(VIPMUX_MARK_MASK).toBe(0x03ffffff);
    expect(VIPMUX_MARK_MASK & 0x10000000).toBe(0);
    // Pass tables (by VNI) are apart from the floating DIPs' tables (by mark).
    expect(passTable(100)).toBe(0x02000064);
    expect(isPassTable(passTable(16_777_215))).toBe(true);
    expect(isDipTable(passTable(100))).toBe(false);
    expect(isPassTable(dipMark("10.10.1.11"))).toBe(false);
    expect(isPassTable(4789)).toBe(false);
  });

  it("NO_OWNER_MAC is the MUXes' own inner source, which no DIP's MAC may be", () => {
    expect(NO_OWNER_MAC).toBe(DEFAULT_INNER_SRC_MAC);
    expect(dipMacText("109.120.0.2")).toBe(NO_OWNER_MAC);
  });
});

describe("plan", () => {
  it("names every DIP of the VNI's services: a local one by its DIP mark, a remote one by its pass mark", () => {
    const d = plan(cfg(WEB + WEB6 + DNS));
    expect(chainLines(table(d, "vipmux-host").text, "second-chance")).toEqual([
      "type filter hook prerouting priority mangle; policy accept;",
      'iifname != "vmx-*" return',
      'ct direction original ct mark and 0x03000000 != 0x00000000 meta mark set ct mark and 0x03ffffff counter return comment "second chance: as decided"',
      "ct status confirmed return",
      "tcp flags & (syn | ack) == syn return",
      'ct state new meta l4proto { tcp, udp } meta mark set iifname . ether saddr map { "vmx-100" . 02:76:0a:0a:01:0b : 0x010a010b, "vmx-100" . 02:76:0a:0a:01:0c : 0x010a010c, "vmx-100" . 02:76:0a:0a:02:15 : 0x020a0215, "vmx-100" . 02:76:0a:0a:02:16 : 0x020a0216, ' +
        `"vmx-100" . ${dipMacText("fd00:10:1::11")} : 0x0${dipMark("fd00:10:1::11").toString(16)}, "vmx-100" . ${dipMacText("fd00:10:2::21")} : 0x0${passMark("fd00:10:2::21").toString(16)} } ct mark set meta mark counter comment "second chance: earlier owner"`,
    ]);
    // A drained remote DIP (weight 0) is named too: it keeps its flows. VNI 200 has one
    // DIP, which a hint could only name as today's choice: nothing for it.
    expect(table(d, "vipmux-host").text).not.toContain("vmx-200");
    expect(d.warnings).toEqual([]);
  });

  it("a remote earlier owner: FDB entry to its host, egress rewrite to its MAC, a pass route and rule per VIP family", () => {
    const d = plan(cfg(WEB + WEB6 + DNS));
    expect(d.links.map((l) => [l.name, l.fdb])).toEqual([
      [
        "vmx-100",
        [
          { mac: "02:76:0a:0a:02:15", dst: "198.51.100.6" },
          { mac: "02:76:0a:0a:02:16", dst: "198.51.100.6" },
          { mac: dipMacText("fd00:10:2::21"), dst: "198.51.100.6" },
        ].sort((a, b) => (a.mac < b.mac ? -1 : 1)),
      ],
      ["vmx-200", []],
    ]);
    const m6 = passMark("fd00:10:2::21");
    expect(chainLines(table(d, "vipmux-vni-100").text, "egress")).toEqual([
      'type filter hook egress device "vmx-100" priority filter; policy accept;',
      `meta mark and 0x02000000 == 0x02000000 counter ether daddr set meta mark and 0x03ffffff map { ${[
        `0x0${m6.toString(16)} : ${dipMacText("fd00:10:2::21")}`,
        "0x020a0215 : 02:76:0a:0a:02:15",
        "0x020a0216 : 02:76:0a:0a:02:16",
      ]
        .sort((a, b) => Number(a.split(" ")[0]) - Number(b.split(" ")[0]))
        .join(", ")} } ether saddr set 02:76:6d:78:00:02 accept comment "second chance"`,
      'meta mark and 0x02000000 == 0x02000000 counter drop comment "second chance: no such DIP"',
    ]);
    expect(table(d, "vipmux-vni-200").text).not.toContain("egress");
    expect(d.routes).toEqual([
      { dst: "0.0.0.0/0", table: passTable(100), via: [], dev: "vmx-100" },
      { dst: "::/0", table: passTable(100), via: [], dev: "vmx-100" },
    ]);
    expect(d.rules).toEqual([
      {
        priority: 4789,
        family: 4,
        iif: "vmx-100",
        fwmark: PASS_MARK_FLAG,
        fwmask: PASS_MARK_FLAG,
        table: passTable(100),
      },
      {
        priority: 4789,
        family: 6,
        iif: "vmx-100",
        fwmark: PASS_MARK_FLAG,
        fwmask: PASS_MARK_FLAG,
        table: passTable(100),
      },
    ]);
  });

  it("what is passed on is not NATed here and passes the forward guard, only back out of its own device", () => {
    const d = plan(
      cfg(`${WEB}
  - name: float
    vip: 20.20.20.101
    ports: [ { protocol: udp, port: 53 } ]
    vni: 300
    backends:
      - { dip: 10.10.3.11, host: ${PA}, floating-ip: true }
      - { dip: 10.10.3.21, host: 198.51.100.6, floating-ip: true }
`),
    );
    expect(chainLines(table(d, "vipmux-svc-web").text, "prerouting")[1]).toBe(
      'meta mark and 0x02000000 == 0x02000000 counter accept comment "second chance: passed on"',
    );
    // A floating service NATs nothing: nothing to skip.
    expect(table(d, "vipmux-svc-float").text).not.toContain("second chance");
    expect(chainLines(table(d, "vipmux-host").text, "forward")).toEqual([
      "type filter hook forward priority filter; policy accept;",
      'iifname "vmx-*" ct status dnat accept',
      'iifname "vmx-*" ip daddr { 20.20.20.101 } accept',
      'meta mark and 0x02000000 == 0x02000000 iifname . oifname { "vmx-100" . "vmx-100", "vmx-300" . "vmx-300" } counter accept comment "second chance"',
      'iifname "vmx-*" counter drop comment "no service"',
    ]);
    // A floating VIP's pass rule comes before its ECMP rule (priority 4790): a packet
    // passed on to 10.10.3.21's host is never routed to the local 10.10.3.11.
    expect(d.rules.filter((r) => r.iif === "vmx-300").map((r) => [r.priority, r.table])).toEqual([
      [4790, 4789],
      [4789, passTable(300)],
    ]);
  });

  it("an IPv6 underlay: FDB entries to IPv6 PAs; a host of the other family cannot be reached and is left out", () => {
    const d = plan(
      cfg(
        `
  - name: web
    vip: 20.20.20.100
    ports: [ { protocol: tcp, port: 7 } ]
    vni: 100
    backends:
      - { dip: 10.10.1.11, host: "2001:db8:100:1::2" }
      - { dip: 10.10.2.21, host: "2001:db8:100:2::2" }
      - { dip: 10.10.3.21, host: 198.51.100.10 }
`,
        'pa: "2001:db8:100:1::2"',
      ),
    );
    expect(d.links[0]!.local).toBe("2001:db8:100:1::2");
    expect(d.links[0]!.fdb).toEqual([{ mac: "02:76:0a:0a:02:15", dst: "2001:db8:100:2::2" }]);
    expect(d.warnings).toEqual([
      "second chance: DIP 10.10.3.21 (VNI 100) is on 198.51.100.10, which this host's 2001:db8:100:1::2 cannot reach over VXLAN: its flows are not passed on",
    ]);
    expect(table(d, "vipmux-host").text).not.toContain("02:76:0a:0a:03:15");
  });

  it("left out, with a warning: a DIP on two hosts, remote DIPs sharing a pass mark; a remote DIP may share a local one's 24 bits", () => {
    const d = plan(
      cfg(`
  - name: a
    vip: 20.20.20.100
    ports: [ { protocol: tcp, port: 7 } ]
    vni: 100
    backends:
      - { dip: 10.10.1.11, host: ${PA} }
      - { dip: 10.10.2.21, host: 198.51.100.6 }
      - { dip: 11.10.2.21, host: 198.51.100.10 }
      - { dip: 11.10.1.11, host: 198.51.100.6 }
      - { dip: 10.10.2.30, host: 198.51.100.6 }
  - name: b
    vip: 20.20.20.102
    ports: [ { protocol: tcp, port: 7 } ]
    vni: 100
    backends: [ { dip: 10.10.1.11, host: ${PA} }, { dip: 10.10.2.30, host: 198.51.100.10 } ]
`),
    );
    expect(d.warnings).toEqual([
      "second chance: DIP 10.10.2.30 (VNI 100) is on hosts 198.51.100.10, 198.51.100.6: its flows are not passed on",
      "second chance: DIP 10.10.2.21 (VNI 100) shares its pass mark 0x020a0215 with another remote DIP: its flows are not passed on",
      "second chance: DIP 11.10.2.21 (VNI 100) shares its pass mark 0x020a0215 with another remote DIP: its flows are not passed on",
    ]);
    // 11.10.1.11 (remote, pass mark 0x020a010b) and 10.10.1.11 (local, 0x010a010b) differ.
    expect(d.links[0]!.fdb).toEqual([{ mac: "02:76:0b:0a:01:0b", dst: "198.51.100.6" }]);
    const host = table(d, "vipmux-host").text;
    expect(host).toContain('"vmx-100" . 02:76:0a:0a:01:0b : 0x010a010b');
    expect(host).toContain('"vmx-100" . 02:76:0b:0a:01:0b : 0x020a010b');
    expect(host).not.toContain("02:76:0a:0a:02:15");
  });

  it("two local DIPs and no remote one: a hint names a local DIP, nothing is passed on", () => {
    const d = plan(
      cfg(`
  - name: web
    vip: 20.20.20.100
    ports: [ { protocol: udp, port: 7 } ]
    vni: 100
    backends: [ { dip: 10.10.1.11, host: ${PA} }, { dip: 10.10.1.12, host: ${PA} } ]
`),
    );
    expect(table(d, "vipmux-host").text).toContain(
      'map { "vmx-100" . 02:76:0a:0a:01:0b : 0x010a010b, "vmx-100" . 02:76:0a:0a:01:0c : 0x010a010c }',
    );
    expect(d.links[0]!.fdb).toEqual([]);
    expect(d.routes).toEqual([]);
    expect(d.rules).toEqual([]);
    expect(table(d, "vipmux-vni-100").text).not.toContain("egress");
    expect(table(d, "vipmux-host").text).not.toContain("iifname . oifname");
  });

  it("host.second-chance: false programs none of it", () => {
    const d = plan(cfg(WEB + WEB6, `pa: ${PA}, second-chance: false`));
    for (const t of d.tables) {
      expect(t.text).not.toContain("second chance");
      expect(t.text).not.toContain("0x02000000");
    }
    expect(d.links[0]!.fdb).toEqual([]);
    expect(d.routes).toEqual([]);
    expect(d.rules).toEqual([]);
  });
});

describe("diff", () => {
  const kinds = (a: Action[]) => a.map((x) => x.kind);

  it("applied state is no change", () => {
    const d = plan(cfg(WEB + WEB6 + DNS));
    expect(diff(d, observedFrom(d))).toEqual([]);
  });

  it("a remote DIP that moves to another host: its FDB entry is deleted, then added with the new host, in one batch", () => {
    const before = plan(cfg(WEB));
    const after = plan(
      cfg(WEB.replace("10.10.2.21, host: 198.51.100.6", "10.10.2.21, host: 198.51.100.10")),
    );
    const a = diff(after, observedFrom(before));
    expect(a.map(describeAction)).toEqual([
      "FDB: delete 02:76:0a:0a:02:15 dst 198.51.100.6 on vmx-100; add 02:76:0a:0a:02:15 dst 198.51.100.10 on vmx-100",
    ]);
    const f = a[0]!;
    expect(f.kind === "fdb" && fdbScript(f.add, f.del)).toBe(
      "fdb del 02:76:0a:0a:02:15 dev vmx-100 dst 198.51.100.6 self\n" +
        "fdb replace 02:76:0a:0a:02:15 dev vmx-100 dst 198.51.100.10 self permanent\n",
    );
    // A first start adds thousands: the log line names a few.
    const many = diff(
      plan(
        cfg(
          WEB.replace(
            "      - { dip: 10.10.2.21, host: 198.51.100.6 }\n",
            Array.from(
              { length: 9 },
              (_, i) => `      - { dip: 10.10.3.${i + 1}, host: 198.51.100.6 }\n`,
            ).join(""),
          ),
        ),
      ),
      { links: [], tables: [], routes: [], rules: [], sysctls: {} },
    ).find((x) => x.kind === "fdb")!;
    expect(describeAction(many)).toMatch(
      /^FDB: add 02:76:0a:0a:02:16 dst 198\.51\.100\.6 on vmx-100, .* and 6 more$/,
    );
  });

  it("the last remote DIP leaves: its FDB entry, the pass route and rule go; the netdev and host tables are replaced, no service table", () => {
    const before = plan(cfg(WEB));
    const after = plan(
      cfg(
        WEB.replace("      - { dip: 10.10.2.21, host: 198.51.100.6 }\n", "").replace(
          "      - { dip: 10.10.2.22, host: 198.51.100.6, weight: 0 }\n",
          "",
        ),
      ),
    );
    const a = diff(after, observedFrom(before));
    expect(kinds(a)).toEqual(["fdb", "nft", "route-del", "rule-del"]);
    expect(a[0]).toMatchObject({ add: [], del: [{ dev: "vmx-100" }, { dev: "vmx-100" }] });
    expect(a[1]!.kind === "nft" && a[1]!.put.map((t) => t.table)).toEqual([
      "vipmux-vni-100",
      "vipmux-host",
    ]);
    expect(a.map(describeAction).slice(2)).toEqual([
      "delete route 0.0.0.0/0 dev vmx-100 table 33554532",
      "delete rule 4789: ipv4 from all iif vmx-100 fwmark 0x2000000/0x2000000 lookup 33554532",
    ]);
  });

  it("a device that lost NOARP gets it back", () => {
    const d = plan(cfg(WEB));
    const o = observedFrom(d);
    o.links[0] = { ...o.links[0]!, noarp: false };
    const a = diff(d, o);
    expect(a).toMatchObject([{ kind: "link-set", noarp: true, mac: false, up: false }]);
    expect(describeAction(a[0]!)).toBe("set vmx-100 arp off");
  });

  it("FDB entries the agent did not plan on its own device are removed", () => {
    const d = plan(cfg(WEB));
    const o = observedFrom(d);
    o.links[0] = {
      ...o.links[0]!,
      fdb: [...o.links[0]!.fdb, { mac: "02:76:0a:0a:09:09", dst: "198.51.100.9" }],
    };
    expect(diff(d, o).map(describeAction)).toEqual([
      "FDB: delete 02:76:0a:0a:09:09 dst 198.51.100.9 on vmx-100",
    ]);
  });
});

describe("config", () => {
  it("refuses a DIP (on any host) whose MAC is NO_OWNER_MAC, inner-mac NO_OWNER_MAC, and a dsr-mark on the pass bit", () => {
    expect(
      errors(`
  - name: web
    vip: 20.20.20.100
    ports: [ { protocol: tcp, port: 7 } ]
    vni: 100
    backends: [ { dip: 10.10.1.11, host: ${PA} }, { dip: 109.120.0.2, host: 198.51.100.6 } ]
`),
    ).toEqual([
      "services.0.backends.1.dip: DIP 109.120.0.2's inner MAC 02:76:6d:78:00:02 is the one that names no earlier owner (second chance): it cannot be told from a MUX's own",
    ]);
    expect(errors(WEB, `pa: ${PA}, inner-mac: "02:76:6d:78:00:02"`)).toEqual([
      "host.inner-mac: must not be 02:76:6d:78:00:02, the inner source of packets that name no earlier owner (a VXLAN device drops frames from its own MAC)",
    ]);
    expect(errors(WEB, `pa: ${PA}, dsr-mark: 0x02000000`)).toEqual([
      "host.dsr-mark: must not overlap the mark bits 0x03ffffff (the MUX's DIP choice and second chance)",
    ]);
    expect(cfg(WEB).host.secondChance).toBe(true);
  });
});
