// `vipmux validate FILE` and `vipmux config schema` (MUX and host-agent configs).
import { type Command, Option } from "commander";
import { formatConfigError } from "../config/index.ts";
import {
  CONFIG_KINDS,
  type ConfigKind,
  describeConfig,
  jsonSchemaOf,
  loadAnyConfig,
  redactedConfig,
} from "../config/kind.ts";
import { configReference } from "../config/reference.ts";
import { configError } from "./errors.ts";

export function registerConfig(program: Command): void {
  program
    .command("validate")
    .description("check a config file: schema and semantic rules, every error with line:column")
    .argument("<file>", "vipmux YAML config: a MUX's or a host agent's")
    .addOption(kindOption())
    .option("--json", "print the errors (or the normalized config) as JSON")
    .addHelpText(
      "after",
      `
Exit status 0 when valid, 1 when not. With --json the report is on stdout either way
({"valid": ..., "config" | "errors": ...}) and an invalid file also writes the error object
on stderr. Secrets given as { file } or { env } must be readable here, as they must be
where the daemon runs.

The kind of file comes from its top-level keys (host: without bgp: is a host agent's);
--kind forces it.

Example:
  $ vipmux validate /etc/vipmux/mux.yml
  /etc/vipmux/mux.yml:42:16: services.1.backends.0.dip: DIP 10.10.1.11 is in service "web" with VNI 100 and here with VNI 200`,
    )
    .action((file: string, opts: { json?: boolean; kind?: ConfigKind }) => {
      const { kind, result: r } = loadAnyConfig(file, opts.kind);
      const n = r.ok ? 0 : r.error.length;
      const summary = `${n} error${n === 1 ? "" : "s"}`;
      if (opts.json) {
        console.log(
          JSON.stringify(
            r.ok
              ? { valid: true, kind, config: redactedConfig(r.value) }
              : { valid: false, errors: r.error },
            null,
            2,
          ),
        );
      } else if (r.ok) {
        console.log(`${file}: valid (${describeConfig(r.value)})`);
      } else {
        for (const e of r.error) console.error(formatConfigError(e));
        console.error(summary);
      }
      // Under --json an invalid file is also the error object on stderr (exit 1).
      if (!r.ok && opts.json) throw configError(r.error, `${file}: ${summary}`);
      process.exitCode = r.ok ? 0 : 1;
    });

  const config = program.command("config").description("config file helpers");
  config
    .command("reference")
    .description("print the config reference (Markdown), generated from the schema")
    .action(() => {
      process.stdout.write(configReference());
    });
  config
    .command("schema")
    .description("print the config's JSON Schema (for editor completion and CI checks)")
    .option("--json", "accepted for uniformity: the schema is JSON already")
    .addOption(kindOption("mux"))
    .action((opts: { kind: ConfigKind }) => {
      console.log(JSON.stringify(jsonSchemaOf(opts.kind), null, 2));
    });
}

/** `--kind mux|host-agent`: which schema a file is checked against. */
function kindOption(fallback?: ConfigKind): Option {
  const o = new Option(
    "--kind <kind>",
    fallback
      ? "whose schema: mux or host-agent"
      : "check the file as this kind (default: from its top-level keys)",
  ).choices(CONFIG_KINDS);
  return fallback ? o.default(fallback) : o;
}
