// Daemon tests that need no forwarding: a dataplane that takes every table and always
// looks alive, and a MUX daemon started on it from a config file.
import { loadConfig } from "../../../src/config/index.ts";
import { type DataplanePort, MuxDaemon } from "../../../src/controller/mux.ts";

export function fakeDataplane(): DataplanePort {
  return {
    start: async () => {},
    apply: async () => {},
    heartbeatAgeMs: () => 0,
    lookup: async () => {
      throw new Error("this test's dataplane answers no lookups");
    },
    stop: async () => {},
  };
}

/** A started MUX daemon on `fakeDataplane` running the config in `file` (silent logs). */
export async function startFakeDaemon(file: string): Promise<MuxDaemon> {
  const cfg = loadConfig(file);
  if (!cfg.ok) throw new Error(JSON.stringify(cfg.error));
  const daemon = new MuxDaemon(cfg.value, {
    configFile: file,
    dataplane: fakeDataplane,
    log: () => {},
  });
  await daemon.start();
  return daemon;
}
