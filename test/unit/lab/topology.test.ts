import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Ajv } from "ajv";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import {
  formatTopologyError,
  loadTopology,
  parseTopology,
  roleOf,
} from "../../../src/lab/topology.ts";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const canonical = `${root}containerlab/vipmux.clab.yml`;
const shipped = `${root}schemas/clab.schema.json`;
// containerlab's published schema, when a copy of it sits beside this checkout: the
// shipped one must be that file unchanged (checked only where the copy exists).
const reference = `${root}../shared/reference/clab.schema.json`;

function errorsOf(yaml: string): string[] {
  const r = parseTopology(yaml, `${root}containerlab/test.clab.yml`);
  expect(r.ok).toBe(false);
  return r.ok ? [] : r.error.map(formatTopologyError);
}

describe("canonical topology", () => {
  it("validates against containerlab's published schema (the copy shipped in schemas/)", () => {
    const schema = JSON.parse(readFileSync(shipped, "utf8")) as object;
    const validate = new Ajv({ strict: false, allErrors: true }).compile(schema);
    const ok = validate(parse(readFileSync(canonical, "utf8")));
    expect(validate.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
  });

  it("ships containerlab's published schema unchanged", () => {
    if (!existsSync(reference)) return;
    expect(readFileSync(shipped, "utf8")).toBe(readFileSync(reference, "utf8"));
  });

  it("loads into nodes with roles, absolute binds and link addresses", () => {
    const r = loadTopology(canonical);
    if (!r.ok) throw new Error(r.error.map(formatTopologyError).join("\n"));
    const t = r.value;
    expect(t.name).toBe("vipmux");
    expect(t.nodes.map((n) => n.name).sort()).toEqual(
      ["client", "edge", "host1", "host2", "mux1", "mux2", "vm11", "vm12", "vm21", "vm22"].sort(),
    );
    const byName = new Map(t.nodes.map((n) => [n.name, n]));
    expect(byName.get("edge")?.role).toBe("frr");
    expect(byName.get("mux1")?.role).toBe("vipmux");
    expect(byName.get("client")?.role).toBe("linux");
    const edgeConf = byName.get("edge")?.binds.find((b) => b.container === "/etc/frr/frr.conf");
    expect(edgeConf?.host).toBe(`${root}containerlab/edge/frr.conf`);
    expect(t.links).toHaveLength(9);
    const muxLink = t.links.find((l) => l.a.node === "mux1");
    expect(muxLink?.a).toEqual({
      node: "mux1",
      iface: "eth1",
      addresses: ["192.0.2.2/30", "2001:db8:0:1::2/64"],
    });
    // An empty entry in a brief link's address list means "no address on this end".
    const vmLink = t.links.find((l) => l.b.node === "vm11");
    expect(vmLink?.a.addresses).toEqual([]);
    expect(vmLink?.b.addresses).toEqual(["10.10.1.11/24", "fd00:10:1::11/64"]);
  });
});

describe("image roles", () => {
  it.each([
    ["quay.io/frrouting/frr:8.4.4", "frr"],
    ["frrouting/frr:v8.4.0", "frr"],
    ["frrouting/frr", "frr"],
    ["ghcr.io/vipmux/vipmux:latest", "vipmux"],
    ["vipmux", "vipmux"],
    ["nicolaka/netshoot:latest", "linux"],
    ["example.com/frrouting/frr-not:1", "linux"],
  ])("%s is %s", (image, role) => {
    expect(roleOf(image)).toBe(role);
  });
});

describe("invalid topologies are refused with the problem named", () => {
  it("a schema violation names the field, the path and the line", () => {
    const errs = errorsOf(`name: t
topology:
  nodes:
    a:
      kind: linux
      image: x
      bogus: 1
`);
    expect(errs).toHaveLength(1);
    expect(errs[0]).toMatch(/test\.clab\.yml:5:7: topology\.nodes\.a: unknown field "bogus"/);
  });

  it("an unknown kind lists what is allowed", () => {
    const errs = errorsOf("name: t\ntopology:\n  nodes:\n    a: { kind: nosuchkind }\n");
    expect(errs.join("\n")).toMatch(/topology\.nodes\.a\.kind: must be one of: .*linux/);
  });

  it("a missing name is reported", () => {
    const errs = errorsOf("topology:\n  nodes:\n    a: { kind: linux }\n");
    expect(errs.join("\n")).toMatch(/missing required field "name"/);
  });

  it("an unknown node in a link", () => {
    const errs = errorsOf(`name: t
topology:
  nodes:
    a: { kind: linux, image: x }
  links:
    - endpoints: ["a:eth1", "ghost:eth1"]
`);
    expect(errs).toEqual([
      expect.stringMatching(
        /:6:\d+: topology\.links\.0\.endpoints\.1: unknown node "ghost" \(nodes: a\)/,
      ),
    ]);
  });

  it("a duplicate interface", () => {
    const errs = errorsOf(`name: t
topology:
  nodes:
    a: { kind: linux, image: x }
    b: { kind: linux, image: x }
    c: { kind: linux, image: x }
  links:
    - endpoints: ["a:eth1", "b:eth1"]
    - endpoints: ["a:eth1", "c:eth1"]
`);
    expect(errs).toEqual([
      expect.stringMatching(
        /topology\.links\.1\.endpoints\.0: duplicate interface a:eth1 \(already used by topology\.links\.0\.endpoints\.0\)/,
      ),
    ]);
  });

  it("interface names the kernel would refuse, and eth0", () => {
    const errs = errorsOf(`name: t
topology:
  nodes:
    a: { kind: linux, image: x }
    b: { kind: linux, image: x }
  links:
    - endpoints: ["a:averyveryverylongname", "b:eth0"]
`);
    expect(errs.join("\n")).toMatch(/"averyveryverylongname" is not a valid Linux name/);
    expect(errs.join("\n")).toMatch(/eth0 is the management interface/);
  });

  it("link types the namespace runner cannot build", () => {
    const errs = errorsOf(`name: t
topology:
  nodes:
    a: { kind: linux, image: x }
  links:
    - type: host
      endpoint: { node: a, interface: eth1 }
      host-interface: veth-a
`);
    expect(errs.join("\n")).toMatch(/link type "host" is not supported by the namespace lab/);
  });

  it("a bind whose source does not exist", () => {
    const errs = errorsOf(`name: t
topology:
  nodes:
    a: { kind: linux, image: x, binds: ["nope/frr.conf:/etc/frr/frr.conf"] }
`);
    expect(errs.join("\n")).toMatch(/bind source .*containerlab\/nope\/frr\.conf does not exist/);
  });

  it("broken YAML points at the line", () => {
    const errs = errorsOf("name: t\ntopology:\n  nodes: [\n");
    expect(errs[0]).toMatch(/test\.clab\.yml:\d+:\d+: \(yaml\):/);
  });

  it("a missing file", () => {
    const r = loadTopology("/nonexistent/x.clab.yml");
    expect(r.ok).toBe(false);
    if (!r.ok)
      expect(formatTopologyError(r.error[0]!)).toBe(
        "/nonexistent/x.clab.yml: (file): file not found",
      );
  });
});

describe("defaults and kinds", () => {
  it("merge with node > kind > defaults precedence", () => {
    const r = parseTopology(
      `name: t
topology:
  defaults:
    kind: linux
    env: { A: "1", B: "1" }
    exec: ["echo defaults"]
  kinds:
    linux:
      image: base:1
      env: { B: "2" }
  nodes:
    a: {}
    b: { image: other:2, env: { A: "3" } }
`,
      `${root}containerlab/t.clab.yml`,
    );
    if (!r.ok) throw new Error(r.error.map(formatTopologyError).join("\n"));
    const [a, b] = r.value.nodes;
    expect(a).toMatchObject({
      kind: "linux",
      image: "base:1",
      env: { A: "1", B: "2" },
      exec: ["echo defaults"],
    });
    expect(b).toMatchObject({ image: "other:2", env: { A: "3", B: "2" } });
  });
});
