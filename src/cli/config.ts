// `vipmux validate FILE` and `vipmux config schema`.
import type { Command } from "commander";
import { kebabizeKeys } from "../config/camel.ts";
import { configJsonSchema, formatConfigError, loadConfig } from "../config/index.ts";
import { configReference } from "../config/reference.ts";

export function registerConfig(program: Command): void {
  program
    .command("validate")
    .description("check a config file: schema and semantic rules, every error with line:column")
    .argument("<file>", "vipmux YAML config")
    .option("--json", "print the errors (or the normalized config) as JSON")
    .addHelpText(
      "after",
      `
Exit status 0 when valid, 1 when not. Secrets given as { file } or { env } must be
readable here, as they must be where the daemon runs.

Example:
  $ vipmux validate /etc/vipmux/mux.yml
  /etc/vipmux/mux.yml:42:16: services.1.backends.0.dip: DIP 10.10.1.11 is in service "web" with VNI 100 and here with VNI 200`,
    )
    .action((file: string, opts: { json?: boolean }) => {
      const r = loadConfig(file);
      if (opts.json) {
        console.log(
          JSON.stringify(
            r.ok
              ? { valid: true, config: kebabizeKeys(redact(r.value)) }
              : { valid: false, errors: r.error },
            null,
            2,
          ),
        );
      } else if (r.ok) {
        const c = r.value;
        console.log(
          `${file}: valid (${c.bgp.peers.length} peers, ${c.services.length} services, ${c.services.reduce((n, s) => n + s.backends.length, 0)} backends)`,
        );
      } else {
        for (const e of r.error) console.error(formatConfigError(e));
        console.error(`${r.error.length} error${r.error.length === 1 ? "" : "s"}`);
      }
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
    .action(() => {
      console.log(JSON.stringify(configJsonSchema(), null, 2));
    });
}

/** The normalized config without secret values. */
function redact<
  T extends { bgp: { peers: { password?: unknown }[] }; health: { token?: unknown } },
>(c: T): T {
  return {
    ...c,
    bgp: {
      ...c.bgp,
      peers: c.bgp.peers.map((p) => (p.password ? { ...p, password: "<redacted>" } : p)),
    },
    health: c.health.token ? { ...c.health, token: "<redacted>" } : c.health,
  };
}
