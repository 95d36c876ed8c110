// The CLI as a user runs it: exit codes and output of the commands that need no root.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const env = {
  ...process.env,
  VIPMUX_EDGE1_MD5: "k",
  VIPMUX_HEALTH_TOKEN: "a-cluster-secret-for-the-cli-test",
};

function vipmux(...args: string[]) {
  const r = spawnSync(process.execPath, [`${root}src/cli/main.ts`, ...args], {
    encoding: "utf8",
    env,
    cwd: root,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("vipmux CLI", () => {
  it("version and --version print the package version", () => {
    const { version } = JSON.parse(readFileSync(`${root}package.json`, "utf8")) as {
      version: string;
    };
    expect(vipmux("version")).toMatchObject({ code: 0, stdout: `${version}\n` });
    expect(vipmux("--version")).toMatchObject({ code: 0, stdout: `${version}\n` });
  });

  it("--help lists the commands", () => {
    const r = vipmux("--help");
    expect(r.code).toBe(0);
    for (const cmd of ["validate", "config", "lab", "version"])
      expect(r.stdout).toMatch(new RegExp(`^  ${cmd}\\b`, "m"));
  });

  it("an unknown command fails with help, a usage error (exit 2)", () => {
    const r = vipmux("frobnicate");
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown command 'frobnicate'/);
  });

  it("validate: a valid file", () => {
    const r = vipmux("validate", "configs/mux.yml");
    expect(r).toMatchObject({
      code: 0,
      stdout: "configs/mux.yml: valid (2 peers, 3 services, 8 backends)\n",
    });
  });

  it("validate: errors with line:column and path, exit 1", () => {
    const r = vipmux("validate", "test/fixtures/config/broken/duplicate-vip.yml");
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      'test/fixtures/config/broken/duplicate-vip.yml:15:14: services.1.ports.0: duplicate VIP 20.20.20.100 tcp/80: already in service "web"\n1 error\n',
    );
  });

  it("validate --json: errors as data, secrets redacted in the normalized config", () => {
    const bad = vipmux("validate", "--json", "test/fixtures/config/broken/bad-ip.yml");
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.stdout)).toEqual({
      valid: false,
      errors: [
        {
          file: "test/fixtures/config/broken/bad-ip.yml",
          line: 8,
          col: 10,
          path: "services.0.vip",
          message: "must be an IPv4 or IPv6 address",
        },
      ],
    });
    const good = vipmux("validate", "--json", "configs/mux.yml");
    const out = JSON.parse(good.stdout) as {
      valid: boolean;
      config: { bgp: { peers: { password?: unknown }[] } };
    };
    expect(out.valid).toBe(true);
    expect(out.config.bgp.peers[0]?.password).toBe("<redacted>");
    expect(good.stdout).not.toContain("VIPMUX_EDGE1_MD5");
    // The normalized config names fields as the YAML does, never the internal camelCase.
    expect(good.stdout).toContain('"router-id"');
    expect(good.stdout).toContain('"min-healthy"');
    expect(good.stdout).not.toMatch(/"[a-z]+[A-Z][a-zA-Z]*":/);
  });

  it("config schema prints the whole JSON Schema", () => {
    const r = vipmux("config", "schema");
    expect(r.code).toBe(0);
    const schema = JSON.parse(r.stdout) as { $schema: string; properties: object };
    expect(schema.$schema).toMatch(/json-schema\.org/);
    expect(Object.keys(schema.properties)).toContain("services");
  });

  it("lab commands explain what is wrong", () => {
    const r = vipmux("lab", "status", "--name", "no-such-lab");
    expect(r).toMatchObject({ code: 1, stderr: "vipmux: lab no-such-lab is not up\n" });
  });

  it("completion bash is valid bash and completes subcommands and options", () => {
    const r = vipmux("completion", "bash");
    expect(r.code).toBe(0);
    const complete = (words: string[]) => {
      const script = `${r.stdout}\nCOMP_WORDS=(${words.map((w) => `"${w}"`).join(" ")}); COMP_CWORD=${words.length - 1}; _vipmux; echo "\${COMPREPLY[@]}"`;
      const out = spawnSync("bash", ["-c", script], { encoding: "utf8" });
      expect(out.stderr).toBe("");
      return out.stdout.trim().split(" ");
    };
    expect(complete(["vipmux", "la"])).toEqual(["lab"]);
    expect(complete(["vipmux", "lab", ""])).toEqual([
      "up",
      "down",
      "status",
      "exec",
      "backend",
      "--help",
    ]);
    expect(complete(["vipmux", "status", "--"])).toEqual(["--socket", "--json", "--help"]);
    expect(vipmux("completion", "fish")).toMatchObject({ code: 2 });
  });
});
