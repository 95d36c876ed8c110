// The host agent's planning, diff and nft round trip, without root: config in, desired
// kernel state and actions out.
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import {
  type HostAgentConfig,
  loadHostAgentConfig,
  parseHostAgentConfig,
} from "../../../src/config/host-agent.ts";
import { emptyState } from "../../../src/hostagent/agent.ts";
import {
  diff,
  nftScript,
  type ObservedState,
  parseNftRuleset,
  ruleKey,
} from "../../../src/hostagent/diff.ts";
import { formatMultipath, parseMultipath } from "../../../src/hostagent/kernel.ts";
import {
  type DesiredState,
  isDipTable,
  isOwnLinkName,
  isPassTable,
  plan,
} from "../../../src/hostagent/plan.ts";
import { ensureSecretFile } from "../../../src/lab/secrets.ts";
import { DIP_MARK_MASK, dipMark } from "../../../src/lb/dip-mac.ts";

const root = fileURLToPath(new URL("../../../", import.meta.url));

function cfg(services: string, host = "pa: 198.51.100.2"): HostAgentConfig {
  const r = parseHostAgentConfig(
    `node: { name: h }\nhost: { ${host} }\nservices:\n${services}`,
    "t.yml",
  );
  if (!r.ok) throw new Error(r.error.map((e) => `${e.path}: ${e.message}`).join("\n"));
  return r.value;
}

const WEB = `
  - name: web
    vip: 20.20.20.100
    ports: [ { protocol: tcp, port: 80, backend-port: 8080 }, { protocol: udp, port: 7, backend-port: 7007 } ]
    vni: 100
    backends:
      - { dip: 10.10.1.12, host: 198.51.100.2 }
      - { dip: 10.10.1.11, host: 198.51.100.2 }
      - { dip: 10.10.2.21, host: 198.51.100.6 }
`;
const DNS = `
  - name: dns
    vip: 20.20.20.53
    ports: [ { protocol: udp, port: 53 } ]
    distribution: 2-tuple
    vni: 200
    backends: [ { dip: 10.10.1.13, host: 198.51.100.2 } ]
`;

/** What the kernel would report after applying `d` (what `observe` reads back). */
function observedFrom(d: DesiredState): ObservedState {
  return {
    links: d.links.map((l, i) => ({ ...l, index: 10 + i, kind: "vxlan", up: true, noarp: true })),
    tables: parseNftRuleset(d.tables.map((t) => t.text).join(""), "vipmux-"),
    routes: d.routes,
    rules: d.rules,
    sysctls: Object.fromEntries(d.sysctls.map((s) => [s.key, s.value])),
  };
}

describe("plan", () => {
  it("one VXLAN device per VNI with local backends, bound to the PA, with the inner MAC", () => {
    const d = plan(cfg(WEB + DNS));
    // VNI 100 has a DIP on another host: its FDB entry is second chance's (below).
    expect(d.links).toEqual([
      {
        name: "vmx-100",
        vni: 100,
        local: "198.51.100.2",
        port: 4789,
        mac: "02:76:6d:78:00:01",
        fdb: [{ mac: "02:76:0a:0a:02:15", dst: "198.51.100.6" }],
      },
      {
        name: "vmx-200",
        vni: 200,
        local: "198.51.100.2",
        port: 4789,
        mac: "02:76:6d:78:00:01",
        fdb: [],
      },
    ]);
    expect(d.sysctls).toEqual([
      { key: "net/ipv4/conf/vmx-100/rp_filter", value: "0" },
      { key: "net/ipv4/conf/vmx-200/rp_filter", value: "0" },
    ]);
    expect(d.required.map((r) => r.key)).toEqual([
      "net/ipv4/ip_forward",
      "net/ipv4/conf/all/rp_filter",
    ]);
  });

  it("a host with no backend of a service gets nothing for it", () => {
    const d = plan(cfg(WEB + DNS, "pa: 198.51.100.6"));
    expect(d.links.map((l) => l.name)).toEqual(["vmx-100"]);
    expect(d.tables.map((t) => t.table)).toEqual([
      "vipmux-svc-web",
      "vipmux-vni-100",
      "vipmux-host",
    ]);
    expect(d.tables[0]!.text).toContain("dnat ip to 10.10.2.21:8080");
    expect(plan(cfg(WEB, "pa: 198.51.100.9")).tables).toEqual([]);
    expect(d.tables[0]!.text).not.toContain("10.10.1.1");
  });

  it("DNATs on the service's device to local DIPs by a seeded jhash of the 5-tuple", () => {
    const web = plan(cfg(WEB)).tables[0]!;
    expect(web.text).toContain(
      'iifname "vmx-100" ip daddr 20.20.20.100 tcp dport 80 counter dnat ip to jhash ip saddr . ip daddr . tcp sport . tcp dport mod 2 seed 0x766d7578 map { 0 : 10.10.1.11, 1 : 10.10.1.12 } :8080 comment "tcp 20.20.20.100 80"',
    );
    expect(web.text).toContain(
      "udp dport 7 counter dnat ip to jhash ip saddr . ip daddr . udp sport . udp dport mod 2",
    );
    expect(web.text).toMatch(
      /^table inet vipmux-svc-web \{\n\tcomment "vipmux web"\n\tchain prerouting \{\n\t\tcomment "vipmux web [0-9a-f]{16}"\n/,
    );
    expect(web.endpoints).toEqual([
      { protocol: "tcp", vip: "20.20.20.100", first: 80, last: 80 },
      { protocol: "udp", vip: "20.20.20.100", first: 7, last: 7 },
    ]);
  });

  it("2-tuple and 3-tuple hash on the addresses only; one DIP needs no hash", () => {
    const two = WEB.replace("vni: 100", "vni: 100\n    distribution: 2-tuple");
    expect(plan(cfg(two)).tables[0]!.text).toContain("jhash ip saddr . ip daddr mod 2");
    const three = WEB.replace("vni: 100", "vni: 100\n    distribution: 3-tuple");
    expect(plan(cfg(three)).tables[0]!.text).toContain("jhash ip saddr . ip daddr mod 2");
    expect(plan(cfg(DNS)).tables[0]!.text).toContain(
      "udp dport 53 counter dnat ip to 10.10.1.13:53 ",
    );
  });

  it("weights become jhash slots (divided by their gcd); weight 0 takes no new flows", () => {
    const w = WEB.replace(
      "{ dip: 10.10.1.12, host: 198.51.100.2 }",
      "{ dip: 10.10.1.12, host: 198.51.100.2, weight: 4 }",
    ).replace(
      "{ dip: 10.10.1.11, host: 198.51.100.2 }",
      "{ dip: 10.10.1.11, host: 198.51.100.2, weight: 2 }",
    );
    expect(plan(cfg(w)).tables[0]!.text).toContain(
      "mod 3 seed 0x766d7578 map { 0 : 10.10.1.11, 1 : 10.10.1.12, 2 : 10.10.1.12 } :8080",
    );
    const drained = WEB.replace(/host: 198\.51\.100\.2 \}/g, "host: 198.51.100.2, weight: 0 }");
    const t = plan(cfg(drained)).tables[0]!.text;
    expect(t).toContain('tcp dport 80 counter drop comment "tcp 20.20.20.100 80"');
    expect(t).not.toContain("dnat");
  });

  it("IPv6: ip6 matches, bracketed single targets, forwarding requirement", () => {
    const d = plan(
      cfg(`
  - name: web6
    vip: 2001:db8:f::100
    ports: [ { protocol: tcp, port: 80, backend-port: 8080 } ]
    vni: 101
    backends: [ { dip: "fd00:10:1::11", host: 198.51.100.2 } ]
`),
    );
    expect(d.tables[0]!.text).toContain(
      'iifname "vmx-101" ip6 daddr 2001:db8:f::100 tcp dport 80 counter dnat ip6 to [fd00:10:1::11]:8080',
    );
    expect(d.required.map((r) => r.key)).toEqual(["net/ipv6/conf/all/forwarding"]);
  });

  it("port ranges keep their ports", () => {
    const d = plan(
      cfg(`
  - name: range
    vip: 20.20.20.100
    ports: [ { protocol: tcp, port-range: 8000-8099 } ]
    vni: 100
    backends: [ { dip: 10.10.1.11, host: 198.51.100.2 } ]
`),
    );
    expect(d.tables[0]!.text).toContain(
      "tcp dport 8000-8099 counter dnat ip to 10.10.1.11 comment",
    );
    expect(d.tables[0]!.endpoints).toEqual([
      { protocol: "tcp", vip: "20.20.20.100", first: 8000, last: 8099 },
    ]);
  });

  it("floating IP: no NAT; a policy rule on the VNI's device and a route VIP via the DIPs", () => {
    const d = plan(
      cfg(`
  - name: float
    vip: 20.20.20.101
    ports: [ { protocol: udp, port: 53 } ]
    vni: 100
    backends:
      - { dip: 10.10.1.13, host: 198.51.100.2, floating-ip: true }
      - { dip: 10.10.1.12, host: 198.51.100.2, floating-ip: true }
      - { dip: 10.10.2.22, host: 198.51.100.6, floating-ip: true }
`),
    );
    expect(d.tables[0]!.text).toContain(
      'udp dport 53 counter accept comment "udp 20.20.20.101 53"',
    );
    expect(d.tables[0]!.text).not.toContain("dnat");
    // The MUX's choice: a table per DIP (numbered by its mark) and a rule on its mark;
    // then the host's own ECMP for the rest.
    // (The remote DIP's pass route and rule are second chance's: a packet passed on to
    // 10.10.2.22's host takes neither the marked rules nor the ECMP.)
    expect(d.routes).toEqual([
      { dst: "20.20.20.101/32", table: 4789, via: ["10.10.1.12", "10.10.1.13"] },
      { dst: "20.20.20.101/32", table: 0x010a010c, via: ["10.10.1.12"] },
      { dst: "20.20.20.101/32", table: 0x010a010d, via: ["10.10.1.13"] },
      { dst: "0.0.0.0/0", table: 0x02000064, via: [], dev: "vmx-100" },
    ]);
    expect(d.rules.map(ruleKey)).toEqual([
      "4789: ipv4 from all to 20.20.20.101/32 iif vmx-100 fwmark 0x10a010c/0x1ffffff lookup 17432844",
      "4789: ipv4 from all to 20.20.20.101/32 iif vmx-100 fwmark 0x10a010d/0x1ffffff lookup 17432845",
      "4790: ipv4 from all to 20.20.20.101/32 iif vmx-100 lookup 4789",
      "4789: ipv4 from all iif vmx-100 fwmark 0x2000000/0x2000000 lookup 33554532",
    ]);
    expect(
      d.routes.every((r) => r.table === 4789 || isDipTable(r.table) || isPassTable(r.table)),
    ).toBe(true);
    // The guard lets the floating VIP through and drops the rest of what VXLAN brings.
    expect(d.tables.find((t) => t.table === "vipmux-host")!.text).toContain(
      'iifname "vmx-*" ip daddr { 20.20.20.101 } accept',
    );
    // A failing DIP loses its marked route: its marked packets take the ECMP over the rest.
    const one = plan(
      cfg(`
  - name: float
    vip: 20.20.20.101
    ports: [ { protocol: udp, port: 53 } ]
    vni: 100
    backends:
      - { dip: 10.10.1.13, host: 198.51.100.2, floating-ip: true }
      - { dip: 10.10.1.12, host: 198.51.100.2, floating-ip: true }
`),
      new Set(["float/10.10.1.12"]),
    );
    expect(one.routes).toEqual([{ dst: "20.20.20.101/32", table: 4789, via: ["10.10.1.13"] }]);
    expect(one.rules.map(ruleKey)).toEqual([
      "4790: ipv4 from all to 20.20.20.101/32 iif vmx-100 lookup 4789",
    ]);
  });

  it("a host table guards the forward path: DNATed flows pass, anything else from VXLAN drops", () => {
    const host = plan(cfg(WEB)).tables.find((t) => t.table === "vipmux-host")!;
    expect(host.text).toContain(
      '\t\ttype filter hook forward priority filter; policy accept;\n\t\tiifname "vmx-*" ct status dnat accept\n\t\tmeta mark and 0x02000000 == 0x02000000 iifname . oifname { "vmx-100" . "vmx-100" } counter accept comment "second chance"\n\t\tiifname "vmx-*" counter drop comment "no service"\n\t}',
    );
    // Without second chance (or a remote DIP) only DNATed flows pass.
    const off = plan(cfg(WEB, "pa: 198.51.100.2, second-chance: false")).tables.find(
      (t) => t.table === "vipmux-host",
    )!;
    expect(off.text).toContain(
      '\t\ttype filter hook forward priority filter; policy accept;\n\t\tiifname "vmx-*" ct status dnat accept\n\t\tiifname "vmx-*" counter drop comment "no service"\n\t}',
    );
    expect(host.text).not.toContain("chain dsr");
    expect(host.endpoints).toEqual([]);
  });

  it("a DSR gateway: NAT marks the flow, replies get the mark, rules send them to the gateway", () => {
    const d = plan(
      cfg(
        `${WEB}
  - name: float
    vip: 20.20.20.101
    ports: [ { protocol: udp, port: 53 } ]
    vni: 100
    backends: [ { dip: 10.10.1.13, host: 198.51.100.2, floating-ip: true } ]
`,
        "pa: 198.51.100.2, gateway: 198.51.100.1, gateway-v6: 2001:db8:100:1::1, interface: eth1",
      ),
    );
    const web = d.tables.find((t) => t.table === "vipmux-svc-web")!;
    expect(web.text).toContain(
      "tcp dport 80 counter ct mark set ct mark or 0x10000000 dnat ip to jhash",
    );
    expect(d.tables.find((t) => t.table === "vipmux-host")!.text).toContain(
      "type filter hook prerouting priority mangle; policy accept;\n\t\tct direction reply ct mark and 0x10000000 == 0x10000000 meta mark set meta mark or 0x10000000",
    );
    expect(d.routes).toEqual([
      { dst: "20.20.20.101/32", table: 4789, via: ["10.10.1.13"] },
      { dst: "0.0.0.0/0", table: 4789, via: ["198.51.100.1"], dev: "eth1" },
      { dst: "::/0", table: 4789, via: ["2001:db8:100:1::1"], dev: "eth1" },
      { dst: "0.0.0.0/0", table: 0x02000064, via: [], dev: "vmx-100" },
    ]);
    expect(d.rules.map(ruleKey)).toEqual([
      "4790: ipv4 from all to 20.20.20.101/32 iif vmx-100 lookup 4789",
      "4789: ipv4 from 20.20.20.101/32 lookup 254 suppress_prefixlength 0",
      "4790: ipv4 from 20.20.20.101/32 lookup 4789",
      "4789: ipv4 from all fwmark 0x10000000/0x10000000 lookup 254 suppress_prefixlength 0",
      "4790: ipv4 from all fwmark 0x10000000/0x10000000 lookup 4789",
      "4789: ipv6 from all fwmark 0x10000000/0x10000000 lookup 254 suppress_prefixlength 0",
      "4790: ipv6 from all fwmark 0x10000000/0x10000000 lookup 4789",
      "4789: ipv4 from all iif vmx-100 fwmark 0x2000000/0x2000000 lookup 33554532",
    ]);
    // What the kernel reports back (every gateway route with its device) is no change.
    const o = observedFrom(d);
    o.routes = o.routes.map((r) => ({ ...r, dev: r.dev ?? "br0" }));
    expect(diff(d, o)).toEqual([]);
  });

  it("a failing local DIP gets no new flows; all failing: all stay (the MUXes decide)", () => {
    const both = plan(cfg(WEB)).tables[0]!;
    const one = plan(cfg(WEB), new Set(["web/10.10.1.12"])).tables[0]!;
    expect(one.text).toContain("tcp dport 80 counter dnat ip to 10.10.1.11:8080 ");
    expect(one.digest).not.toBe(both.digest);
    const all = plan(cfg(WEB), new Set(["web/10.10.1.11", "web/10.10.1.12"])).tables[0]!;
    expect(all.digest).toBe(both.digest);
    // Another service's key changes nothing here.
    expect(plan(cfg(WEB), new Set(["dns/10.10.1.12"])).tables[0]!.digest).toBe(both.digest);
  });

  it("a netdev table per VXLAN device maps each local DIP's MAC to its mark, and accepts the frame", () => {
    const d = plan(cfg(WEB + DNS));
    const vni = d.tables.find((t) => t.table === "vipmux-vni-100")!;
    expect(vni.family).toBe("netdev");
    expect(vni.device).toBe("vmx-100");
    expect(dipMark("10.10.1.12")).toBe(0x010a010c);
    expect(dipMark("fd00:10:1::12")).toBe(0x01c8307c); // dipMac 02:76:98:c8:30:7c
    expect(vni.text).toMatch(
      /^table netdev vipmux-vni-100 \{\n\tcomment "vipmux vni-100"\n\tchain ingress \{\n\t\tcomment "vipmux vni-100 [0-9a-f]{16}"\n\t\ttype filter hook ingress device "vmx-100" priority filter; policy accept;\n/,
    );
    expect(vni.text).toContain(
      '\t\tether daddr 02:76:0a:0a:01:0b counter meta mark set meta mark and 0xfe000000 or 0x010a010b meta pkttype set host comment "dip 10.10.1.11"\n' +
        '\t\tether daddr 02:76:0a:0a:01:0c counter meta mark set meta mark and 0xfe000000 or 0x010a010c meta pkttype set host comment "dip 10.10.1.12"\n' +
        '\t\tether daddr and ff:ff:00:00:00:00 == 02:76:00:00:00:00 meta pkttype other counter meta pkttype set host comment "unknown DIP"\n',
    );
    // Only this host's DIPs; the other VNI has its own table.
    expect(vni.text).not.toContain("10.10.2.21");
    expect(d.tables.find((t) => t.table === "vipmux-vni-200")!.text).toContain(
      "ether daddr 02:76:0a:0a:01:0d ",
    );
    expect(vni.endpoints).toEqual([]);
    expect(DIP_MARK_MASK & 0x10000000).toBe(0); // the default dsr-mark is outside it
  });

  it("DNAT follows the mark (the MUX's choice) first, the host's jhash after it", () => {
    const web = plan(cfg(WEB)).tables[0]!.text;
    const lines = web.split("\n").filter((l) => l.includes("tcp dport 80"));
    expect(lines.map((l) => l.trim())).toEqual([
      'iifname "vmx-100" ip daddr 20.20.20.100 tcp dport 80 meta mark and 0x01ffffff == 0x010a010b counter dnat ip to 10.10.1.11:8080 comment "dip 10.10.1.11"',
      'iifname "vmx-100" ip daddr 20.20.20.100 tcp dport 80 meta mark and 0x01ffffff == 0x010a010c counter dnat ip to 10.10.1.12:8080 comment "dip 10.10.1.12"',
      'iifname "vmx-100" ip daddr 20.20.20.100 tcp dport 80 counter dnat ip to jhash ip saddr . ip daddr . tcp sport . tcp dport mod 2 seed 0x766d7578 map { 0 : 10.10.1.11, 1 : 10.10.1.12 } :8080 comment "tcp 20.20.20.100 80"',
    ]);
    // The marked rules carry no endpoint comment: endpoints are read once per port.
    expect(plan(cfg(WEB)).tables[0]!.endpoints).toHaveLength(2);
    expect(parseNftRuleset(plan(cfg(WEB)).tables[0]!.text, "vipmux-")[0]!.endpoints).toHaveLength(
      2,
    );
    // IPv6 DIPs: bracketed targets, marks from the hash.
    const v6 = plan(
      cfg(`
  - name: web6
    vip: 2001:db8:f::100
    ports: [ { protocol: tcp, port: 80, backend-port: 8080 } ]
    vni: 101
    backends: [ { dip: "fd00:10:1::11", host: 198.51.100.2 }, { dip: "fd00:10:1::12", host: 198.51.100.2 } ]
`),
    ).tables[0]!.text;
    expect(v6).toContain(
      "meta mark and 0x01ffffff == 0x01c8307c counter dnat ip6 to [fd00:10:1::12]:8080",
    );
    // One live DIP: nothing to choose, one rule.
    expect(plan(cfg(DNS)).tables[0]!.text).not.toContain("meta mark and 0x01ffffff");
  });

  it("a failing or drained DIP loses its marked rule (its flows take the host's pick); the netdev table stays", () => {
    const both = plan(cfg(WEB));
    const failing = plan(cfg(WEB), new Set(["web/10.10.1.12"]));
    expect(failing.tables[0]!.text).not.toContain("0x010a010c");
    expect(failing.tables[0]!.text).toContain("tcp dport 80 counter dnat ip to 10.10.1.11:8080 ");
    const vni = (d: DesiredState) => d.tables.find((t) => t.table === "vipmux-vni-100")!.digest;
    expect(vni(failing)).toBe(vni(both));
    const drained = plan(
      cfg(
        WEB.replace(
          "{ dip: 10.10.1.12, host: 198.51.100.2 }",
          "{ dip: 10.10.1.12, host: 198.51.100.2, weight: 0 }",
        ),
      ),
    );
    expect(drained.tables[0]!.text).not.toContain("0x010a010c");
    expect(vni(drained)).toBe(vni(both));
    // Weights: one marked rule per DIP, whatever its slot count.
    const weighted = plan(
      cfg(
        WEB.replace(
          "{ dip: 10.10.1.12, host: 198.51.100.2 }",
          "{ dip: 10.10.1.12, host: 198.51.100.2, weight: 3 }",
        ),
      ),
    ).tables[0]!.text;
    expect(weighted.match(/== 0x010a010c counter dnat ip to 10\.10\.1\.12:8080/g)).toHaveLength(1);
  });

  it("disabled services are not programmed", () => {
    expect(plan(cfg(WEB.replace("vni: 100", "vni: 100\n    enabled: false"))).tables).toEqual([]);
  });
});

describe("diff", () => {
  it("from nothing: devices, sysctls, one nft transaction", () => {
    const d = plan(cfg(WEB + DNS));
    const a = diff(d, { links: [], tables: [], routes: [], rules: [], sysctls: {} });
    expect(a.map((x) => x.kind)).toEqual([
      "link-add",
      "link-add",
      "sysctl",
      "sysctl",
      "fdb",
      "nft",
      "route-add",
      "rule-add",
    ]);
  });

  it("applied state diffs to nothing (restart is a no-op)", () => {
    const d = plan(cfg(WEB + DNS));
    expect(diff(d, observedFrom(d))).toEqual([]);
  });

  it("changing one service replaces only its table and keeps every conntrack entry", () => {
    const before = plan(cfg(WEB + DNS));
    const after = plan(cfg(WEB.replace("backend-port: 7007", "backend-port: 7008") + DNS));
    const a = diff(after, observedFrom(before));
    expect(a).toHaveLength(1);
    expect(a[0]).toMatchObject({ kind: "nft", del: [] });
    // The host table does not depend on NAT services: untouched too.
    expect(a[0]!.kind === "nft" && a[0]!.put.map((t) => t.table)).toEqual(["vipmux-svc-web"]);
  });

  it("a DIP added to one service of a shared VNI: that service's table, the VNI's netdev table and the host table's owner map, nothing else", () => {
    const other = `
  - name: api
    vip: 20.20.20.110
    ports: [ { protocol: tcp, port: 443 } ]
    vni: 100
    backends: [ { dip: 10.10.1.11, host: 198.51.100.2 }, { dip: 10.10.1.12, host: 198.51.100.2 } ]
`;
    const before = plan(cfg(WEB + other));
    const after = plan(
      cfg(
        WEB.replace(
          "      - { dip: 10.10.2.21",
          "      - { dip: 10.10.1.14, host: 198.51.100.2 }\n      - { dip: 10.10.2.21",
        ) + other,
      ),
    );
    const a = diff(after, observedFrom(before));
    expect(a).toHaveLength(1);
    expect(a[0]!.kind === "nft" && a[0]!.put.map((t) => `${t.family} ${t.table}`)).toEqual([
      "inet vipmux-svc-web",
      "netdev vipmux-vni-100",
      "inet vipmux-host",
    ]);
    expect(a[0]!.kind === "nft" && nftScript(a[0]!.put, a[0]!.del)).toMatch(
      /^table inet vipmux-svc-web\ndelete table inet vipmux-svc-web\ntable netdev vipmux-vni-100\ndelete table netdev vipmux-vni-100\n/,
    );
  });

  it("a VXLAN device (re)created in a pass gets its netdev table and sysctl again, even when they look in place", () => {
    const d = plan(cfg(WEB + DNS));
    const o = observedFrom(d);
    o.links = o.links.filter((l) => l.name !== "vmx-200");
    const a = diff(d, o);
    expect(a.map((x) => x.kind)).toEqual(["link-add", "sysctl", "nft"]);
    expect(a[1]).toMatchObject({ sysctl: { key: "net/ipv4/conf/vmx-200/rp_filter" } });
    expect(a[2]!.kind === "nft" && a[2]!.put.map((t) => t.table)).toEqual(["vipmux-vni-200"]);
    const r = observedFrom(d);
    r.links[0] = { ...r.links[0]!, port: 8472 };
    // Its FDB entries and its pass route went with the old device too.
    expect(diff(d, r).map((x) => x.kind)).toEqual([
      "link-replace",
      "sysctl",
      "fdb",
      "nft",
      "route-add",
    ]);
  });

  it("removing a port flushes conntrack of that endpoint only", () => {
    const before = plan(cfg(WEB + DNS));
    const after = plan(
      cfg(WEB.replace(", { protocol: udp, port: 7, backend-port: 7007 }", "") + DNS),
    );
    const a = diff(after, observedFrom(before));
    expect(a.map((x) => x.kind)).toEqual(["nft", "conntrack-flush"]);
    expect(a[1]).toEqual({
      kind: "conntrack-flush",
      endpoints: [{ protocol: "udp", vip: "20.20.20.100", first: 7, last: 7 }],
    });
  });

  it("removing a service removes exactly its table, device and conntrack", () => {
    const before = plan(cfg(WEB + DNS));
    const after = plan(cfg(WEB));
    const a = diff(after, observedFrom(before));
    expect(a).toEqual([
      { kind: "nft", put: [], del: ["vipmux-svc-dns", "vipmux-vni-200"] },
      { kind: "link-del", name: "vmx-200", index: 11 },
      {
        kind: "conntrack-flush",
        endpoints: [{ protocol: "udp", vip: "20.20.20.53", first: 53, last: 53 }],
      },
    ]);
  });

  it("a device with another VNI, address or port is replaced; a wrong MAC or down is set", () => {
    const d = plan(cfg(WEB));
    const o = observedFrom(d);
    o.links[0] = { ...o.links[0]!, vni: 7 };
    expect(diff(d, o)[0]).toMatchObject({ kind: "link-replace", reason: "VNI 7" });
    o.links[0] = { ...o.links[0]!, vni: 100, mac: "02:00:00:00:00:09", up: false };
    expect(diff(d, o)[0]).toMatchObject({ kind: "link-set", mac: true, up: true });
    o.sysctls["net/ipv4/conf/vmx-100/rp_filter"] = "1";
    expect(diff(d, o).map((x) => x.kind)).toEqual(["link-set", "sysctl"]);
  });

  it("a floating route whose DIPs changed is deleted and added again", () => {
    const f = (dips: string) =>
      plan(
        cfg(`
  - name: float
    vip: 20.20.20.101
    ports: [ { protocol: udp, port: 53 } ]
    vni: 100
    backends: [ ${dips} ]
`),
      );
    const before = f("{ dip: 10.10.1.12, host: 198.51.100.2, floating-ip: true }");
    const after = f(
      "{ dip: 10.10.1.12, host: 198.51.100.2, floating-ip: true }, { dip: 10.10.1.13, host: 198.51.100.2, floating-ip: true }",
    );
    // The VNI's netdev table learns the new DIP's MAC; the marked routes and rules appear.
    expect(diff(after, observedFrom(before)).map((x) => x.kind)).toEqual([
      "nft",
      "route-del",
      "route-add",
      "route-add",
      "route-add",
      "rule-add",
      "rule-add",
    ]);
  });

  it("cleanup (empty desired) removes everything observed", () => {
    const d = plan(cfg(WEB + DNS));
    const a = diff(emptyState(), observedFrom(d));
    // FDB entries go with their devices.
    expect(a.map((x) => x.kind)).toEqual([
      "nft",
      "route-del",
      "rule-del",
      "link-del",
      "link-del",
      "conntrack-flush",
    ]);
  });
});

describe("nftables text", () => {
  it("a replace is delete + define in one script, safe when the table is absent", () => {
    const d = plan(cfg(WEB));
    const s = nftScript(d.tables.slice(0, 1), ["vipmux-svc-old"]);
    expect(
      s.startsWith(
        "table inet vipmux-svc-web\ndelete table inet vipmux-svc-web\ntable inet vipmux-svc-old\ndelete table inet vipmux-svc-old\ntable inet vipmux-svc-web {",
      ),
    ).toBe(true);
  });

  it("reads back digests and endpoints from `nft list table` output, ignoring other tables", () => {
    const listed = `table inet filter {
	chain input {
		type filter hook input priority filter; policy accept;
		tcp dport 22 accept comment "tcp 1.2.3.4 22"
	}
}
table inet vipmux-svc-web {
	comment "vipmux web"
	chain prerouting {
		comment "vipmux web 0123456789abcdef"
		type nat hook prerouting priority dstnat; policy accept;
		iifname "vmx-100" ip daddr 20.20.20.100 tcp dport 80 counter packets 3 bytes 180 dnat ip to jhash ip saddr . ip daddr . tcp sport . tcp dport mod 2 seed 0x766d7578 map { 0 : 10.10.1.11, 1 : 10.10.1.12 }:8080 comment "tcp 20.20.20.100 80"
		iifname "vmx-101" ip6 daddr 2001:db8:f::100 tcp dport 8000-8099 counter packets 0 bytes 0 dnat ip6 to fd00::1 comment "tcp 2001:db8:f::100 8000-8099"
	}
}
`;
    expect(parseNftRuleset(listed, "vipmux-svc-")).toEqual([
      {
        name: "vipmux-svc-web",
        digest: "0123456789abcdef",
        endpoints: [
          { protocol: "tcp", vip: "20.20.20.100", first: 80, last: 80 },
          { protocol: "tcp", vip: "2001:db8:f::100", first: 8000, last: 8099 },
        ],
      },
    ]);
  });
});

describe("nft list chains", () => {
  it("gives every table's digest (no endpoints: chain listings have no rules)", () => {
    const listed = `table inet vipmux-svc-web {
	chain prerouting {
		comment "vipmux web 0123456789abcdef"
		type nat hook prerouting priority dstnat; policy accept;
	}
}
table inet vipmux-host {
	chain forward {
		comment "vipmux host fedcba9876543210"
		type filter hook forward priority filter; policy accept;
	}
	chain dsr {
		type filter hook prerouting priority mangle; policy accept;
	}
}
`;
    expect(parseNftRuleset(listed, "vipmux-")).toEqual([
      { name: "vipmux-svc-web", digest: "0123456789abcdef", endpoints: [] },
      { name: "vipmux-host", digest: "fedcba9876543210", endpoints: [] },
    ]);
  });
});

describe("netlink encodings", () => {
  it("RTA_MULTIPATH round trip (IPv4 and IPv6 gateways)", () => {
    expect(parseMultipath(formatMultipath(["10.10.1.12", "10.10.1.13"]))).toEqual([
      "10.10.1.12",
      "10.10.1.13",
    ]);
    expect(parseMultipath(formatMultipath(["fd00:10:1::11"]))).toEqual(["fd00:10:1::11"]);
  });
});

describe("host-agent config", () => {
  it("the example and lab configs are valid", () => {
    for (const f of [
      "configs/host-agent.yml",
      "containerlab/host1.yml",
      "containerlab/host2.yml",
    ]) {
      // The lab's secret is made at `lab up`, never committed (src/lab/secrets.ts).
      ensureSecretFile(`${root}containerlab/health-token`);
      const r = loadHostAgentConfig(`${root}${f}`, {
        VIPMUX_HEALTH_KEY: "0123456789abcdef0123456789abcdef",
      });
      expect(r.ok ? "ok" : r.error).toBe("ok");
    }
  });

  it("health: token as a secret, MUX endpoints with the default port", () => {
    const text = (token: string) =>
      `node: { name: h }\nhost: { pa: 198.51.100.2 }\nhealth:\n  token: ${token}\n  muxes: [ { address: 192.0.2.2 } ]\n`;
    const r = parseHostAgentConfig(text("{ env: HA_TOKEN }"), "h.yml", {
      HA_TOKEN: "a-cluster-secret-0123",
    });
    expect(r.ok && r.value.health).toEqual({
      token: { env: "HA_TOKEN" },
      muxes: [{ address: "192.0.2.2", port: 7946 }],
    });
    const bad = parseHostAgentConfig(text("{ env: HA_TOKEN }"), "h.yml", {});
    expect(
      bad.ok ? [] : bad.error.map((e) => `${e.line}:${e.col} ${e.path}: ${e.message}`),
    ).toEqual(["4:10 health.token: environment variable HA_TOKEN is not set"]);
  });

  it("errors carry line:column and the field path", () => {
    const r = parseHostAgentConfig(
      "node: { name: h }\nhost:\n  pa: 1.2.3\n  inner-mac: 01:00:5e:00:00:01\n  bogus: 1\n",
      "h.yml",
    );
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.map((e) => `${e.line}:${e.col} ${e.path}: ${e.message}`)).toEqual([
      "3:7 host.pa: must be an IPv4 or IPv6 address",
      "4:14 host.inner-mac: must be a unicast MAC address like 02:76:6d:78:00:01",
      '5:3 host.bogus: unknown field "bogus"',
    ]);
  });

  it("refuses local DIPs of one VNI whose inner MACs or marks collide, and a dsr-mark over the DIP mark bits", () => {
    const r = parseHostAgentConfig(
      `node: { name: h }
host: { pa: 198.51.100.2, dsr-mark: 0x10000001 }
services:
  - name: web
    vip: 20.20.20.100
    ports: [ { protocol: tcp, port: 80 } ]
    vni: 100
    backends:
      - { dip: 10.10.1.11, host: 198.51.100.2 }
      - { dip: 11.10.1.11, host: 198.51.100.2 }
      - { dip: 109.120.0.1, host: 198.51.100.2 }
      - { dip: 12.10.1.11, host: 198.51.100.9 }
`,
      "h.yml",
    );
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.map((e) => `${e.line}:${e.col} ${e.path}: ${e.message}`)).toEqual([
      "2:37 host.dsr-mark: must not overlap the mark bits 0x03ffffff (the MUX's DIP choice and second chance)",
      "10:16 services.0.backends.1.dip: DIPs 10.10.1.11 and 11.10.1.11 of VNI 100 on this host have the same DIP mark 0x10a010b (last 3 bytes of their inner MACs 02:76:0a:0a:01:0b, 02:76:0b:0a:01:0b): the host could not tell which one a MUX chose",
      "11:16 services.0.backends.2.dip: DIP 109.120.0.1's inner MAC 02:76:6d:78:00:01 is host.inner-mac (the VXLAN device's own): choose another inner-mac",
    ]);
    // The same DIP in two services of one VNI is one DIP: fine.
    const same = parseHostAgentConfig(
      `node: { name: h }
host: { pa: 198.51.100.2 }
services:
  - { name: a, vip: 20.20.20.100, ports: [ { protocol: tcp, port: 80 } ], vni: 100, backends: [ { dip: 10.10.1.11, host: 198.51.100.2 } ] }
  - { name: b, vip: 20.20.20.101, ports: [ { protocol: tcp, port: 80 } ], vni: 100, backends: [ { dip: 10.10.1.11, host: 198.51.100.2 } ] }
`,
      "h.yml",
    );
    expect(same.ok ? "ok" : same.error).toBe("ok");
  });

  it("the MUX's service rules apply, and a host's backends of a service are all floating or all NAT", () => {
    const r = parseHostAgentConfig(
      `node: { name: h }
host: { pa: 198.51.100.2 }
services:
  - name: web
    vip: 20.20.20.100
    ports: [ { protocol: tcp, port: 80 } ]
    vni: 100
    backends:
      - { dip: 10.10.1.11, host: 198.51.100.2 }
      - { dip: 10.10.1.12, host: 198.51.100.2, floating-ip: true }
  - name: web
    vip: 20.20.20.100
    ports: [ { protocol: tcp, port: 80 } ]
    vni: 100
    backends: [ { dip: "fd00::1", host: 198.51.100.2 } ]
`,
      "h.yml",
    );
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const msgs = r.error.map((e) => `${e.path}: ${e.message}`);
    expect(msgs).toContain(
      'services.0.backends.1.floating-ip: backends of "web" on this host (198.51.100.2) must be all floating-IP or all NAT',
    );
    expect(msgs.some((m) => m.startsWith('services.1.name: duplicate service name "web"'))).toBe(
      true,
    );
    expect(
      msgs.some((m) =>
        m.startsWith(
          "services.1.backends.0.dip: DIP fd00::1 and VIP 20.20.20.100 are of different families",
        ),
      ),
    ).toBe(true);
  });
});

describe("ownership and edge cases", () => {
  it("only vmx-<vni> devices are the agent's", () => {
    expect(
      ["vmx-100", "vmx-16777215", "vmx-", "vmx-a", "vmx-100x", "vmx0"].map(isOwnLinkName),
    ).toEqual([true, true, false, false, false, false]);
  });

  it("a floating VIP whose DIPs are all drained gets no route and is not let through the guard", () => {
    const d = plan(
      cfg(`
  - name: float
    vip: 20.20.20.101
    ports: [ { protocol: udp, port: 53 } ]
    vni: 100
    backends: [ { dip: 10.10.1.13, host: 198.51.100.2, floating-ip: true, weight: 0 } ]
`),
    );
    expect(d.routes).toEqual([]);
    expect(d.tables.find((t) => t.table === "vipmux-host")!.text).not.toContain("20.20.20.101");
  });
});
