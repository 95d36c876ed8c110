// Running system commands (ip, nft, FRR daemons) from the I/O edges. Failures come back as
// values with the command line and stderr, so callers can say what went wrong.
import { execFile, spawnSync } from "node:child_process";

export interface CommandResult {
  argv: string[];
  code: number;
  stdout: string;
  stderr: string;
}

export class CommandError extends Error {
  readonly result: CommandResult;
  constructor(result: CommandResult) {
    const detail = result.stderr.trim() || result.stdout.trim();
    super(
      `command failed (exit ${result.code}): ${result.argv.join(" ")}${detail ? `: ${detail}` : ""}`,
    );
    this.name = "CommandError";
    this.result = result;
  }
}

export interface RunOptions {
  input?: string;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** Runs a command to completion; never throws, the exit code tells. */
export function run(argv: string[], opts: RunOptions = {}): Promise<CommandResult> {
  const [file, ...args] = argv;
  if (!file) return Promise.resolve({ argv, code: 127, stdout: "", stderr: "empty command" });
  return new Promise((resolve) => {
    const child = execFile(
      file,
      args,
      {
        timeout: opts.timeoutMs ?? 30_000,
        maxBuffer: 64 * 1024 * 1024,
        env: opts.env ?? process.env,
        cwd: opts.cwd,
        encoding: "utf8",
      },
      (error, stdout, stderr) => {
        let code = 0;
        if (error) {
          const e = error as NodeJS.ErrnoException & { code?: unknown; killed?: boolean };
          code = typeof e.code === "number" ? e.code : e.killed ? 124 : 127;
          if (typeof e.code === "string") stderr = `${stderr}${e.message}`;
        }
        resolve({ argv, code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

/** Runs a command and throws CommandError when it fails: for setup steps that must work. */
export async function must(argv: string[], opts: RunOptions = {}): Promise<CommandResult> {
  const r = await run(argv, opts);
  if (r.code !== 0) throw new CommandError(r);
  return r;
}

/** Synchronous variant for signal handlers and exit paths. */
export function runSync(argv: string[], timeoutMs = 10_000): CommandResult {
  const [file, ...args] = argv;
  if (!file) return { argv, code: 127, stdout: "", stderr: "empty command" };
  const r = spawnSync(file, args, { encoding: "utf8", timeout: timeoutMs });
  return {
    argv,
    code: r.status ?? (r.error ? 127 : 124),
    stdout: r.stdout ?? "",
    stderr: r.stderr ?? r.error?.message ?? "",
  };
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Splits a command line the way a POSIX shell would for quoting (no expansion). */
export function splitCommand(line: string): string[] {
  const out: string[] = [];
  let cur = "";
  let inWord = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === quote) quote = null;
      else if (c === "\\" && quote === '"' && i + 1 < line.length) cur += line[++i];
      else cur += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
    } else if (c === "\\" && i + 1 < line.length) {
      cur += line[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) out.push(cur);
      cur = "";
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (quote) throw new Error(`unterminated ${quote} quote in: ${line}`);
  if (inWord) out.push(cur);
  return out;
}
