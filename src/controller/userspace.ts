// The userspace engine (src/dataplane) behind the daemon's DataplanePort: tables go to the
// forwarding worker, counters are polled once a second for metrics and status, and the
// worker's heartbeat is MUX self-health.
import type { Config } from "../config/schema.ts";
import { Dataplane } from "../dataplane/engine.ts";
import type { StallSwitch } from "../dataplane/fault.ts";
import type { EngineCounters } from "../dataplane/io/protocol.ts";
import type { LogFn } from "../util/log.ts";
import type { DataplanePort } from "./mux.ts";

export function userspaceDataplane(
  config: Config,
  log: LogFn,
  /** Failure tests only (src/dataplane/fault.ts). */
  faults: { stall?: StallSwitch } = {},
): DataplanePort & { engine: Dataplane } {
  const d = config.dataplane;
  if (d.io === "packet" && !d.interface)
    throw new Error("dataplane.io: packet needs dataplane.interface");
  const localV6 = d.sourceV6 ?? config.bgp.nextHopV6;
  const engine = new Dataplane({
    io: d.io === "packet" ? { kind: "packet", interface: d.interface! } : { kind: "tun" },
    localV4: d.sourceV4 ?? config.node.routerId,
    ...(localV6 ? { localV6 } : {}),
    vxlanPort: d.vxlanPort,
    flowTableSize: d.flowTableSize,
    secondChanceMs: d.secondChance,
    log: (line) => log("info", line),
    // A dead worker is a MUX that cannot forward: its heartbeat stops, so the controller
    // withdraws every VIP; nothing else to do here but say it.
    onFailure: (e) => log("error", `forwarding worker failed: ${e.message}`),
    ...(faults.stall ? { stall: faults.stall } : {}),
  });
  let latest: EngineCounters | undefined;
  let poll: NodeJS.Timeout | undefined;
  return {
    engine,
    async start() {
      await engine.start();
      poll = setInterval(() => {
        engine
          .counters(900)
          .then((c) => {
            latest = c;
          })
          .catch(() => {});
      }, 1000);
      poll.unref?.();
    },
    apply: (model) => engine.apply(model),
    heartbeatAgeMs: () => engine.heartbeat.ageMs,
    counters: () =>
      latest && {
        drops: latest.drops,
        vips: latest.vips,
        backends: latest.backends,
        conn: latest.conn,
        batchLatencyUs: latest.io.batchLatencyUs,
      },
    lookup: (flow) => engine.lookup(flow),
    async stop() {
      if (poll) clearInterval(poll);
      await engine.stop();
    },
  };
}
