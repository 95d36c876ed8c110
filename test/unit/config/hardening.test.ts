// What a config must not get past validate: a health listener without a real secret,
// addresses and paths that would crash the daemon later, and YAML built to exhaust memory.
// Plus a property test: random mutations of valid configs never make validate throw.
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseHostAgentConfig } from "../../../src/config/host-agent.ts";
import { type ConfigError, formatConfigError, parseConfig } from "../../../src/config/index.ts";
import { mutate, mutation } from "./mutate.ts";

const TOKEN = "a-cluster-secret-of-some-length";
const BASE = `node: { name: m, router-id: 192.0.2.2 }
bgp: { asn: 65101, peers: [ { address: 192.0.2.1, asn: 65000 } ] }
HEALTH
services:
  - name: web
    vip: VIP
    ports: [ { protocol: tcp, port: 80, backend-port: 8080 } ]
    vni: 100
    health: { type: http, path: PATH }
    backends: [ { dip: 10.0.0.1, host: 198.51.100.2 } ]
`;
const cfg = (o: { health?: string; vip?: string; path?: string } = {}) =>
  BASE.replace("HEALTH", o.health ?? `health: { token: "${TOKEN}" }`)
    .replace("VIP", o.vip ?? "20.20.20.100")
    .replace("PATH", o.path ?? "/healthz");
const errors = (text: string, env: NodeJS.ProcessEnv = {}): string[] => {
  const r = parseConfig(text, "c.yml", env);
  return r.ok ? [] : r.error.map(formatConfigError);
};

describe("the health listener needs a real secret", () => {
  it("no token: refused with the one-line fix; listen: off needs none", () => {
    expect(errors(cfg({ health: "" }))).toEqual([
      expect.stringMatching(
        /^c\.yml:1:1: health\.token: required while health\.listen is on: .*token: \{ file: health-token \}/,
      ),
    ]);
    expect(errors(cfg({ health: `health: { listen: "off" }` }))).toEqual([]);
    expect(errors(cfg())).toEqual([]);
  });

  it("short, empty, or loosely readable secrets are refused, next-token too", () => {
    expect(errors(cfg({ health: `health: { token: "short" }` }))).toEqual([
      expect.stringMatching(/health\.token: must be at least 16 characters/),
    ]);
    expect(errors(cfg({ health: "health: { token: { env: T } }" }), { T: "   " })).toEqual([
      expect.stringMatching(/health\.token: environment variable T is not set/),
    ]);
    const dir = mkdtempSync(join(tmpdir(), "vipmux-secret-"));
    const file = join(dir, "health-token");
    writeFileSync(file, `${TOKEN}\n`);
    chmodSync(file, 0o644);
    const text = cfg({ health: `health: { token: { file: ${file} } }` });
    expect(errors(text)).toEqual([expect.stringMatching(/has mode 0644: .*chmod 600/)]);
    chmodSync(file, 0o600);
    expect(errors(text)).toEqual([]);
    writeFileSync(file, "\n");
    expect(errors(text)).toEqual([expect.stringMatching(/is empty/)]);
    expect(errors(cfg({ health: `health: { token: "${TOKEN}", next-token: "tiny" }` }))).toEqual([
      expect.stringMatching(/health\.next-token: must be at least 16/),
    ]);
  });

  it("a host agent gives exactly one of key or token, each a real secret", () => {
    const agent = (health: string) => {
      const r = parseHostAgentConfig(
        `node: { name: h }\nhost: { pa: 198.51.100.2 }\n${health}\nservices: []\n`,
        "h.yml",
        {},
      );
      return r.ok ? [] : r.error.map(formatConfigError);
    };
    const muxes = "muxes: [ { address: 192.0.2.2 } ]";
    expect(agent(`health: { key: "${TOKEN}", ${muxes} }`)).toEqual([]);
    expect(agent(`health: { token: "${TOKEN}", ${muxes} }`)).toEqual([]);
    expect(agent(`health: { ${muxes} }`)).toEqual([expect.stringMatching(/exactly one of key/)]);
    expect(agent(`health: { key: "${TOKEN}", token: "${TOKEN}", ${muxes} }`)).toEqual([
      expect.stringMatching(/exactly one of key/),
    ]);
    expect(agent(`health: { key: "k", ${muxes} }`)).toEqual([
      expect.stringMatching(/health\.key: must be at least 16/),
    ]);
  });

  it("listen is ADDRESS:PORT or off", () => {
    for (const ok of ["0.0.0.0:7946", "[::]:7946", "127.0.0.1:0", ":7946", "off"])
      expect(errors(cfg({ health: `health: { token: "${TOKEN}", listen: "${ok}" }` }))).toEqual([]);
    for (const [bad, why] of [
      ["7946", /a bare port is not an address: write ADDRESS:PORT/],
      ["0.0.0.0", /"0\.0\.0\.0" has no port/],
      ["0.0.0.0:99999", /port "99999" must be a number 0-65535/],
      ["[fe80::1%eth0]:1", /an IPv6 zone/],
      ["host:7946", /"host" is not an IP address/],
    ] as const)
      expect(errors(cfg({ health: `health: { token: "${TOKEN}", listen: "${bad}" }` }))).toEqual([
        expect.stringMatching(new RegExp(`health\\.listen: ${why.source}.*; or off$`)),
      ]);
  });
});

describe("inputs that used to crash the daemon after validate passed them", () => {
  it("an IPv6 zone in an address", () => {
    expect(errors(cfg({ vip: "2001:db8::100%eth0" }))).toEqual([
      expect.stringMatching(/services\.0\.vip: an IPv6 zone/),
    ]);
  });

  it("an HTTP probe path with a space or a control character", () => {
    for (const path of ['"/a b"', '"/a\\tb"', '"/\\u0000"'])
      expect(errors(cfg({ path }))).toEqual([
        expect.stringMatching(
          /services\.0\.health\.path: must start with \/ and contain no spaces/,
        ),
      ]);
    expect(errors(cfg({ path: "/a%20b?x=1" }))).toEqual([]);
  });

  it("a YAML file with more alias expansions than allowed (resource exhaustion)", () => {
    const bomb = `${cfg()}x: &a [1, 2, 3]\ny: [${Array(120).fill("*a").join(", ")}]\n`;
    const r = parseConfig(bomb, "c.yml", {});
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error).toHaveLength(1);
      expect(formatConfigError(r.error[0]!)).toMatch(
        /^c\.yml:\d+:\d+: \(yaml\): too many alias expansions \(more than 100\)/,
      );
    }
    // A few aliases are fine YAML; they reach the schema, which names the unknown key.
    const few = parseConfig(`${cfg()}x: &a [1]\ny: [*a, *a]\n`, "c.yml", {});
    expect(!few.ok && few.error.map((e) => e.message)).toEqual([
      'unknown field "x"',
      'unknown field "y"',
    ]);
  });
});

/** Valid configs in several shapes, the seeds of the mutations below. */
const SEEDS = [
  cfg(),
  cfg({ vip: "2001:db8:f::100" })
    .replace("peers:", "next-hop-v6: 2001:db8::2, peers:")
    .replace("10.0.0.1", "2001:db8:1::11"),
  `node: { name: m, router-id: 192.0.2.2 }
bgp:
  asn: 65101
  damping: { half-life: 5s }
  peers:
    - { address: 192.0.2.1, asn: 65000, hold-time: 3, bfd: { interval-ms: 100 }, export: { communities: ["65000:1"], as-path-prepend: 2 } }
health: { token: "${TOKEN}", agent-timeout: 2s, listen: "127.0.0.1:7946" }
dataplane: { engine: none }
services:
  - name: dns
    vip: 20.20.20.53
    ports: [ { protocol: udp, port-range: 53-55 } ]
    distribution: 2-tuple
    vni: 200
    min-healthy: 0
    health: { type: udp, send: ping, interval: 2s, timeout: 1s }
    backends: [ { dip: 10.0.0.2, host: 198.51.100.6, weight: 3 }, { dip: 10.0.0.3, host: 198.51.100.6, floating-ip: true } ]
`,
];

describe("validate never throws", () => {
  it("random mutations of valid configs give a result, errors located, never an exception", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...SEEDS),
        fc.array(mutation, { minLength: 1, maxLength: 6 }),
        (seed, muts) => {
          const text = mutate(seed, muts);
          let r: ReturnType<typeof parseConfig> | undefined;
          expect(() => {
            r = parseConfig(text, "c.yml", {});
          }).not.toThrow();
          if (r && !r.ok) {
            expect(r.error.length).toBeGreaterThan(0);
            for (const e of r.error as ConfigError[]) {
              expect(e.message).not.toMatch(/^internal error/);
              expect(typeof formatConfigError(e)).toBe("string");
            }
          }
        },
      ),
      { numRuns: 3000, seed: 20261203 },
    );
  });
});
