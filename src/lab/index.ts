// Public surface of the lab runner, used by the CLI and by integration tests.

import { type LabPlan, type PlanOptions, planLab } from "./plan.ts";
import { formatTopologyError, loadTopology } from "./topology.ts";

export * from "./plan.ts";
export * from "./runner.ts";
export * from "./topology.ts";

export class TopologyInvalid extends Error {
  override name = "TopologyInvalid";
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid topology:\n  ${problems.join("\n  ")}`);
    this.problems = problems;
  }
}

/** Loads, validates and plans a topology file; throws TopologyInvalid listing every problem. */
export function planFromFile(file: string, opts: PlanOptions = {}): LabPlan {
  const topo = loadTopology(file);
  if (!topo.ok) throw new TopologyInvalid(topo.error.map(formatTopologyError));
  return planLab(topo.value, opts);
}
