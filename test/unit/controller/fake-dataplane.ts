// A dataplane for daemon tests that need no forwarding: takes every table, always alive.
import type { DataplanePort } from "../../../src/controller/mux.ts";

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
