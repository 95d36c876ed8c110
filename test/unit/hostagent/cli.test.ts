// `vipmux host-agent plan` (no root needed) and config errors through the CLI.
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const vipmux = (...args: string[]) => {
  const r = spawnSync(process.execPath, [`${root}src/cli/main.ts`, ...args], {
    encoding: "utf8",
    timeout: 30_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};

describe("vipmux host-agent", () => {
  it("plan prints the desired state of the lab's host1", () => {
    const r = vipmux("host-agent", "plan", "--config", `${root}containerlab/host1.yml`);
    expect(r.code).toBe(0);
    const d = JSON.parse(r.stdout) as { links: { name: string }[]; tables: { table: string }[] };
    expect(d.links.map((l) => l.name)).toEqual(["vmx-100", "vmx-101"]);
    expect(d.tables.map((t) => t.table)).toEqual([
      "vipmux-svc-sticky",
      "vipmux-svc-web",
      "vipmux-svc-web6",
      "vipmux-vni-100",
      "vipmux-vni-101",
      "vipmux-host",
    ]);
  });

  it("plan --nft prints one nft script (what `nft -f -` gets)", () => {
    const r = vipmux("host-agent", "--config", `${root}containerlab/host2.yml`, "plan", "--nft");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /^table inet vipmux-svc-sticky\ndelete table inet vipmux-svc-sticky\n/,
    );
    expect(r.stdout).toContain("table inet vipmux-svc-web\ndelete table inet vipmux-svc-web\n");
    expect(r.stdout).toContain("map { 0 : 10.10.2.21, 1 : 10.10.2.22 } :8080");
  });

  it("a bad config is refused with line:column, exit 1", () => {
    const dir = mkdtempSync(join(tmpdir(), "vipmux-ha-"));
    const f = join(dir, "bad.yml");
    writeFileSync(f, "node: { name: h }\nhost:\n  pa: nope\n");
    const r = vipmux("host-agent", "--config", f, "--dry-run");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${f}:3:7: host.pa: must be an IPv4 or IPv6 address`);
    expect(vipmux("host-agent").stderr).toContain("host-agent needs --config FILE");
  });
});
