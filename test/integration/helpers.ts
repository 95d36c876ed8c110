// Shared bits of the integration tests: paths, the CLI under test, leak checks.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { listNetns } from "../../src/lab/runner.ts";
import { pollUntil, type TestLab } from "../../src/lab/testing.ts";
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

/** What test/fixtures/dataplane-lab/streams.ts reports per snapshot. */
export interface StreamsSnapshot {
  open: number;
  errors: string[];
  replies: number[];
  vms: string[];
}

/**
 * COUNT long-lived TCP streams from the lab's client to ADDR:PORT (a TCP line echo that
 * names its backend), waited for until all answer. `snapshot()` asks the client for its
 * counters; `stop()` ends it.
 */
export async function openStreams(
  lab: TestLab,
  name: string,
  addr: string,
  port: number,
  count: number,
) {
  const stop = join(lab.plan.dir, `${name}.stop`);
  const streams = lab.spawn(
    "client",
    [
      process.execPath,
      fixture("dataplane-lab/streams.ts"),
      addr,
      String(port),
      String(count),
      "100",
      stop,
    ],
    name,
  );
  const logFile = join(lab.plan.dir, `${name}.log`);
  const snaps = () =>
    (existsSync(logFile) ? readFileSync(logFile, "utf8") : "")
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as StreamsSnapshot);
  const snapshot = async () => {
    const n = snaps().length;
    streams.kill("SIGUSR1");
    return pollUntil(async () => snaps()[n], { timeoutMs: 5_000, what: `snapshot ${n}` });
  };
  try {
    await pollUntil(
      async () => existsSync(logFile) && readFileSync(logFile, "utf8").includes("started"),
      {
        timeoutMs: 10_000,
        what: "the streams client",
      },
    );
    const before = await pollUntil(
      async () => {
        const s = await snapshot();
        return s.open === count && s.replies.every((r) => r > 2) ? s : undefined;
      },
      { timeoutMs: 30_000, what: `all ${count} streams answering` },
    );
    return { before, snapshot, stop: () => writeFileSync(stop, "") };
  } catch (e) {
    writeFileSync(stop, "");
    throw e;
  }
}
