// Host agent -> MUX over loopback: an agent probes "its" DIP (a TCP server on 127.0.0.1),
// streams to a MUX health server, and the MUX's hub sees each change; a silent agent's
// DIPs go down after agent-timeout.
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { parseConfig } from "../../../src/config/index.ts";
import { AgentHealth } from "../../../src/health/agent.ts";
import { HealthHub } from "../../../src/health/hub.ts";
import { hostKey } from "../../../src/health/keys.ts";
import { HealthStreamServer } from "../../../src/health/stream.ts";
import { pollUntil } from "../../../src/lab/testing.ts";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function backendServer(): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.end();
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const close = () =>
    new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      srv.close(() => r());
    });
  cleanups.push(close);
  return { port: (srv.address() as net.AddressInfo).port, close };
}

describe("agent to MUX health", () => {
  it("a DIP failure reaches the MUX hub within interval x fall, and agent silence downs its DIPs", async () => {
    const backend = await backendServer();
    const r = parseConfig(
      `node: { name: mux1, router-id: 192.0.2.2 }
bgp: { asn: 65101, peers: [ { address: 192.0.2.1, asn: 65000 } ] }
health: { agent-timeout: 600ms, listen: "off" }   # the test runs its own listener
services:
  - name: web
    vip: 20.20.20.100
    ports: [ { protocol: tcp, port: 80, backend-port: ${backend.port} } ]
    vni: 100
    health: { type: tcp, interval: 100ms, timeout: 50ms, rise: 2, fall: 2, jitter: 0 }
    backends: [ { dip: 127.0.0.1, host: 127.0.0.2 } ]
`,
      "t.yml",
      {},
    );
    if (!r.ok) throw new Error(JSON.stringify(r.error));
    const hub = new HealthHub();
    hub.sync(r.value);
    cleanups.push(() => hub.stop());
    const server = new HealthStreamServer({
      keysFor: (host) => [hostKey("cluster-secret-for-test", host)],
      mux: "mux1",
      owns: hub.ownsKey,
      knownHost: hub.knownHost,
    });
    server.on("report", (h, b, f) => hub.report(h, b, f));
    const { port } = await server.listen(0, "127.0.0.1");
    cleanups.push(() => server.close());
    const changes: [string, boolean, number][] = [];
    hub.on("change", (k, up) => changes.push([k, up, performance.now()]));

    const agent = new AgentHealth({
      host: "127.0.0.2",
      key: hostKey("cluster-secret-for-test", "127.0.0.2"),
      muxes: [{ address: "127.0.0.1", port }],
      heartbeatMs: 100,
    });
    agent.sync(r.value.services);
    agent.start();
    cleanups.push(() => agent.stop());
    await pollUntil(async () => hub.backendUp("web/127.0.0.1") === true, {
      timeoutMs: 3000,
      what: "DIP up at the MUX",
    });

    await backend.close();
    await pollUntil(async () => hub.backendUp("web/127.0.0.1") === false, {
      timeoutMs: 3000,
      intervalMs: 5,
      what: "DIP down",
    });
    // fall 2 at 100 ms: two failed probes, then the stream. How long that takes on a busy
    // machine is for the benchmark (bench/health.ts); here the poll's bound is the limit.
    expect(changes.map(([k, up]) => `${k}:${up}`)).toEqual([
      "web/127.0.0.1:true",
      "web/127.0.0.1:false",
    ]);

    // Bring it back, then make the agent go silent: its DIPs go down at agent-timeout.
    const again = net.createServer((s) => s.end());
    await new Promise<void>((res) => again.listen(backend.port, "127.0.0.1", res));
    cleanups.push(() => new Promise<void>((res) => again.close(() => res())));
    await pollUntil(async () => hub.backendUp("web/127.0.0.1") === true, {
      timeoutMs: 3000,
      what: "DIP up again",
    });
    agent.stop();
    const t1 = performance.now();
    await pollUntil(async () => hub.backendUp("web/127.0.0.1") === false, {
      timeoutMs: 10_000,
      intervalMs: 10,
      what: "agent timeout",
    });
    // Not before agent-timeout (600 ms) less one heartbeat (100 ms) of silence; a busy
    // machine can only make it later, and the poll bounds that.
    expect(performance.now() - t1).toBeGreaterThan(400);
  });
});
