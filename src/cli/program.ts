// The vipmux command line: the commander program and its error handling.
import { readFileSync } from "node:fs";
import { Command, CommanderError } from "commander";
import { TopologyInvalid } from "../lab/index.ts";
import { LabError } from "../lab/runner.ts";
import { registerCompletion } from "./completion.ts";
import { registerConfig } from "./config.ts";
import { registerDataplane } from "./dataplane.ts";
import { CliError } from "./errors.ts";
import { registerHealthKey } from "./health-key.ts";
import { registerHostAgent } from "./host-agent.ts";
import { registerLab } from "./lab.ts";
import { registerRun } from "./run.ts";

const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
  version: string;
};

export function buildProgram(): Command {
  const program = new Command("vipmux")
    .description("software load-balancer MUX: BGP-announced VIPs, Maglev hashing, VXLAN, DSR")
    .version(pkg.version, "-V, --version")
    .showHelpAfterError()
    .exitOverride();
  program
    .command("version")
    .description("print the version")
    .action(() => console.log(pkg.version));
  registerRun(program);
  registerConfig(program);
  registerDataplane(program);
  registerLab(program);
  registerCompletion(program);
  registerHostAgent(program);
  registerHealthKey(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    if (e instanceof CliError) {
      console.error(`vipmux: ${e.message}`);
      return e.exitCode;
    }
    if (e instanceof TopologyInvalid || e instanceof LabError) {
      console.error(`vipmux: ${e.message}`);
      return 1;
    }
    console.error(`vipmux: ${(e as Error).stack ?? String(e)}`);
    return 1;
  }
}
