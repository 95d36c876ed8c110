// Errors of the command line.

/**
 * A failure the user can act on (bad arguments, a missing file, a daemon that is not
 * running): the program prints `vipmux: <message>` without a stack trace and exits with
 * `exitCode` (src/cli/program.ts).
 */
export class CliError extends Error {
  override name = "CliError";
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.exitCode = exitCode;
  }
}
