// Shared bits of the integration tests: paths, the CLI under test, leak checks.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { listNetns } from "../../src/lab/runner.ts";
import { run } from "../../src/util/proc.ts";

export const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
export const canonicalTopology = `${repoRoot}containerlab/vipmux.clab.yml`;
export const fixture = (name: string) => `${repoRoot}test/fixtures/${name}`;

/** Runs this checkout's CLI (from source, on the Node running the tests). */
export function vipmux(args: string[], timeoutMs = 120_000) {
  const r = spawnSync(process.execPath, [`${repoRoot}src/cli/main.ts`, ...args], {
    encoding: "utf8",
    timeout: timeoutMs,
  });
  return { code: r.status ?? -1, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

export async function namespacesWithPrefix(prefix: string): Promise<string[]> {
  return (await listNetns()).filter((n) => n.startsWith(prefix));
}

export async function rootLinksWithPrefix(prefix: string): Promise<string[]> {
  const r = await run(["ip", "-o", "link", "show"]);
  return r.stdout
    .split("\n")
    .map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1] ?? "")
    .filter((n) => n.startsWith(prefix));
}

/** PIDs of processes whose command line mentions `needle`. */
export async function processesMatching(needle: string): Promise<number[]> {
  const r = await run(["pgrep", "-f", needle]);
  return r.stdout
    .split(/\s+/)
    .filter(Boolean)
    .map(Number)
    .filter((p) => p !== process.pid);
}

export const isRoot = process.getuid?.() === 0;
