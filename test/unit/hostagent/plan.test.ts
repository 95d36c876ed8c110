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
import { type DesiredState, isOwnLinkName, plan } from "../../../src/hostagent/plan.ts";

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
    links: d.links.map((l, i) => ({ ...l, index: 10 + i, kind: "vxlan", up: true })),
    tables: parseNftRuleset(d.tables.map((t) => t.text).join(""), "vipmux-"),
    routes: d.routes,
    rules: d.rules,
    sysctls: Object.fromEntries(d.sysctls.map((s) => [s.key, s.value])),
  };
}

describe("plan", () => {
  it("one VXLAN device per VNI with local backends, bound to the PA, with the inner MAC", () => {
    const d = plan(cfg(WEB + DNS));
    expect(d.links).toEqual([
      { name: "vmx-100", vni: 100, local: "198.51.100.2", port: 4789, mac: "02:76:6d:78:00:01" },
      { name: "vmx-200", vni: 200, local: "198.51.100.2", port: 4789, mac: "02:76:6d:78:00:01" },
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
    expect(d.tables.map((t) => t.table)).toEqual(["vipmux-svc-web", "vipmux-host"]);
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
    expect(d.routes).toEqual([
      { dst: "20.20.20.101/32", table: 4789, via: ["10.10.1.12", "10.10.1.13"] },
    ]);
    expect(d.rules).toEqual([
      { priority: 4789, family: 4, iif: "vmx-100", dst: "20.20.20.101/32", table: 4789 },
    ]);
    // The guard lets the floating VIP through and drops the rest of what VXLAN brings.
    expect(d.tables[1]!.text).toContain('iifname "vmx-*" ip daddr { 20.20.20.101 } accept');
  });

  it("a host table guards the forward path: DNATed flows pass, anything else from VXLAN drops", () => {
    const host = plan(cfg(WEB)).tables.find((t) => t.table === "vipmux-host")!;
    expect(host.text).toContain(
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
    ]);
    expect(d.rules.map(ruleKey)).toEqual([
      "4789: ipv4 from all to 20.20.20.101/32 iif vmx-100 lookup 4789",
      "4789: ipv4 from 20.20.20.101/32 lookup 254 suppress_prefixlength 0",
      "4790: ipv4 from 20.20.20.101/32 lookup 4789",
      "4789: ipv4 from all fwmark 0x10000000/0x10000000 lookup 254 suppress_prefixlength 0",
      "4790: ipv4 from all fwmark 0x10000000/0x10000000 lookup 4789",
      "4789: ipv6 from all fwmark 0x10000000/0x10000000 lookup 254 suppress_prefixlength 0",
      "4790: ipv6 from all fwmark 0x10000000/0x10000000 lookup 4789",
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

  it("disabled services are not programmed", () => {
    expect(plan(cfg(WEB.replace("vni: 100", "vni: 100\n    enabled: false"))).tables).toEqual([]);
  });
});

describe("diff", () => {
  it("from nothing: devices, sysctls, one nft transaction", () => {
    const d = plan(cfg(WEB + DNS));
    const a = diff(d, { links: [], tables: [], routes: [], rules: [], sysctls: {} });
    expect(a.map((x) => x.kind)).toEqual(["link-add", "link-add", "sysctl", "sysctl", "nft"]);
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
      { kind: "nft", put: [], del: ["vipmux-svc-dns"] },
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
    expect(diff(after, observedFrom(before)).map((x) => x.kind)).toEqual([
      "route-del",
      "route-add",
    ]);
  });

  it("cleanup (empty desired) removes everything observed", () => {
    const d = plan(cfg(WEB + DNS));
    const a = diff(emptyState(), observedFrom(d));
    expect(a.map((x) => x.kind)).toEqual(["nft", "link-del", "link-del", "conntrack-flush"]);
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
      const r = loadHostAgentConfig(`${root}${f}`, { VIPMUX_HEALTH_TOKEN: "t0ken" });
      expect(r.ok ? "ok" : r.error).toBe("ok");
    }
  });

  it("health: token as a secret, MUX endpoints with the default port", () => {
    const text = (token: string) =>
      `node: { name: h }\nhost: { pa: 198.51.100.2 }\nhealth:\n  token: ${token}\n  muxes: [ { address: 192.0.2.2 } ]\n`;
    const r = parseHostAgentConfig(text("{ env: HA_TOKEN }"), "h.yml", { HA_TOKEN: "t" });
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
