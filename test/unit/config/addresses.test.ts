// Addresses in the config: one ADDRESS:PORT parser for validation and for the sockets the
// daemons open, BGP identifiers that RFC 6286 allows, formats in the JSON Schema, and
// `vipmux validate` of both kinds of config file.
import { spawnSync } from "node:child_process";
import { isIPv4, isIPv6 } from "node:net";
import { fileURLToPath } from "node:url";
import { Ajv2020 } from "ajv/dist/2020.js";
import { describe, expect, it } from "vitest";
import { hostAgentJsonSchema, parseHostAgentConfig } from "../../../src/config/host-agent.ts";
import { configJsonSchema, formatConfigError, parseConfig } from "../../../src/config/index.ts";
import { configKindOf, loadAnyConfig } from "../../../src/config/kind.ts";
import { speakerOptions } from "../../../src/controller/mux.ts";
import { ensureSecretFile } from "../../../src/lab/secrets.ts";
import { formatHostPort, hostPort, parseHostPort } from "../../../src/util/host-port.ts";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const TOKEN = "a-cluster-secret-of-some-length";
const mux = (o: { routerId?: string; api?: string; health?: string; bgp?: string } = {}) =>
  `node: { name: m, router-id: ${o.routerId ?? "192.0.2.2"} }
bgp: { asn: 65101, peers: [ { address: 192.0.2.1, asn: 65000 } ]${o.bgp ? `, ${o.bgp}` : ""} }
health: { token: "${TOKEN}"${o.health ? `, ${o.health}` : ""} }
${o.api ? `api: { ${o.api} }` : ""}
`;
const errors = (text: string): string[] => {
  const r = parseConfig(text, "c.yml", {});
  return r.ok ? [] : r.error.map(formatConfigError);
};

describe("ADDRESS:PORT: one parser", () => {
  it("reads IPv4, bracketed IPv6 and :PORT; refuses the rest with the fix", () => {
    expect(parseHostPort("192.0.2.2:9273")).toEqual({
      ok: true,
      value: { host: "192.0.2.2", port: 9273 },
    });
    expect(parseHostPort("[2001:db8::2]:179")).toEqual({
      ok: true,
      value: { host: "2001:db8::2", port: 179 },
    });
    expect(parseHostPort("[::]:179")).toEqual({ ok: true, value: { host: "::", port: 179 } });
    expect(parseHostPort(":7946")).toEqual({ ok: true, value: { host: "0.0.0.0", port: 7946 } });
    expect(parseHostPort("127.0.0.1:0")).toEqual({
      ok: true,
      value: { host: "127.0.0.1", port: 0 },
    });
    const error = (s: string) => {
      const r = parseHostPort(s);
      return r.ok ? `accepted as ${formatHostPort(r.value)}` : r.error;
    };
    // The old parser read "9273" as host "927", port 3.
    expect(error("9273")).toMatch(
      /^a bare port is not an address: write ADDRESS:PORT, e\.g\. 127\.0\.0\.1:9273 .* or 0\.0\.0\.0:9273/,
    );
    expect(error("localhost")).toMatch(/"localhost" is not ADDRESS:PORT.*e\.g\. 127\.0\.0\.1:PORT/);
    expect(error("localhost:9273")).toMatch(/"localhost" is not an IP address .*127\.0\.0\.1:9273/);
    expect(error("0.0.0.0")).toMatch(/"0\.0\.0\.0" has no port: write 0\.0\.0\.0:PORT/);
    expect(error("::1")).toMatch(/"::1" has no port: write \[::1\]:PORT/);
    expect(error("::1:9273")).toMatch(
      /IPv6 address needs brackets: \[::1\]:9273 \(or \[::1:9273\]:PORT\)/,
    );
    expect(error("2001:db8::x:1")).toMatch(/is not ADDRESS:PORT/);
    expect(error("0.0.0.0:99999")).toMatch(/port "99999" must be a number 0-65535/);
    expect(error("0.0.0.0:")).toMatch(/port "" must be a number/);
    expect(error("[fe80::1%eth0]:1")).toMatch(/IPv6 zone/);
    expect(error("[192.0.2.1]:1")).toMatch(/must be an IPv6 address/);
    expect(error("[::1]")).toMatch(/no :PORT after the bracketed address/);
    expect(() => hostPort("9273")).toThrow(/bare port/);
  });

  it("api.metrics, health.listen and bgp.listen are checked by it", () => {
    for (const bad of ['"9273"', "9273"])
      expect(errors(mux({ api: `metrics: ${bad}` }))).toEqual([
        expect.stringMatching(
          /^c\.yml:4:\d+: api\.metrics: a bare port is not an address: write ADDRESS:PORT, e\.g\. 127\.0\.0\.1:9273/,
        ),
      ]);
    expect(errors(mux({ api: "metrics: localhost:9273" }))).toEqual([
      expect.stringMatching(/api\.metrics: "localhost" is not an IP address/),
    ]);
    expect(errors(mux({ api: "metrics: off" }))).toEqual([
      expect.stringMatching(/api\.metrics: leave metrics out to have no metrics endpoint/),
    ]);
    for (const ok of ["127.0.0.1:9273", '"[::1]:9273"', '":9273"'])
      expect(errors(mux({ api: `metrics: ${ok}` }))).toEqual([]);
    expect(errors(mux({ health: "listen: localhost" }))).toEqual([
      expect.stringMatching(/health\.listen: "localhost" is not ADDRESS:PORT.*; or off$/),
    ]);
    expect(errors(mux({ health: "listen: 7946" }))).toEqual([
      expect.stringMatching(/health\.listen: a bare port is not an address/),
    ]);
    expect(errors(mux({ bgp: "listen: off" }))).toEqual([
      expect.stringMatching(/bgp\.listen: cannot be off/),
    ]);
  });

  it("what validate accepts is what the daemon binds", () => {
    const r = parseConfig(
      mux({ bgp: 'listen: "[2001:db8::2]:1179"', api: "metrics: 127.0.0.1:9273" }),
      "c.yml",
      {},
    );
    if (!r.ok) throw new Error(r.error.map(formatConfigError).join("\n"));
    expect(speakerOptions(r.value).listen).toMatchObject({ host: "2001:db8::2", port: 1179 });
    expect(hostPort(r.value.api.metrics!)).toEqual({ host: "127.0.0.1", port: 9273 });
  });
});

describe("node.router-id: a BGP identifier (RFC 6286) and this MUX's unicast address", () => {
  it("refuses 0.0.0.0 and non-unicast addresses", () => {
    expect(errors(mux({ routerId: "0.0.0.0" }))).toEqual([
      expect.stringMatching(
        /^c\.yml:1:29: node\.router-id: 0\.0\.0\.0 is not a BGP identifier \(RFC 6286: a non-zero value\)/,
      ),
    ]);
    for (const [id, why] of [
      ["0.1.2.3", "0.0.0.0/8"],
      ["127.0.0.1", "loopback"],
      ["224.0.0.5", "multicast"],
      ["255.255.255.255", "reserved or broadcast"],
      ["240.0.0.1", "reserved or broadcast"],
    ])
      expect(errors(mux({ routerId: id }))).toEqual([
        `c.yml:1:29: node.router-id: ${id} is not a unicast address (${why}): use this MUX's own IPv4 address (it is also the default VXLAN outer source)`,
      ]);
    expect(errors(mux({ routerId: "10.0.0.1" }))).toEqual([]);
    expect(errors(mux({ routerId: "2001:db8::1" }))).toEqual([
      "c.yml:1:29: node.router-id: must be an IPv4 address",
    ]);
  });
});

describe("JSON Schema: addresses carry their format", () => {
  // An editor's validator: ajv with the formats it knows.
  const ajv = () =>
    new Ajv2020({ strict: false })
      .addFormat("ipv4", (s: string) => isIPv4(s))
      .addFormat("ipv6", (s: string) => isIPv6(s));

  it("MUX config: router-id is ipv4, addresses ipv4 or ipv6, ADDRESS:PORT fields a pattern", () => {
    const schema = configJsonSchema() as {
      properties: Record<string, { properties: Record<string, Record<string, unknown>> }>;
    };
    expect(schema.properties.node!.properties["router-id"]).toMatchObject({ format: "ipv4" });
    expect(schema.properties.api!.properties.metrics).toMatchObject({
      pattern: expect.any(String),
    });
    const validate = ajv().compile(schema);
    const good = {
      node: { name: "m", "router-id": "192.0.2.2" },
      bgp: { asn: 1, peers: [{ address: "2001:db8::1", asn: 2 }], listen: "[::]:179" },
      health: { listen: "off" },
      api: { metrics: "127.0.0.1:9273" },
      services: [
        {
          name: "web",
          vip: "20.20.20.100",
          vni: 1,
          ports: [{ protocol: "tcp", port: 80 }],
          backends: [{ dip: "10.0.0.1", host: "198.51.100.2" }],
        },
      ],
    };
    expect(validate(good)).toBe(true);
    const bad = (patch: (c: typeof good) => void) => {
      const c = structuredClone(good);
      patch(c);
      return validate(c);
    };
    expect(bad((c) => (c.node["router-id"] = "mux1"))).toBe(false);
    expect(bad((c) => (c.bgp.peers[0]!.address = "edge.example"))).toBe(false);
    expect(bad((c) => (c.services[0]!.vip = "20.20.20"))).toBe(false);
    expect(bad((c) => (c.services[0]!.backends[0]!.host = "host1"))).toBe(false);
    expect(bad((c) => (c.api.metrics = "9273"))).toBe(false);
    expect(bad((c) => (c.api.metrics = "localhost:9273"))).toBe(false);
    expect(bad((c) => (c.health.listen = "localhost"))).toBe(false);
  });

  it("host-agent config: its own schema, with formats", () => {
    const validate = ajv().compile(hostAgentJsonSchema());
    const good = {
      node: { name: "h" },
      host: { pa: "198.51.100.2" },
      metrics: "198.51.100.2:9274",
      health: { token: TOKEN, muxes: [{ address: "192.0.2.2" }] },
    };
    expect(validate(good)).toBe(true);
    expect(validate({ ...good, host: { pa: "host1" } })).toBe(false);
    expect(validate({ ...good, metrics: "9274" })).toBe(false);
    expect(validate({ ...good, bgp: {} })).toBe(false);
  });
});

describe("vipmux validate: MUX and host-agent configs", () => {
  it("tells the kinds apart by the top-level keys", () => {
    expect(configKindOf("node: { name: h }\nhost: { pa: 198.51.100.2 }\n")).toBe("host-agent");
    expect(configKindOf(mux())).toBe("mux");
    expect(configKindOf("host: {}\nbgp: {}\n")).toBe("mux");
    expect(configKindOf("- not a map")).toBe("mux");
    expect(configKindOf("key: [unclosed")).toBe("mux");
  });

  it("a host agent's config validates as one; --kind forces a kind", () => {
    ensureSecretFile(`${root}containerlab/health-token`);
    const file = `${root}containerlab/host1.yml`;
    const r = loadAnyConfig(file);
    if (!r.result.ok) throw new Error(r.result.error.map(formatConfigError).join("\n"));
    expect(r.kind).toBe("host-agent");
    const forced = loadAnyConfig(file, "mux");
    expect(forced.kind).toBe("mux");
    expect(forced.result.ok).toBe(false);
    const agentErrors = parseHostAgentConfig("node: { name: h }\nhost: { pa: x }\n", "h.yml", {});
    expect(agentErrors.ok ? [] : agentErrors.error.map(formatConfigError)).toEqual([
      "h.yml:2:13: host.pa: must be an IPv4 or IPv6 address",
    ]);
  });

  it("the CLI", () => {
    ensureSecretFile(`${root}containerlab/health-token`);
    const vipmux = (...args: string[]) => {
      const r = spawnSync(process.execPath, [`${root}src/cli/main.ts`, ...args], {
        encoding: "utf8",
        cwd: root,
      });
      return { code: r.status, stdout: r.stdout, stderr: r.stderr };
    };
    expect(vipmux("validate", "containerlab/host1.yml")).toMatchObject({
      code: 0,
      stdout:
        "containerlab/host1.yml: valid (host agent of 198.51.100.2: 3 services, 6 of 12 backends on this host)\n",
    });
    const json = vipmux("validate", "--json", "containerlab/host1.yml");
    expect(json.code).toBe(0);
    const out = JSON.parse(json.stdout) as {
      valid: boolean;
      kind: string;
      config: { health: { token: unknown } };
    };
    expect(out).toMatchObject({ valid: true, kind: "host-agent" });
    expect(out.config.health.token).toBe("<redacted>");
    const forced = vipmux("validate", "--kind", "mux", "containerlab/host1.yml");
    expect(forced.code).toBe(1);
    expect(forced.stderr).toMatch(/host: unknown field "host"/);
    expect(vipmux("validate", "--kind", "router", "containerlab/host1.yml").code).toBe(2);
    const schema = JSON.parse(vipmux("config", "schema", "--kind", "host-agent").stdout) as {
      properties: object;
    };
    expect(Object.keys(schema.properties)).toEqual(
      expect.arrayContaining(["host", "metrics", "services"]),
    );
  });
});
