// `vipmux lab ...`: run containerlab topologies in Linux network namespaces with
// Debian's FRR, for tests and demos on machines without Docker.
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import type { Command } from "commander";
import { startBackend } from "../lab/backend.ts";
import {
  down,
  execIn,
  findNode,
  labDir,
  nodeArgv,
  planFromFile,
  readState,
  status,
  TopologyInvalid,
  up,
} from "../lab/index.ts";
import { supervise } from "../lab/supervisor.ts";
import { loadTopology } from "../lab/topology.ts";
import { CliError } from "./errors.ts";

const DEFAULT_TOPOLOGY = "containerlab/vipmux.clab.yml";

interface LabOpts {
  topo?: string;
  name?: string;
  dir?: string;
}

function topologyFile(opts: LabOpts): string {
  const file = resolve(opts.topo ?? DEFAULT_TOPOLOGY);
  if (!existsSync(file))
    throw new CliError(`topology file not found: ${file} (use -t FILE)`, { code: "not-found" });
  return file;
}

/** The lab name: --name, else the topology's own name. */
function labName(opts: LabOpts): string {
  if (opts.name) return opts.name;
  const topo = loadTopology(topologyFile(opts));
  if (!topo.ok) throw new TopologyInvalid(topo.error.map((e) => `${e.path}: ${e.message}`));
  return topo.value.name;
}

export function registerLab(program: Command): void {
  const lab = program
    .command("lab")
    .description("run a containerlab topology in network namespaces (root; uses Debian's FRR)")
    .addHelpText(
      "after",
      `
Nodes with an FRR image (quay.io/frrouting/frr:*, frrouting/frr:*) run the local FRR
daemons with the bound frr.conf and daemons files; nodes with the vipmux image run
\`vipmux\` from this installation; other nodes run their exec/cmd with local binaries.
State and logs: /var/run/vipmux/lab/<name>/ (or --dir).

Examples:
  vipmux lab up -t containerlab/vipmux.clab.yml
  vipmux lab exec edge -- vtysh -c "show bgp summary json"
  vipmux lab status --json
  vipmux lab down`,
    );

  const common = (c: Command) =>
    c
      .option("-t, --topo <file>", "containerlab topology file", DEFAULT_TOPOLOGY)
      .option("--name <name>", "lab name (default: the topology's name)")
      .option("--dir <dir>", "state and log directory (default: /var/run/vipmux/lab/<name>)");

  common(lab.command("up").description("create namespaces, links, FRR and processes")).action(
    async (opts: LabOpts) => {
      const plan = planFromFile(topologyFile(opts), {
        ...(opts.name ? { name: opts.name } : {}),
        ...(opts.dir ? { dir: opts.dir } : {}),
      });
      await up(plan, { log: (l) => console.error(`lab: ${l}`) });
      console.log(`lab ${plan.lab} is up: ${plan.nodes.length} nodes, ${plan.links.length} links`);
      console.log(
        `  vipmux lab exec ${plan.nodes[0]?.name ?? "NODE"} -- CMD   |   vipmux lab down`,
      );
    },
  );

  common(
    lab.command("down").description("remove every namespace, link and process of the lab"),
  ).action(async (opts: LabOpts) => {
    const name = labName(opts);
    const dir = labDir(name, opts.dir);
    let plan = readState(dir)?.plan;
    if (!plan && existsSync(topologyFile(opts)))
      plan = planFromFile(topologyFile(opts), { name, ...(opts.dir ? { dir: opts.dir } : {}) });
    const report = await down(dir, plan);
    console.log(
      `lab ${name} down: ${report.namespaces.length} namespaces, ${report.processes} processes removed`,
    );
  });

  common(lab.command("status").description("nodes, processes and interfaces of a running lab"))
    .option("--json", "machine-readable output")
    .action(async (opts: LabOpts & { json?: boolean }) => {
      const name = labName(opts);
      const st = await status(labDir(name, opts.dir));
      if (!st) throw new CliError(`lab ${name} is not up`, { code: "not-found" });
      if (opts.json) {
        console.log(JSON.stringify(st, null, 2));
        return;
      }
      for (const n of st.nodes) {
        console.log(
          `${n.name.padEnd(10)} ${n.role.padEnd(7)} ${n.present ? "up  " : "GONE"} ${n.netns}  ${n.processes.length} proc`,
        );
        for (const i of n.interfaces)
          console.log(`    ${i.name.padEnd(8)} ${i.state.padEnd(8)} ${i.addresses.join(" ")}`);
      }
    });

  common(
    lab
      .command("exec")
      .description("run a command inside a node (vtysh reaches the node's FRR)")
      .argument("<node>", "node name")
      .argument("<cmd...>", "command and arguments (after --)"),
  ).action(async (nodeName: string, cmd: string[], opts: LabOpts) => {
    const name = labName(opts);
    const state = readState(labDir(name, opts.dir));
    if (!state) throw new CliError(`lab ${name} is not up`, { code: "not-found" });
    const node = findNode(state, nodeName);
    const r = await execIn(node, nodeArgv(node, cmd), { timeoutMs: 600_000 });
    process.stdout.write(r.stdout);
    process.stderr.write(r.stderr);
    process.exitCode = r.code;
  });

  lab
    .command("backend")
    .description(
      "run a lab backend: HTTP (name and client address; /healthz), UDP echo, TCP line echo",
    )
    .requiredOption("--name <name>", "name in HTTP answers")
    .option("--http <port>", "HTTP port", (v) => Number(v))
    .option("--udp-echo <port>", "UDP echo port", (v) => Number(v))
    .option("--tcp-echo <port>", 'TCP line echo port (answers "NAME <line>")', (v) => Number(v))
    .addHelpText(
      "after",
      "\nExample (a backend VM of the canonical lab):\n  vipmux lab backend --name vm11 --http 8080 --udp-echo 7007",
    )
    .action(async (opts: { name: string; http?: number; udpEcho?: number; tcpEcho?: number }) => {
      if (!opts.http && !opts.udpEcho && !opts.tcpEcho)
        throw new CliError("give at least one of --http, --udp-echo, --tcp-echo", 2);
      const b = await startBackend(opts);
      await new Promise<void>((resolve) => {
        process.once("SIGTERM", resolve);
        process.once("SIGINT", resolve);
      });
      await b.close();
    });

  lab
    .command("supervise", { hidden: true })
    .requiredOption("--dir <dir>")
    .action((opts: { dir: string }) => supervise(opts.dir));
}
