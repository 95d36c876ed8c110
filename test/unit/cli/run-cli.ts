// The CLI for its tests: as a user runs it, in a child process (async, so a daemon in the
// test's own process can answer it), or its main() in this process; and the error object
// of --json.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { format, promisify } from "node:util";
import { expect, vi } from "vitest";
import { main } from "../../../src/cli/program.ts";

export const root = fileURLToPath(new URL("../../../", import.meta.url));
const run = promisify(execFile);

/** Secrets configs/mux.yml and configs/host-agent.yml read from the environment. */
export const cliEnv = {
  ...process.env,
  VIPMUX_EDGE1_MD5: "k",
  VIPMUX_HEALTH_TOKEN: "a-cluster-secret-for-the-cli-test",
  VIPMUX_HEALTH_KEY: "a-host-key-for-the-cli-test-0123456789",
};

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** `vipmux ARGS...` in the repository; its exit status and output. */
export async function vipmux(...args: string[]): Promise<CliRun> {
  try {
    const r = await run(process.execPath, [`${root}src/cli/main.ts`, ...args], {
      env: cliEnv,
      cwd: root,
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

/** The one error object on stderr under --json (and nothing else there). */
export function jsonError(stderr: string): { code: string; message: string; details?: unknown } {
  const lines = stderr.trim().split("\n");
  expect(lines).toHaveLength(1);
  const o = JSON.parse(lines[0]!) as { error: { code: string; message: string } };
  expect(Object.keys(o)).toEqual(["error"]);
  return o.error;
}

/**
 * `vipmux ARGS...` in this process: the same `main()` the command runs, its output caught
 * from console and the standard streams, its exit status returned (process.exitCode is put
 * back). Much faster than a child process, so most tests use it; tests using it must not
 * run concurrently with each other.
 */
export async function vipmuxHere(...args: string[]): Promise<CliRun> {
  let stdout = "";
  let stderr = "";
  const text = (a: unknown[]) => `${format(...a)}\n`;
  const spies = [
    vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
      stdout += String(chunk);
      return true;
    }),
    vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
      stderr += String(chunk);
      return true;
    }),
    vi.spyOn(console, "log").mockImplementation((...a: unknown[]) => {
      stdout += text(a);
    }),
    vi.spyOn(console, "error").mockImplementation((...a: unknown[]) => {
      stderr += text(a);
    }),
  ];
  const saved = process.exitCode;
  const savedEnv = { ...process.env };
  Object.assign(process.env, cliEnv);
  process.exitCode = undefined;
  try {
    const code = await main(["node", "vipmux", ...args]);
    return { code, stdout, stderr };
  } finally {
    for (const s of spies) s.mockRestore();
    process.exitCode = saved;
    for (const k of Object.keys(process.env)) if (!(k in savedEnv)) delete process.env[k];
    Object.assign(process.env, savedEnv);
  }
}
