// `vipmux flow` end to end without root: a MUX daemon whose dataplane is the real forwarding
// worker on the memory port, its admin socket, and the CLI (text and --json) against it.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adminRequest } from "../../../src/api/admin.ts";
import { formatFlow } from "../../../src/cli/run.ts";
import { loadConfig } from "../../../src/config/index.ts";
import { type DataplanePort, MuxDaemon } from "../../../src/controller/mux.ts";
import { Dataplane } from "../../../src/dataplane/engine.ts";
import { type FlowLookup, Forwarder } from "../../../src/dataplane/forwarder.ts";
import { pollUntil } from "../../../src/lab/testing.ts";
import { buildForwardingTable } from "../../../src/lb/forwarding-table.ts";
import type { BackendSpec, ServiceModel } from "../../../src/lb/service.ts";
import { buildFlowPacket, type FlowQuery } from "../../../src/packet/build.ts";
import { TcpFlag } from "../../../src/packet/constants.ts";
import { buildPacket } from "../packet/packets.ts";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const run = promisify(execFile);

/** The CLI in a child process (async: the daemon answers from this process's loop). */
async function vipmux(...args: string[]) {
  try {
    const r = await run(process.execPath, [`${root}src/cli/main.ts`, ...args], { cwd: root });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

describe("GET /v1/flow and vipmux flow", () => {
  const dir = mkdtempSync(join(tmpdir(), "vipmux-flow-"));
  const socket = join(dir, "admin.sock");
  let daemon: MuxDaemon;
  let engine: Dataplane;

  beforeAll(async () => {
    const file = join(dir, "mux.yml");
    writeFileSync(
      file,
      `node: { name: flowtest, router-id: 192.0.2.2 }
bgp:
  asn: 65101
  peers:
    - { address: 127.0.0.1, asn: 65000, port: 1 }   # nobody there: BGP stays down
health: { listen: "127.0.0.1:0", token: "a-cluster-secret-for-tests" }
api: { socket: ${socket} }
services:
  - name: web
    vip: 20.20.20.100
    ports: [{ protocol: tcp, port: 80, backend-port: 8080 }]
    vni: 100
    health: { type: none }
    backends:
      - { dip: 10.10.1.11, host: 198.51.100.2 }
      - { dip: 10.10.2.21, host: 198.51.100.6 }
`,
    );
    const cfg = loadConfig(file);
    if (!cfg.ok) throw new Error(JSON.stringify(cfg.error));
    engine = new Dataplane({ io: { kind: "memory" }, localV4: "192.0.2.2", flowTableSize: 4096 });
    const port: DataplanePort = {
      start: () => engine.start(),
      apply: (m) => engine.apply(m),
      heartbeatAgeMs: () => engine.heartbeat.ageMs,
      lookup: (flow) => engine.lookup(flow),
      stop: () => engine.stop(),
    };
    daemon = new MuxDaemon(cfg.value, {
      configFile: file,
      dataplane: () => port,
      log: () => {},
    });
    await daemon.start();
    // The controller's first table reaches the worker.
    await pollUntil(async () => engine.appliedVersion > 0, {
      timeoutMs: 20_000,
      what: "the first table in the worker",
    });
  }, 30_000);
  afterAll(async () => {
    await daemon?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("answers where a flow goes, in the table once its packets went through", async () => {
    const args = ["flow", "tcp", "203.0.113.10", "40000", "20.20.20.100", "80", "-s", socket];
    const fresh = await vipmux(...args, "--json");
    expect(fresh.code).toBe(0);
    const r = JSON.parse(fresh.stdout) as FlowLookup;
    expect(r).toMatchObject({ verdict: "forward", service: "web", entry: null, via: "maglev" });
    const host = r.dip === "10.10.1.11" ? "198.51.100.2" : "198.51.100.6";
    expect((await vipmux(...args)).stdout).toBe(
      `tcp 203.0.113.10:40000 -> 20.20.20.100:80: service web, new flow: Maglev picks DIP ${r.dip} (host ${host})\n`,
    );

    const pkt = (flags: number) =>
      buildPacket({
        src: "203.0.113.10",
        dst: "20.20.20.100",
        proto: "tcp",
        sport: 40000,
        dport: 80,
        flags,
      });
    await engine.inject([pkt(TcpFlag.syn), pkt(TcpFlag.ack)]);
    expect((await vipmux(...args)).stdout).toBe(
      `tcp 203.0.113.10:40000 -> 20.20.20.100:80: service web, DIP ${r.dip} (host ${host}), in the connection table (established)\n`,
    );
  });

  it("refuses bad input with 400 and the reason; the CLI refuses it before asking, exit 2", async () => {
    const q = (o: Record<string, string>) =>
      `/v1/flow?${new URLSearchParams({ protocol: "tcp", src: "203.0.113.10", sport: "1", dst: "20.20.20.100", dport: "80", ...o })}`;
    for (const [patch, message] of [
      [{ protocol: "sctp" }, 'protocol must be tcp or udp, not "sctp"'],
      [{ src: "nope" }, 'source "nope" is not an IP address'],
      [{ sport: "x" }, "source port must be a port number 1..65535, not NaN"],
      [{ dport: "" }, "destination port must be a port number 1..65535, not NaN"],
      [{ dst: "2001:db8::1" }, "are not of one address family"],
    ] as const) {
      const r = await adminRequest(socket, "GET", q(patch));
      expect(r.status).toBe(400);
      expect((r.body as { error: string }).error).toContain(message);
    }
    const cli = await vipmux(
      "flow",
      "udp",
      "203.0.113.10",
      "0",
      "20.20.20.100",
      "80",
      "-s",
      socket,
    );
    expect(cli.code).toBe(2);
    expect(cli.stderr).toContain("source port must be a port number 1..65535, not 0");
  });
});

describe("formatFlow", () => {
  const asked: FlowQuery = {
    protocol: "tcp",
    src: "203.0.113.10",
    sport: 40000,
    dst: "20.20.20.100",
    dport: 80,
  };
  const model = (states: Record<string, BackendSpec["state"]> = {}): ServiceModel => ({
    services: [
      {
        name: "web",
        vip: "20.20.20.100",
        ports: [{ protocol: "tcp", port: 80 }],
        vni: 100,
        maglevSize: 1009,
        backends: ["10.10.1.11", "10.10.1.12", "10.10.2.21"].map((dip) => ({
          dip,
          host: dip.startsWith("10.10.1.") ? "198.51.100.2" : "198.51.100.6",
          state: states[dip] ?? "up",
        })),
      },
      {
        name: "web6",
        vip: "2001:db8:f::100",
        ports: [{ protocol: "udp", port: 7 }],
        vni: 101,
        maglevSize: 1009,
        backends: [{ dip: "fd00:10:1::11", host: "198.51.100.2" }],
      },
    ],
  });
  const fwd = () => {
    const f = new Forwarder({ localV4: "192.0.2.2", innerSrcMac: "02:00:00:00:00:01" });
    const t = buildForwardingTable(model());
    if (!t.ok) throw new Error(t.error.join());
    f.setTable(t.value);
    return f;
  };
  const send = (f: Forwarder, q: FlowQuery, flags: number) => {
    const p = buildFlowPacket(q, flags);
    f.forward(p, p.length, 0);
  };
  const look = (f: Forwarder, q: FlowQuery = asked) => {
    const p = buildFlowPacket(q);
    return formatFlow(f.lookup(p, p.length, 0), q);
  };
  const head = "tcp 203.0.113.10:40000 -> 20.20.20.100:80:";

  it("says in one line where the flow goes and why", () => {
    const f = fwd();
    expect(look(f)).toMatch(
      new RegExp(
        `^${head} service web, new flow: Maglev picks DIP 10\\.10\\.\\d\\.\\d+ \\(host 198\\.51\\.100\\.[26]\\)$`,
      ),
    );
    send(f, asked, TcpFlag.syn);
    const dip = f.forwardingTable!.backendById[f.lastBackendId]!.dip;
    expect(look(f)).toMatch(
      new RegExp(
        `^${head} service web, DIP ${dip} \\(host [\\d.]+\\), in the connection table \\(untrusted\\)$`,
      ),
    );
    send(f, asked, TcpFlag.ack);
    // Its DIP drains: the flow stays; a new connection on these ports goes elsewhere.
    const drained = buildForwardingTable(model({ [dip]: "draining" }), f.forwardingTable);
    if (!drained.ok) throw new Error();
    f.setTable(drained.value);
    expect(look(f)).toMatch(
      new RegExp(
        `^${head} service web, DIP ${dip} \\(host [\\d.]+\\), in the connection table \\(established\\), DIP draining \\(keeps its flows\\), a new connection on these ports would go to DIP 10\\.10\\.\\d\\.\\d+$`,
      ),
    );
    // Its DIP fails: re-hashed.
    const down = buildForwardingTable(model({ [dip]: "down" }), f.forwardingTable);
    if (!down.ok) throw new Error();
    f.setTable(down.value);
    expect(look(f)).toMatch(
      new RegExp(
        `^${head} service web, in the connection table \\(established\\) on DIP ${dip} \\(host [\\d.]+\\), down: re-hashed, Maglev picks DIP 10\\.10\\.\\d\\.\\d+ \\(host [\\d.]+\\)$`,
      ),
    );
    expect(look(f, { ...asked, dst: "20.20.20.99" })).toBe(
      "tcp 203.0.113.10:40000 -> 20.20.20.99:80: 20.20.20.99 is not a VIP of this MUX",
    );
    expect(look(f, { ...asked, dport: 443 })).toBe(
      "tcp 203.0.113.10:40000 -> 20.20.20.100:443: VIP 20.20.20.100 has no service on tcp port 443",
    );
    expect(
      look(f, {
        protocol: "udp",
        src: "2001:db8:c::10",
        sport: 9,
        dst: "2001:db8:f::100",
        dport: 7,
      }),
    ).toBe(
      "udp [2001:db8:c::10]:9 -> [2001:db8:f::100]:7: service web6, new flow: Maglev picks DIP fd00:10:1::11 (host 198.51.100.2)",
    );
    const none = new Forwarder({ localV4: "192.0.2.2", innerSrcMac: "02:00:00:00:00:01" });
    expect(look(none)).toBe(`${head} no forwarding table installed yet`);
  });
});
