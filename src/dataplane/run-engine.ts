// Runs the MUX forwarding engine alone from a MUX config: every backend up (until the
// controller drives health), VIPs routed into the TUN device. For lab nodes and manual
// tests:
//
//   node src/dataplane/run-engine.ts --config containerlab/mux1.yml [--io tun|packet]
//        [--local-v4 ADDR] [--local-v6 ADDR] [--counters FILE] [--counters-interval MS]
//        [--device-mac]   (inner destination = the hosts' device MAC, not the chosen DIP's)
//
// SIGHUP reloads the config (a bad file is reported and changes nothing); SIGTERM/SIGINT
// stop the engine and remove its device; SIGUSR2 (test only) stalls / resumes the worker. `vipmux dataplane` (src/cli/dataplane.ts) is the
// same thing under the CLI.
import { renameSync, writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { type Config, formatConfigError, loadConfig } from "../config/index.ts";
import { Dataplane, type DataplaneIo } from "./engine.ts";
import { StallSwitch } from "./fault.ts";
import { serviceModelFromConfig } from "./tables.ts";

export interface RunEngineOptions {
  readonly config: string;
  readonly io?: "tun" | "packet";
  readonly localV4?: string;
  readonly localV6?: string;
  readonly tunName?: string;
  /** Inner destination = the hosts' device MAC instead of the chosen DIP's (older agents). */
  readonly deviceMac?: boolean;
  /** Write counters + heartbeat as JSON to this file every `countersIntervalMs`. */
  readonly counters?: string;
  readonly countersIntervalMs?: number;
  readonly log?: (line: string) => void;
}

function load(file: string, log: (line: string) => void): Config | undefined {
  const r = loadConfig(file);
  if (r.ok) return r.value;
  for (const e of r.error) log(formatConfigError(e));
  return undefined;
}

/** Starts the engine; resolves with a stop function once the first table is installed. */
export async function runEngine(opts: RunEngineOptions): Promise<() => Promise<void>> {
  const log = opts.log ?? ((line: string) => console.log(`${new Date().toISOString()} ${line}`));
  const config = load(opts.config, log);
  if (!config) throw new Error(`${opts.config}: invalid config`);
  const kind = opts.io ?? config.dataplane.io;
  let io: DataplaneIo;
  if (kind === "packet") {
    const ifname = config.dataplane.interface;
    if (!ifname) throw new Error("--io packet needs dataplane.interface in the config");
    io = { kind: "packet", interface: ifname };
  } else {
    io = { kind: "tun", ...(opts.tunName ? { name: opts.tunName } : {}) };
  }
  const localV4 = opts.localV4 ?? config.dataplane.sourceV4 ?? config.node.routerId;
  const localV6 = opts.localV6 ?? config.dataplane.sourceV6 ?? config.bgp.nextHopV6;
  // Failure tests (lab nodes): SIGUSR2 stalls / resumes the forwarding worker.
  const stall = new StallSwitch();
  const dp = new Dataplane({
    stall,
    io,
    localV4,
    ...(localV6 ? { localV6 } : {}),
    vxlanPort: config.dataplane.vxlanPort,
    flowTableSize: config.dataplane.flowTableSize,
    secondChanceMs: config.dataplane.secondChance,
    ...(opts.deviceMac ? { perDipMac: false } : {}),
    log,
    // Standalone, a dead worker ends the process (non-zero) so its supervisor sees it.
    onFailure: (e) => {
      log(`dataplane: failed: ${e.message}; exiting`);
      void dp.stop().finally(() => process.exit(1));
    },
  });
  await dp.start();
  await dp.apply(serviceModelFromConfig(config));

  const reload = () => {
    const next = load(opts.config, log);
    if (!next) {
      log("dataplane: reload refused; the running table stays");
      return;
    }
    dp.apply(serviceModelFromConfig(next)).catch((e: Error) => log(`dataplane: ${e.message}`));
  };
  process.on("SIGHUP", reload);
  const unbindStall = stall.bindSignal("SIGUSR2", (line) => log(`dataplane: ${line}`));

  let timer: NodeJS.Timeout | undefined;
  if (opts.counters) {
    const file = opts.counters;
    let last: unknown;
    let busy = false;
    // The heartbeat is read from shared memory, so it is written even when the worker does
    // not answer (stalled): the file then carries the last counters and the error.
    const write = async () => {
      if (busy) return;
      busy = true;
      let error: string | undefined;
      try {
        last = await dp.counters(1_000);
      } catch (e) {
        error = (e as Error).message;
      }
      try {
        const tmp = `${file}.tmp`;
        writeFileSync(
          tmp,
          JSON.stringify({ heartbeat: dp.heartbeat, counters: last, ...(error ? { error } : {}) }),
        );
        renameSync(tmp, file);
      } catch (e) {
        log(`dataplane: counters file: ${(e as Error).message}`);
      } finally {
        busy = false;
      }
    };
    await write();
    timer = setInterval(() => void write(), opts.countersIntervalMs ?? 500);
  }
  return async () => {
    process.off("SIGHUP", reload);
    unbindStall();
    if (timer) clearInterval(timer);
    await dp.stop();
  };
}

/** Command-line entry: parses argv, runs until SIGTERM/SIGINT. */
export async function runEngineMain(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: "string", short: "c" },
      io: { type: "string" },
      "local-v4": { type: "string" },
      "local-v6": { type: "string" },
      tun: { type: "string" },
      "device-mac": { type: "boolean" },
      counters: { type: "string" },
      "counters-interval": { type: "string" },
    },
  });
  if (!values.config) {
    console.error(
      "usage: run-engine --config FILE [--io tun|packet] [--local-v4 A] [--local-v6 A] [--tun NAME] [--counters FILE] [--counters-interval MS] [--device-mac]",
    );
    return 2;
  }
  if (values.io !== undefined && values.io !== "tun" && values.io !== "packet") {
    console.error(`--io: ${values.io} is not tun or packet`);
    return 2;
  }
  // Command-line flags keep their kebab-case names; destructured once here.
  const {
    "local-v4": localV4,
    "local-v6": localV6,
    "device-mac": deviceMac,
    "counters-interval": countersInterval,
  } = values;
  const stop = await runEngine({
    config: values.config,
    ...(values.io ? { io: values.io as "tun" | "packet" } : {}),
    ...(localV4 ? { localV4 } : {}),
    ...(localV6 ? { localV6 } : {}),
    ...(values.tun ? { tunName: values.tun } : {}),
    ...(deviceMac ? { deviceMac: true } : {}),
    ...(values.counters ? { counters: values.counters } : {}),
    ...(countersInterval ? { countersIntervalMs: Number(countersInterval) } : {}),
  });
  await new Promise<void>((resolve) => {
    const done = () => resolve();
    process.once("SIGTERM", done);
    process.once("SIGINT", done);
  });
  await stop();
  return 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runEngineMain(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: Error) => {
      console.error(`run-engine: ${e.message}`);
      process.exit(1);
    },
  );
}
