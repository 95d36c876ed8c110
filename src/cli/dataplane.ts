// `vipmux dataplane --config FILE`: the MUX forwarding engine alone (no BGP, every backend
// up), for lab nodes and manual tests. Register with `registerDataplane(program)`.
import { type Command, Option } from "commander";
import { runEngine } from "../dataplane/run-engine.ts";

interface DataplaneCliOptions {
  config: string;
  io?: "tun" | "packet";
  localV4?: string;
  localV6?: string;
  tun?: string;
  deviceMac?: boolean;
  counters?: string;
  countersInterval?: string;
}

export function registerDataplane(program: Command): void {
  program
    .command("dataplane")
    .description("run the userspace MUX forwarding engine from a MUX config (no BGP)")
    .requiredOption("-c, --config <file>", "vipmux MUX config")
    .addOption(
      new Option(
        "--io <kind>",
        "packet I/O: tun (VIPs routed into a TUN device) or packet (AF_PACKET on dataplane.interface); default: dataplane.io",
      ).choices(["tun", "packet"]),
    )
    .option(
      "--local-v4 <address>",
      "VXLAN outer source for IPv4 hosts (default: dataplane.source-v4, node.router-id)",
    )
    .option(
      "--local-v6 <address>",
      "VXLAN outer source for IPv6 hosts (default: dataplane.source-v6, bgp.next-hop-v6)",
    )
    .option("--tun <name>", "TUN device name (default vipmux0)")
    .option(
      "--device-mac",
      "inner Ethernet destination = the hosts' device MAC, not the chosen DIP's (older host agents)",
    )
    .option("--counters <file>", "write counters and heartbeat as JSON to this file")
    .option("--counters-interval <ms>", "how often to write --counters", "500")
    .addHelpText(
      "after",
      `
Runs until SIGTERM or SIGINT; SIGHUP reloads the config (a bad file changes nothing);
SIGUSR2 (tests only) stalls / resumes the forwarding worker.

Example:
  $ vipmux dataplane --config containerlab/mux1.yml --counters /tmp/mux1.json`,
    )
    .action(async (o: DataplaneCliOptions) => {
      const stop = await runEngine({
        config: o.config,
        ...(o.io ? { io: o.io } : {}),
        ...(o.localV4 ? { localV4: o.localV4 } : {}),
        ...(o.localV6 ? { localV6: o.localV6 } : {}),
        ...(o.tun ? { tunName: o.tun } : {}),
        ...(o.deviceMac ? { deviceMac: true } : {}),
        ...(o.counters ? { counters: o.counters } : {}),
        countersIntervalMs: Number(o.countersInterval ?? 500),
      });
      await new Promise<void>((resolve) => {
        process.once("SIGTERM", () => resolve());
        process.once("SIGINT", () => resolve());
      });
      await stop();
    });
}
