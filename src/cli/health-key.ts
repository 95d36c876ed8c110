// `vipmux health-key PA`: the key one host agent authenticates with, derived from the
// MUXes' health.token (src/health/keys.ts). Run where the MUX config is; give the host
// only its key (its host-agent config: health.key).
import { chmodSync, writeFileSync } from "node:fs";
import type { Command } from "commander";
import { loadConfig, resolveSecret } from "../config/index.ts";
import { hostKey } from "../health/keys.ts";
import { CliError, configError } from "./errors.ts";

export function registerHealthKey(program: Command): void {
  program
    .command("health-key")
    .description(
      "print (or write) the health-stream key of one host agent, derived from health.token",
    )
    .argument("<pa>", "the host's PA (host.pa in its host-agent config)")
    .option("-c, --config <file>", "the MUX config holding health.token", "/etc/vipmux/mux.yml")
    .option("--next", "derive from health.next-token (key rotation)")
    .option("-o, --out <file>", "write the key to this file (mode 0600) instead of stdout")
    .option(
      "--json",
      'machine-readable output: {"pa": ..., "key": ...} (with -o: "file" instead of "key")',
    )
    .addHelpText(
      "after",
      `
Example:
  $ vipmux health-key 198.51.100.2 -c /etc/vipmux/mux.yml -o host1.key
  then on host1: health: { key: { file: /etc/vipmux/host1.key }, muxes: [...] }`,
    )
    .action(
      (pa: string, opts: { config: string; next?: boolean; out?: string; json?: boolean }) => {
        const r = loadConfig(opts.config);
        if (!r.ok) throw configError(r.error);
        const secret = opts.next ? r.value.health.nextToken : r.value.health.token;
        if (secret === undefined)
          throw new CliError(
            `${opts.config}: health.${opts.next ? "next-token" : "token"} is not set`,
            { code: "invalid-config" },
          );
        const s = resolveSecret(secret);
        if (!s.ok) throw new CliError(s.error, { code: "invalid-config" });
        const key = hostKey(s.value, pa);
        if (opts.out) {
          writeFileSync(opts.out, `${key}\n`, { mode: 0o600 });
          chmodSync(opts.out, 0o600);
          if (opts.json) console.log(JSON.stringify({ pa, file: opts.out }));
        } else console.log(opts.json ? JSON.stringify({ pa, key }) : key);
      },
    );
}
