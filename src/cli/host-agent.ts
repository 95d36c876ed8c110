// `vipmux host-agent --config FILE` (run), `... plan` (print the desired kernel state),
// `... cleanup` (remove everything the agent made).
import type { Command } from "commander";
import { type HostAgentConfig, loadHostAgentConfig } from "../config/host-agent.ts";
import { formatConfigError } from "../config/load.ts";
import { emptyState, reconcile, runAgent } from "../hostagent/agent.ts";
import { nftScript } from "../hostagent/diff.ts";
import { Kernel } from "../hostagent/kernel.ts";
import { plan } from "../hostagent/plan.ts";
import { SystemdNotifier } from "../systemd/notify.ts";
import { CliError, configError } from "./errors.ts";

const DEFAULT_ROUTE_TABLE = 4789;

const log = (msg: string) => console.log(`${new Date().toISOString()} host-agent: ${msg}`);

function load(file: string): HostAgentConfig {
  const r = loadHostAgentConfig(file);
  if (!r.ok)
    throw configError(
      r.error,
      `${file}: ${r.error.length} error${r.error.length === 1 ? "" : "s"}`,
    );
  return r.value;
}

export function registerHostAgent(program: Command): void {
  const cmd = program
    .command("host-agent")
    .description(
      "program this backend host: VXLAN devices, nftables DNAT to local DIPs, DSR replies (root)",
    )
    .option("-c, --config <file>", "host-agent YAML config")
    .option("--once", "reconcile once and exit")
    .option("--dry-run", "print the changes a reconcile would make, change nothing")
    .option("--cleanup", "on SIGTERM/SIGINT remove the agent's kernel state (default: keep it)")
    .addHelpText(
      "after",
      `
The agent keeps the kernel in the config's state: at start, on SIGHUP (config reloaded;
a bad config keeps the running one) and every reconcile interval. Only changed services
are touched; conntrack entries are deleted only for removed services or ports. On exit
the state stays, so flows survive an agent restart; 'cleanup' removes it.

Examples:
  $ vipmux host-agent --config /etc/vipmux/host-agent.yml
  $ vipmux host-agent --config host.yml --dry-run
  $ vipmux host-agent plan --config host.yml
  $ vipmux host-agent cleanup`,
    )
    .action(
      async (opts: { config?: string; once?: boolean; dryRun?: boolean; cleanup?: boolean }) => {
        if (!opts.config) throw new CliError("host-agent needs --config FILE", 2);
        const file = opts.config;
        const cfg = load(file);
        if (opts.once || opts.dryRun) {
          const kernel = new Kernel();
          try {
            const desired = plan(cfg);
            for (const w of desired.warnings) log(`warning: ${w}`);
            const r = await reconcile(kernel, desired, cfg.host.routeTable, log, {
              dryRun: opts.dryRun === true,
            });
            log(
              `${opts.dryRun ? "dry run" : "reconciled"}: ${r.actions.length} changes in ${r.durationMs.toFixed(0)} ms`,
            );
          } finally {
            kernel.close();
          }
          return;
        }
        // Under systemd (Type=notify): READY=1 after the first reconcile, RELOADING=1 /
        // READY=1 around SIGHUP, STOPPING=1; WATCHDOG=1 while the event loop runs.
        const sd = SystemdNotifier.fromEnv(process.env, { log: (l, m) => log(`${l}: ${m}`) });
        sd.startWatchdog(() => true, { what: "the host agent's event loop" });
        process.exitCode = await runAgent(cfg, {
          log,
          notify: sd,
          cleanupOnExit: opts.cleanup === true,
          load: () => {
            const r = loadHostAgentConfig(file);
            return r.ok ? r : { ok: false, error: r.error.map(formatConfigError) };
          },
        });
      },
    );

  cmd
    .command("plan")
    .description("print the desired kernel state (devices, nftables, routes) as JSON; no root")
    .option("--nft", "print the nftables script instead")
    .option("--json", "print the plan as JSON (the default)")
    .action((opts: { nft?: boolean; json?: boolean }) => {
      // --config belongs to `host-agent` (commander parses it wherever it appears).
      const file = (cmd.opts() as { config?: string }).config;
      if (!file) throw new CliError("host-agent plan needs --config FILE", 2);
      if (opts.nft && opts.json) throw new CliError("--nft and --json exclude each other", 2);
      const desired = plan(load(file));
      if (opts.nft) process.stdout.write(nftScript(desired.tables, []));
      else console.log(JSON.stringify(desired, null, 2));
    });

  cmd
    .command("cleanup")
    .description("remove every VXLAN device, nftables table, route and rule the agent made")
    .action(async () => {
      // With --config, its route-table; otherwise the default one.
      const file = (cmd.opts() as { config?: string }).config;
      const table = file ? load(file).host.routeTable : DEFAULT_ROUTE_TABLE;
      const kernel = new Kernel();
      try {
        const r = await reconcile(kernel, emptyState(), table, log);
        log(`cleanup: ${r.actions.length} changes, ${r.conntrackDeleted} conntrack entries`);
      } finally {
        kernel.close();
      }
    });
}
