// `vipmux run` (the MUX daemon) and the commands that talk to it over the admin socket:
// status, drain, undrain, reload, flow.
import { Argument, type Command } from "commander";
import type { MuxStatus } from "../api/status.ts";
import { type Config, loadConfig } from "../config/index.ts";
import { type DataplanePort, MuxDaemon } from "../controller/mux.ts";
import { userspaceDataplane } from "../controller/userspace.ts";
import { StallSwitch } from "../dataplane/fault.ts";
import type { FlowLookup } from "../dataplane/forwarder.ts";
import { buildFlowPacket, type FlowQuery, FlowQueryError } from "../packet/build.ts";
import { notifyMuxRunning } from "../systemd/mux.ts";
import { SystemdNotifier } from "../systemd/notify.ts";
import { createLogger, type LogFn } from "../util/log.ts";
import { callDaemon as call, socketOption as socketOpt } from "./daemon.ts";
import { CliError, configError, UsageError } from "./errors.ts";
import { formatTable } from "./table.ts";

/** The `none` engine: BGP and health only, for a forwarder outside vipmux. */
function noDataplane(): DataplanePort {
  return {
    start: async () => {},
    apply: () => {},
    heartbeatAgeMs: () => undefined,
    stop: async () => {},
  };
}

export type DataplaneFactory = (config: Config) => DataplanePort;
const engines: Record<string, DataplaneFactory> = {
  none: noDataplane,
  userspace: (config) => {
    const log = createLogger(`dataplane ${config.node.name}`);
    return userspaceDataplane(config, log, testFaults(log));
  },
};

/**
 * Failure tests only (VIPMUX_TEST_FAULTS=1, which they set: TEST_FAULTS in
 * src/lab/testing.ts): SIGUSR2 stalls and resumes the forwarding worker, so a test can
 * see the MUX withdraw its VIPs (src/dataplane/fault.ts).
 */
function testFaults(log: LogFn): { stall?: StallSwitch } {
  if (process.env.VIPMUX_TEST_FAULTS !== "1") return {};
  const stall = new StallSwitch();
  stall.bindSignal("SIGUSR2", (line) => log("warn", line));
  return { stall };
}

/** Engines register here (the userspace worker lives in src/dataplane). */
export function registerEngine(name: string, factory: DataplaneFactory): void {
  engines[name] = factory;
}

function drainTarget(kind: string, name: string | undefined) {
  if (kind === "mux") {
    if (name !== undefined) throw new UsageError(`drain mux takes no name (got "${name}")`);
    return { kind };
  }
  if ((kind === "service" || kind === "backend") && name) return { kind, name };
  throw new UsageError(
    `${kind} needs a name: drain mux | drain service NAME | drain backend SERVICE/DIP`,
  );
}

export function formatStatus(s: MuxStatus): string {
  const health = (b: MuxStatus["backends"][number]) =>
    `${b.healthy === null ? "unknown" : b.healthy ? "up" : "down"}${b.drained ? " (drained)" : ""}`;
  const lines = [
    `${s.node}: ${s.muxHealthy ? "healthy" : "UNHEALTHY (all VIPs withdrawn)"}${s.admin.muxDraining ? ", draining" : ""}`,
    "",
    ...formatTable(
      ["PEER", "AS", "STATE", "BFD", "SENT", "LAST ERROR"],
      s.peers.map((p) => [
        p.address,
        String(p.asn),
        p.state,
        s.bfd.find((b) => b.peer === p.address)?.state ?? "-",
        String(p.prefixesSent),
        p.lastError,
      ]),
      ["left", "left", "left", "left", "right", "left"],
    ),
    "",
    ...formatTable(
      ["SERVICE", "VIP", "HEALTHY", "ANNOUNCED", "REASON"],
      s.services.map((v) => [
        v.name,
        v.vip,
        `${v.healthy}/${v.total}`,
        v.announced ? "yes" : "no",
        v.reason,
      ]),
    ),
    "",
    ...formatTable(
      ["BACKEND", "HOST", "WEIGHT", "HEALTH"],
      s.backends.map((b) => [`${b.service}/${b.dip}`, b.host, String(b.weight), health(b)]),
    ),
    "",
    `host agents: ${s.hostAgents.connected.length}/${s.hostAgents.expected.length} connected${s.hostAgents.expected.length ? ` (${s.hostAgents.expected.map((h) => (s.hostAgents.connected.includes(h) ? h : `${h} MISSING`)).join(", ")})` : ""}`,
  ];
  return lines.join("\n");
}

/**
 * One line for `vipmux flow`: where the flow goes on this MUX and why, e.g.
 * `tcp 203.0.113.10:40000 -> 20.20.20.100:80: service web, DIP 10.10.2.21 (host
 * 198.51.100.6), in the connection table (established)`.
 */
export function formatFlow(r: FlowLookup, asked: FlowQuery): string {
  const f = r.flow ?? asked;
  const at = (a: string, port: number) => (a.includes(":") ? `[${a}]:${port}` : `${a}:${port}`);
  const head = `${f.protocol} ${at(f.src, f.sport)} -> ${at(f.dst, f.dport)}`;
  const dip = (d: { dip: string | null; host: string | null }) =>
    `DIP ${d.dip ?? "(removed)"}${d.host ? ` (host ${d.host})` : ""}`;
  if (r.service === null) return `${head}: ${r.reason ?? r.verdict}`;
  const parts = [`service ${r.service}`];
  const e = r.entry;
  if (e && r.via === "entry") {
    parts.push(`${dip(e)}, in the connection table (${e.state})`);
    if (e.backend === "draining") parts.push("DIP draining (keeps its flows)");
    if (r.maglev && r.maglev.dip !== e.dip)
      parts.push(`a new connection on these ports would go to DIP ${r.maglev.dip}`);
    else if (!r.maglev) parts.push("no backend up for a new connection");
  } else if (e && r.via === "new-connection") {
    parts.push(`in the connection table (${e.state}) on ${dip(e)}; a bare SYN starts anew`);
  } else if (e) {
    parts.push(`in the connection table (${e.state}) on ${dip(e)}, ${e.backend}: re-hashed`);
  }
  if (r.verdict !== "forward") parts.push(`dropped: ${r.reason ?? r.verdict}`);
  else if (r.via !== "entry" && r.dip !== null) {
    const pick = `Maglev picks ${dip({ dip: r.dip, host: r.host })}`;
    parts.push(e ? pick : r.tracked ? `new flow: ${pick}` : pick);
  }
  return `${head}: ${parts.join(", ")}`;
}

export function registerRun(program: Command): void {
  program
    .command("run")
    .description("run the MUX: BGP speaker, health, controller, dataplane, admin API")
    .requiredOption("-c, --config <file>", "vipmux YAML config")
    .addHelpText(
      "after",
      `
Signals: SIGHUP reloads the config (an invalid file changes nothing); SIGTERM and SIGINT
withdraw every VIP, close BGP with Cease/Administrative Shutdown, and exit. With
VIPMUX_TEST_FAULTS=1 (failure tests only), SIGUSR2 stalls and resumes the forwarder.`,
    )
    .action(async (opts: { config: string }) => {
      const r = loadConfig(opts.config);
      if (!r.ok) throw configError(r.error);
      const factory = engines[r.value.dataplane.engine];
      if (!factory)
        throw new CliError(`dataplane engine "${r.value.dataplane.engine}" is not available`);
      // Under systemd (Type=notify): READY=1, STATUS=, RELOADING=1, STOPPING=1, and WATCHDOG=1
      // only while the forwarder's heartbeat is fresh (src/systemd/mux.ts).
      const sd = SystemdNotifier.fromEnv(process.env, { log: createLogger("systemd") });
      const daemon = new MuxDaemon(r.value, {
        configFile: opts.config,
        dataplane: factory,
        notify: sd,
      });
      await daemon.start().catch(async (e: unknown) => {
        // Close what did start (the admin socket, sessions, workers) so the process exits
        // with the error instead of hanging (systemd restarts it: Restart=on-failure).
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          daemon.stop("start failed").catch(() => {}),
          new Promise((r) => {
            timer = setTimeout(r, 5000);
          }),
        ]);
        clearTimeout(timer);
        throw e;
      });
      notifyMuxRunning(sd, daemon);
      await new Promise<void>((resolve) => {
        const stop = (sig: string) => {
          console.error(`info: ${sig}: shutting down`);
          sd.stopping(`${sig}: withdrawing every VIP, closing BGP`);
          void daemon.stop(`vipmux ${r.value.node.name} shutting down`).finally(resolve);
        };
        process.once("SIGTERM", () => stop("SIGTERM"));
        process.once("SIGINT", () => stop("SIGINT"));
        process.on("SIGHUP", () => void daemon.reload());
      });
    });

  socketOpt(program.command("status").description("peers, VIPs, backends and their health"))
    .option("--json", "machine-readable output")
    .action(async (opts: { socket: string; json?: boolean }) => {
      const s = (await call(opts.socket, "GET", "/v1/status")) as MuxStatus;
      console.log(opts.json ? JSON.stringify(s, null, 2) : formatStatus(s));
    });

  for (const [verb, on] of [
    ["drain", true],
    ["undrain", false],
  ] as const) {
    socketOpt(
      program
        .command(verb)
        .description(
          on
            ? "drain the MUX (graceful shutdown, then withdraw), a service, or a backend (no new flows)"
            : "undo a drain",
        )
        .addArgument(new Argument("<kind>", "what to drain").choices(["mux", "service", "backend"]))
        .argument("[name]", "service NAME, or backend SERVICE/DIP"),
    )
      .option("--json", `machine-readable output: {"ok": true, "action": "${verb}", "target": ...}`)
      .action(
        async (
          kind: string,
          name: string | undefined,
          opts: { socket: string; json?: boolean },
        ) => {
          const target = drainTarget(kind, name);
          await call(opts.socket, "POST", `/v1/${verb}`, target);
          console.log(
            opts.json
              ? JSON.stringify({ ok: true, action: verb, target })
              : `${verb}ed ${kind}${name ? ` ${name}` : ""}`,
          );
        },
      );
  }

  socketOpt(
    program.command("reload").description("re-read the daemon's config file (same as SIGHUP)"),
  )
    .option("--json", 'machine-readable output: {"ok": true, "action": "reload"}')
    .action(async (opts: { socket: string; json?: boolean }) => {
      await call(opts.socket, "POST", "/v1/reload");
      console.log(opts.json ? JSON.stringify({ ok: true, action: "reload" }) : "config reloaded");
    });

  socketOpt(
    program
      .command("flow")
      .description("which DIP a flow maps to, and whether it is in the connection table")
      .addArgument(new Argument("<protocol>", "transport protocol").choices(["tcp", "udp"]))
      .argument("<src>", "source address (the client)")
      .argument("<sport>", "source port")
      .argument("<dst>", "destination (VIP)")
      .argument("<dport>", "destination port")
      .option("--json", "machine-readable output")
      .addHelpText(
        "after",
        `
Asks this MUX's forwarder what it would do with the next packet of the flow (read-only:
no connection-table entry or counter changes). It answers with the DIP and whether the flow
is in the connection table (untrusted, established or closing), or, for a flow it has not
seen, the DIP Maglev picks (a new connection, a bare SYN, always takes that choice). Another
MUX gives the same Maglev choice; only the MUX the flow's packets reach has the entry.

  vipmux flow tcp 203.0.113.10 40000 20.20.20.100 80
  tcp 203.0.113.10:40000 -> 20.20.20.100:80: service web, DIP 10.10.2.21 (host 198.51.100.6), in the connection table (established)`,
      ),
  ).action(
    async (
      protocol: string,
      src: string,
      sport: string,
      dst: string,
      dport: string,
      opts: { socket: string; json?: boolean },
    ) => {
      const num = (v: string) => (v.trim() === "" ? Number.NaN : Number(v));
      const asked: FlowQuery = { protocol, src, sport: num(sport), dst, dport: num(dport) };
      try {
        // The daemon's own check (addresses, one family), here before asking it.
        buildFlowPacket(asked);
      } catch (e) {
        if (e instanceof FlowQueryError) throw new UsageError(e.message);
        throw e;
      }
      const q = new URLSearchParams({ protocol, src, sport, dst, dport });
      const r = (await call(opts.socket, "GET", `/v1/flow?${q}`)) as FlowLookup;
      console.log(opts.json ? JSON.stringify(r, null, 2) : formatFlow(r, asked));
    },
  );
}
