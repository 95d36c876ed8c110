// The vipmux command line: the commander program, its error handling and the conventions
// every command keeps (`--json`, the error object, exit codes; README, "CLI conventions").
import { readFileSync } from "node:fs";
import { Command, CommanderError } from "commander";
import { TopologyInvalid } from "../lab/index.ts";
import { LabError } from "../lab/runner.ts";
import { registerBgp } from "./bgp.ts";
import { registerCompletion } from "./completion.ts";
import { registerConfig } from "./config.ts";
import { registerDataplane } from "./dataplane.ts";
import { CliError, type CliErrorCode, errorJson, USAGE_EXIT } from "./errors.ts";
import { registerHealthKey } from "./health-key.ts";
import { registerHostAgent } from "./host-agent.ts";
import { registerLab } from "./lab.ts";
import { registerRun } from "./run.ts";

const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
  version: string;
};

/** The conventions, as `vipmux --help` shows them (the README says the same). */
export const CONVENTIONS = `
Conventions:
  --json       every command that prints a result takes --json: the result as one JSON
               document on stdout. With --json anywhere on the command line, an error is
               one JSON object on stderr instead of text:
                 {"error": {"code": "usage", "message": "...", "details": ...}}
               code: usage, invalid-config, unavailable, not-found, refused or failed;
               details only where there is more to say (config errors, the daemon's answer).
  exit status  0 success; 1 the operation failed (invalid config, daemon not running or
               said no); 2 usage error (unknown command or option, missing or extra
               argument, bad value).`;

/** Whether the command line asks for JSON: `--json` anywhere before a `--`. */
export function wantsJson(args: readonly string[]): boolean {
  for (const a of args) {
    if (a === "--") return false;
    if (a === "--json") return true;
  }
  return false;
}

export function buildProgram(opts: { json?: boolean } = {}): Command {
  const program = new Command("vipmux")
    .description("software load-balancer MUX: BGP-announced VIPs, Maglev hashing, VXLAN, DSR")
    .version(pkg.version, "-V, --version")
    .showHelpAfterError()
    .exitOverride()
    .addHelpText("after", CONVENTIONS);
  // Under --json commander says nothing itself: main() writes the error object. Set before
  // the subcommands are added, which copy these settings.
  if (opts.json) program.configureOutput({ writeErr: () => {}, outputError: () => {} });
  program
    .command("version")
    .description("print the version")
    .option("--json", 'machine-readable output: {"version": "..."}')
    .action((o: { json?: boolean }) =>
      console.log(o.json ? JSON.stringify({ version: pkg.version }) : pkg.version),
    );
  registerRun(program);
  registerBgp(program);
  registerConfig(program);
  registerDataplane(program);
  registerLab(program);
  registerCompletion(program);
  registerHostAgent(program);
  registerHealthKey(program);
  return program;
}

/** Commander's message without its `error: ` prefix. */
function usageMessage(e: CommanderError): string {
  if (e.code === "commander.help") return "a subcommand is required (see --help)";
  return e.message.replace(/^error: /, "");
}

export async function main(argv: string[]): Promise<number> {
  const json = wantsJson(argv.slice(2));
  const fail = (code: CliErrorCode, message: string, exitCode: number, details?: unknown) => {
    console.error(json ? errorJson(code, message, details) : `vipmux: ${message}`);
    return exitCode;
  };
  try {
    await buildProgram({ json }).parseAsync(argv);
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and --version end with 0; every other commander error is a usage error, and
      // commander has already printed it (with the help) unless --json asked for silence.
      if (e.exitCode === 0) return 0;
      if (json) console.error(errorJson("usage", usageMessage(e)));
      return USAGE_EXIT;
    }
    if (e instanceof CliError) return fail(e.code, e.message, e.exitCode, e.details);
    if (e instanceof TopologyInvalid)
      return fail("invalid-config", e.message, 1, { problems: e.problems });
    if (e instanceof LabError) return fail("failed", e.message, 1);
    const err = e as Error;
    return fail("failed", json ? (err.message ?? String(e)) : (err.stack ?? String(e)), 1);
  }
}
