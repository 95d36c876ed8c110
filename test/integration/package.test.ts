// Packaging: `npm pack` gives a tarball that installs a working global `vipmux` (the
// native addon built at install, schemas and configs shipped).
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { fixture, repoRoot } from "./helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "vipmux-pack-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function sh(cmd: string, args: string[], cwd = repoRoot) {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8", timeout: 300_000 });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

describe("npm pack", () => {
  it("installs a working global vipmux", () => {
    const pack = sh("npm", ["pack", "--pack-destination", dir]);
    expect(pack.code, pack.out).toBe(0);
    const tgz = readdirSync(dir).find((f) => f.endsWith(".tgz"));
    expect(tgz).toBeDefined();
    const prefix = join(dir, "global");
    const install = sh("npm", ["install", "-g", "--prefix", prefix, join(dir, tgz!)], dir);
    expect(install.code, install.out).toBe(0);
    const bin = join(prefix, "bin", "vipmux");
    const pkgDir = join(prefix, "lib", "node_modules", "vipmux");
    expect(sh(bin, ["--version"], dir).out.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    const valid = sh(bin, ["validate", join(repoRoot, "configs", "mux.yml")], dir);
    // configs/mux.yml names its secrets by environment variable: unset here, so refused
    // with the exact field, which proves the installed validator runs.
    expect(valid.out).toMatch(
      /bgp\.peers\.0\.password: environment variable VIPMUX_EDGE1_MD5 is not set/,
    );
    expect(sh(bin, ["validate", fixture("controller-lab/mux1.yml")], dir).code).toBe(0);
    expect(existsSync(join(pkgDir, "build", "Release", "vipmux_native.node"))).toBe(true);
    expect(existsSync(join(pkgDir, "schemas", "clab.schema.json"))).toBe(true);
    // The installed lab runner finds the shipped containerlab schema.
    const bad = sh(bin, ["lab", "up", "-t", fixture("lab/unknown-node.clab.yml")], dir);
    expect(bad.out).toMatch(/unknown node "ghost"/);
  });
});
