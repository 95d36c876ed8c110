import { chmodSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Ajv2020 } from "ajv/dist/2020.js";
import { describe, expect, it, vi } from "vitest";
import { loadHostAgentConfig } from "../../../src/config/host-agent.ts";
import {
  configJsonSchema,
  formatConfigError,
  loadConfig,
  parseConfig,
  parseDurationMs,
  resolveSecret,
} from "../../../src/config/index.ts";
import { ensureSecretFile } from "../../../src/lab/secrets.ts";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const broken = `${root}test/fixtures/config/broken/`;
const secretsEnv = {
  VIPMUX_EDGE1_MD5: "s3cret",
  VIPMUX_HEALTH_TOKEN: "a-health-token-of-32-characters!",
  VIPMUX_HEALTH_KEY: "0123456789abcdef0123456789abcdef",
};

// One broken config per rule, with the exact line:column, field path and message a user
// sees from `vipmux validate`.
const CASES: [string, string][] = [
  [
    "backend-port-with-range",
    `backend-port-with-range.yml:9:68: services.0.ports.0.backend-port: backend-port cannot be combined with port-range (ranges keep their ports)`,
  ],
  ["bad-asn", `bad-asn.yml:5:34: bgp.peers.0.asn: Too small: expected number to be >=1`],
  [
    "bad-community",
    `bad-community.yml:5:65: bgp.peers.0.export.communities.0: must be ASN:VALUE with 16-bit parts, e.g. 65000:100`,
  ],
  [
    "bad-duration",
    `bad-duration.yml:11:36: services.0.health.interval: probe interval: expected a duration like 500ms, 1s, 2m`,
  ],
  [
    "bad-enum",
    `bad-enum.yml:11:19: services.0.distribution: must be one of: 5-tuple, 3-tuple, 2-tuple`,
  ],
  [
    "bad-hold-time",
    `bad-hold-time.yml:5:52: bgp.peers.0.hold-time: must be 0 or 3..65535 (RFC 4271 §4.2)`,
  ],
  ["bad-ip", `bad-ip.yml:8:10: services.0.vip: must be an IPv4 or IPv6 address`],
  [
    "dip-two-vnis",
    `dip-two-vnis.yml:18:16: services.1.backends.0.dip: DIP 10.10.1.11 is in service "web" with VNI 100 and here with VNI 200`,
  ],
  [
    "duplicate-backend",
    `duplicate-backend.yml:13:16: services.0.backends.1.dip: duplicate backend 10.10.1.11 (also backends.0)`,
  ],
  ["duplicate-key", `duplicate-key.yml:6:1: (yaml): Map keys must be unique`],
  [
    "duplicate-peer",
    `duplicate-peer.yml:6:18: bgp.peers.1.address: duplicate peer 192.0.2.1 (also bgp.peers.0)`,
  ],
  [
    "duplicate-service-name",
    `duplicate-service-name.yml:13:11: services.1.name: duplicate service name "web" (also services.0)`,
  ],
  [
    "duplicate-vip",
    `duplicate-vip.yml:15:14: services.1.ports.0: duplicate VIP 20.20.20.100 tcp/80: already in service "web"`,
  ],
  [
    "exec-without-command",
    `exec-without-command.yml:11:13: services.0.health.command: an exec probe needs command: [argv...]`,
  ],
  [
    "family-mismatch",
    `family-mismatch.yml:12:16: services.0.backends.0.dip: DIP fd00::11 and VIP 20.20.20.100 are of different families (NAT needs the same family)`,
  ],
  [
    "ipv6-vip-without-next-hop",
    `ipv6-vip-without-next-hop.yml:8:10: services.0.vip: IPv6 VIP 2001:db8:f::100 needs an IPv6 next hop: set bgp.next-hop-v6 or export.next-hop-v6 on each IPv4 peer`,
  ],
  [
    "min-healthy-too-high",
    `min-healthy-too-high.yml:11:18: services.0.min-healthy: min-healthy 2 exceeds the number of backends (1): the VIP could never be announced`,
  ],
  [
    "missing-required",
    `missing-required.yml:1:7: node.router-id: missing required field (expected string)`,
  ],
  [
    "port-and-range",
    `port-and-range.yml:9:14: services.0.ports.0: give exactly one of port or port-range`,
  ],
  [
    "port-range-order",
    `port-range-order.yml:9:43: services.0.ports.0.port-range: port range 9000-8000 must be FIRST-LAST within 1-65535, FIRST <= LAST`,
  ],
  [
    "port-range-overlap",
    `port-range-overlap.yml:15:14: services.1.ports.0: tcp ports 70-85 of 20.20.20.100 overlap 80 in service "web"`,
  ],
  ["router-id-v6", `router-id-v6.yml:1:32: node.router-id: must be an IPv4 address`],
  [
    "secret-env-missing",
    `secret-env-missing.yml:5:51: bgp.peers.0.password: environment variable VIPMUX_TEST_UNSET_SECRET is not set`,
  ],
  [
    "timeout-not-below-interval",
    `timeout-not-below-interval.yml:11:49: services.0.health.timeout: probe timeout (1000 ms) must be shorter than the interval (1000 ms)`,
  ],
  ["unknown-field", `unknown-field.yml:4:3: bgp.holdtime: unknown field "holdtime"`],
  [
    "unknown-service-in-policy",
    `unknown-service-in-policy.yml:5:67: bgp.peers.0.export.services.1: unknown service "wbe" in the export policy of peer 192.0.2.1`,
  ],
  [
    "yaml-syntax",
    `yaml-syntax.yml:7:1: (yaml): Flow sequence in block collection must be sufficiently indented and end with a ]`,
  ],
];

describe("broken configs: one per rule, each with line:column and path", () => {
  it("covers every file in the corpus", () => {
    const files = readdirSync(broken)
      .map((f) => f.replace(/\.yml$/, ""))
      .sort();
    expect(files).toEqual(CASES.map(([name]) => name).sort());
  });

  it.each(CASES)("%s", (name, expected) => {
    const r = loadConfig(`${broken}${name}.yml`, {});
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.map((e) => formatConfigError(e).replace(broken, ""))).toEqual([expected]);
  });
});

describe("valid configs", () => {
  // Every shipped config validates with the loader of its kind (host agent or MUX).
  const shipped = [
    ...readdirSync(`${root}configs`).map((f) => `configs/${f}`),
    ...readdirSync(`${root}containerlab`).map((f) => `containerlab/${f}`),
  ].filter((f) => f.endsWith(".yml") && !f.endsWith(".clab.yml"));

  it("there are MUX and host-agent configs to check", () => {
    expect(shipped).toContain("configs/mux.yml");
  });

  it.each(shipped)("%s validates", (f) => {
    // The lab's secret is made at `lab up`, never committed (src/lab/secrets.ts).
    ensureSecretFile(`${root}containerlab/health-token`);
    const isAgent = /host-agent|\/host\d/.test(f);
    for (const [k, v] of Object.entries(secretsEnv)) vi.stubEnv(k, v);
    const r = isAgent ? loadHostAgentConfig(`${root}${f}`) : loadConfig(`${root}${f}`, secretsEnv);
    if (!r.ok) throw new Error(r.error.map(formatConfigError).join("\n"));
    expect(r.value.services.length).toBeGreaterThan(0);
  });

  it("fills defaults and converts durations to milliseconds", () => {
    const r = parseConfig(
      `node: { name: m, router-id: 192.0.2.2 }
bgp: { asn: 65101, peers: [ { address: 192.0.2.1, asn: 65000 } ] }
health: { token: "an-inline-token-0123456789" }
services:
  - { name: s, vip: 20.20.20.1, vni: 1, ports: [ { protocol: udp, port: 53 } ],
      health: { type: udp, interval: 2s, timeout: 250ms },
      backends: [ { dip: 10.0.0.1, host: 198.51.100.2 } ] }
`,
      "inline.yml",
    );
    if (!r.ok) throw new Error(r.error.map(formatConfigError).join("\n"));
    const c = r.value;
    expect(c.bgp.peers[0]).toMatchObject({
      port: 179,
      holdTime: 9,
      passive: false,
      connectRetry: 5000,
    });
    expect(c.bgp.coalesceMs).toBe(5);
    expect(c.dataplane).toEqual({
      engine: "userspace",
      io: "tun",
      vxlanPort: 4789,
      flowTableSize: 1_000_000,
      maglevTableSize: 65_537,
      secondChance: 1_800_000,
    });
    expect(c.services[0]?.health).toMatchObject({
      interval: 2000,
      timeout: 250,
      rise: 2,
      fall: 2,
      from: "host-agent",
    });
    expect(c.services[0]).toMatchObject({
      distribution: "5-tuple",
      minHealthy: 1,
      enabled: true,
    });
    expect(c.services[0]?.backends[0]).toEqual({
      dip: "10.0.0.1",
      host: "198.51.100.2",
      weight: 1,
      floatingIp: false,
    });
  });

  it("reports every schema error at once, sorted by position", () => {
    const r = parseConfig(
      "node: { name: m, router-id: x }\nbgp: { asn: -1, peers: [], colour: red }\n",
      "multi.yml",
    );
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.map(formatConfigError)).toEqual([
      "multi.yml:1:29: node.router-id: must be an IPv4 address",
      "multi.yml:2:13: bgp.asn: Too small: expected number to be >=1",
      "multi.yml:2:24: bgp.peers: Too small: expected array to have >=1 items",
      'multi.yml:2:28: bgp.colour: unknown field "colour"',
    ]);
  });
});

describe("JSON Schema export", () => {
  it("is a valid JSON Schema that accepts the examples and rejects unknown fields", () => {
    const schema = configJsonSchema();
    const validate = new Ajv2020({ strict: false }).compile(schema);
    const example = {
      node: { name: "m", "router-id": "192.0.2.2" },
      bgp: { asn: 1, peers: [{ address: "192.0.2.1", asn: 2 }] },
    };
    expect(validate(example)).toBe(true);
    expect(validate({ ...example, bogus: 1 })).toBe(false);
    const props = (schema as { properties: Record<string, unknown> }).properties;
    expect(Object.keys(props).sort()).toEqual([
      "api",
      "bgp",
      "dataplane",
      "health",
      "node",
      "services",
    ]);
  });
});

describe("helpers", () => {
  it("parseDurationMs", () => {
    expect(["250ms", "1s", "1.5s", "2m", "1h", 300, " 3s "].map(parseDurationMs)).toEqual([
      250, 1000, 1500, 120_000, 3_600_000, 300, 3000,
    ]);
    expect(["fast", "1d", "-1s", -5, "", null].map(parseDurationMs)).toEqual([
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
    ]);
  });

  it("resolveSecret reads files and the environment, and names what is missing", () => {
    const file = join(tmpdir(), `vipmux-secret-${process.pid}`);
    writeFileSync(file, "from-file\n", { mode: 0o600 });
    chmodSync(file, 0o600);
    expect(resolveSecret({ file })).toEqual({ ok: true, value: "from-file" });
    // Like ssh with a private key: no access for others, no group write; group read is fine.
    chmodSync(file, 0o640);
    expect(resolveSecret({ file })).toEqual({ ok: true, value: "from-file" });
    chmodSync(file, 0o644);
    expect(resolveSecret({ file })).toEqual({
      ok: false,
      error: `secret file ${file} has mode 0644: others must have no access and the group no write (chmod 600 ${file})`,
    });
    chmodSync(file, 0o660);
    expect(resolveSecret({ file }).ok).toBe(false);
    chmodSync(file, 0o600);
    writeFileSync(file, " \n");
    expect(resolveSecret({ file })).toEqual({ ok: false, error: `secret file ${file} is empty` });
    expect(resolveSecret({ file: tmpdir() })).toEqual({
      ok: false,
      error: `secret file ${tmpdir()} is not a regular file`,
    });
    expect(resolveSecret({ env: "E" }, { E: "  " }).ok).toBe(false);
    expect(resolveSecret("").ok).toBe(false);
    expect(resolveSecret({ env: "X" }, { X: "from-env" })).toEqual({ ok: true, value: "from-env" });
    expect(resolveSecret("inline")).toEqual({ ok: true, value: "inline" });
    expect(resolveSecret({ env: "NOPE" }, {})).toEqual({
      ok: false,
      error: "environment variable NOPE is not set",
    });
    expect(resolveSecret({ file: "/nonexistent/key" })).toEqual({
      ok: false,
      error: "cannot read secret file /nonexistent/key: ENOENT",
    });
  });
});

describe("config reference", () => {
  it("docs/config.md is the generated reference (run `vipmux config reference > docs/config.md`)", async () => {
    const { configReference } = await import("../../../src/config/reference.ts");
    const { readFileSync } = await import("node:fs");
    const doc = readFileSync(`${root}docs/config.md`, "utf8");
    expect(doc).toBe(configReference());
    for (const field of [
      "`bgp.peers[].hold-time`",
      "`services[].backends[].dip`",
      "`services[].health.fall`",
    ])
      expect(doc).toContain(field);
  });
});
