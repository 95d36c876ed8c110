import { describe, expect, it } from "vitest";
import { z } from "zod";
import { camelCase, camelizeKeys, kebabCase, kebabizeKeys } from "../../../src/config/camel.ts";
import { hostAgentFileSchema } from "../../../src/config/host-agent.ts";
import { parseConfig } from "../../../src/config/load.ts";
import { configJsonSchema } from "../../../src/config/schema.ts";

/** Every property name anywhere in a JSON Schema. */
function keysOf(schema: unknown, out = new Set<string>()): Set<string> {
  if (Array.isArray(schema)) for (const s of schema) keysOf(s, out);
  else if (schema !== null && typeof schema === "object") {
    for (const [k, v] of Object.entries(schema)) {
      if (k === "properties" && v && typeof v === "object")
        for (const name of Object.keys(v)) out.add(name);
      keysOf(v, out);
    }
  }
  return out;
}

describe("kebab-case YAML keys ↔ camelCase properties", () => {
  it("maps every key of both schemas both ways without loss", () => {
    const keys = [
      ...keysOf(configJsonSchema()),
      ...keysOf(z.toJSONSchema(hostAgentFileSchema, { io: "input", unrepresentable: "any" })),
    ];
    expect(keys).toContain("min-healthy");
    for (const k of keys) {
      expect(k).toMatch(/^[a-z][a-z0-9]*(-[a-z][a-z0-9]*)*$/);
      expect(kebabCase(camelCase(k))).toBe(k);
    }
  });

  it("converts nested objects and arrays, never values", () => {
    const v = { "min-healthy": 2, ports: [{ "backend-port": 80, protocol: "tcp" }], d: "5-tuple" };
    const c = camelizeKeys(v);
    expect(c).toEqual({
      minHealthy: 2,
      ports: [{ backendPort: 80, protocol: "tcp" }],
      d: "5-tuple",
    });
    expect(kebabizeKeys(c)).toEqual(v);
  });

  it("parsed configs have typed camelCase properties; errors name the YAML keys", () => {
    const base = `node: { name: m, router-id: 192.0.2.2 }
bgp: { asn: 65001, peers: [ { address: 192.0.2.1, asn: 65000 } ] }
health: { listen: "off" }
services:
  - name: web
    vip: 20.20.20.100
    ports: [ { protocol: tcp, port: 80, backend-port: 8080 } ]
    vni: 100
    min-healthy: MINH
    backends: [ { dip: 10.0.0.1, host: 198.51.100.2 } ]
`;
    const good = parseConfig(base.replace("MINH", "1"), "c.yml");
    if (!good.ok) throw new Error(JSON.stringify(good.error));
    expect(good.value.node.routerId).toBe("192.0.2.2");
    expect(good.value.services[0]!.minHealthy).toBe(1);
    expect(good.value.services[0]!.ports[0]!.backendPort).toBe(8080);
    expect(good.value.dataplane.vxlanPort).toBe(4789);
    expect(Object.keys(good.value.services[0]!)).not.toContain("min-healthy");

    const bad = parseConfig(base.replace("MINH", "5"), "c.yml");
    expect(bad.ok).toBe(false);
    if (!bad.ok) {
      expect(bad.error[0]!.path).toBe("services.0.min-healthy");
      expect(bad.error[0]!.message).toMatch(/^min-healthy 5 exceeds/);
    }
    const typo = parseConfig(base.replace("MINH", '"x"'), "c.yml");
    expect(!typo.ok && typo.error[0]!.path).toBe("services.0.min-healthy");
  });
});
