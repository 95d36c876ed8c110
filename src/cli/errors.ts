// Errors of the command line, and the one shape every command reports them in (README,
// "CLI conventions"; `vipmux --help`).
import { type ConfigError, formatConfigError } from "../config/index.ts";

/**
 * What went wrong, as scripts see it in `{"error": {"code": ..., "message": ...}}`:
 * - `usage` (exit 2): unknown command or option, missing or extra argument, bad value;
 * - `invalid-config` (exit 1): a config file is invalid (`details.errors`, one per problem);
 * - `unavailable` (exit 1): the daemon cannot be reached (not running, no permission, no answer);
 * - `not-found` (exit 1): what the command names does not exist (a peer, a service, a lab);
 * - `refused` (exit 1): the daemon (or the operation) said no (`details` says why);
 * - `failed` (exit 1): anything else.
 */
export type CliErrorCode =
  | "usage"
  | "invalid-config"
  | "unavailable"
  | "not-found"
  | "refused"
  | "failed";

/** Exit status 2: the command line itself is wrong; 1: the operation failed. */
export const USAGE_EXIT = 2;

/**
 * A failure the user can act on (bad arguments, a missing file, a daemon that is not
 * running): the program prints `vipmux: <message>` without a stack trace, or under `--json`
 * the error object on stderr, and exits with `exitCode` (src/cli/program.ts).
 */
export class CliError extends Error {
  override name = "CliError";
  readonly exitCode: number;
  readonly code: CliErrorCode;
  /** Structured detail for `--json` (config errors, the daemon's answer). */
  readonly details: unknown;
  constructor(
    message: string,
    how: number | { code?: CliErrorCode; exitCode?: number; details?: unknown } = 1,
  ) {
    super(message);
    const o = typeof how === "number" ? { exitCode: how } : how;
    this.code = o.code ?? (o.exitCode === USAGE_EXIT ? "usage" : "failed");
    this.exitCode = o.exitCode ?? (this.code === "usage" ? USAGE_EXIT : 1);
    this.details = o.details;
  }
}

/** A wrong command line found by the command itself (a bad value, a missing name): exit 2. */
export class UsageError extends CliError {
  override name = "UsageError";
  constructor(message: string) {
    super(message, { code: "usage" });
  }
}

/** An invalid config file: every error with file:line:col, and as data under `--json`. */
export function configError(errors: readonly ConfigError[], summary?: string): CliError {
  const lines = errors.map(formatConfigError);
  if (summary) lines.push(summary);
  return new CliError(lines.join("\n"), {
    code: "invalid-config",
    details: { errors },
  });
}

/** The JSON written to stderr for a failed command under `--json`. */
export function errorJson(code: CliErrorCode, message: string, details?: unknown): string {
  return JSON.stringify({
    error: { code, message, ...(details === undefined ? {} : { details }) },
  });
}
