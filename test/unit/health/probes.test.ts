// Probes against real servers on loopback: each probe type, success and each failure.
import dgram from "node:dgram";
import http from "node:http";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runProbe } from "../../../src/health/probes.ts";
import { applyResult, initialRiseFall } from "../../../src/health/rise-fall.ts";

let httpServer: http.Server;
let tcpServer: net.Server;
let udpServer: dgram.Socket;
let httpPort = 0;
let tcpPort = 0;
let udpPort = 0;
let closedPort = 0;

beforeAll(async () => {
  httpServer = http.createServer((req, res) => {
    if (req.url === "/healthz") res.end("status: ok");
    else if (req.url === "/slow") setTimeout(() => res.end("late"), 2000).unref();
    else {
      res.statusCode = 503;
      res.end("down");
    }
  });
  await new Promise<void>((r) => httpServer.listen(0, "127.0.0.1", r));
  httpPort = (httpServer.address() as net.AddressInfo).port;
  tcpServer = net.createServer((s) => s.end());
  await new Promise<void>((r) => tcpServer.listen(0, "127.0.0.1", r));
  tcpPort = (tcpServer.address() as net.AddressInfo).port;
  udpServer = dgram.createSocket("udp4");
  udpServer.on("message", (m, rinfo) => udpServer.send(m, rinfo.port, rinfo.address));
  await new Promise<void>((r) => udpServer.bind(0, "127.0.0.1", r));
  udpPort = udpServer.address().port;
  const tmp = net.createServer();
  await new Promise<void>((r) => tmp.listen(0, "127.0.0.1", r));
  closedPort = (tmp.address() as net.AddressInfo).port;
  await new Promise<void>((r) => tmp.close(() => r()));
});

afterAll(() => {
  httpServer.closeAllConnections();
  httpServer.close();
  tcpServer.close();
  udpServer.close();
});

const http200 = { statusMin: 200, statusMax: 399, timeoutMs: 1000 };

describe("probes", () => {
  it("tcp: connects, or names the failure", async () => {
    expect(
      await runProbe({ type: "tcp", address: "127.0.0.1", port: tcpPort, timeoutMs: 1000 }),
    ).toMatchObject({
      ok: true,
      detail: "connected",
    });
    expect(
      await runProbe({ type: "tcp", address: "127.0.0.1", port: closedPort, timeoutMs: 1000 }),
    ).toMatchObject({
      ok: false,
      detail: "ECONNREFUSED",
    });
  });

  it("http: status range, body match, timeout", async () => {
    const base = { type: "http" as const, address: "127.0.0.1", port: httpPort, ...http200 };
    expect(await runProbe({ ...base, path: "/healthz" })).toMatchObject({
      ok: true,
      detail: "HTTP 200",
    });
    expect(await runProbe({ ...base, path: "/healthz", expectBody: "ok" })).toMatchObject({
      ok: true,
      detail: "HTTP 200, body matched",
    });
    expect(await runProbe({ ...base, path: "/healthz", expectBody: "nope" })).toMatchObject({
      ok: false,
    });
    expect(await runProbe({ ...base, path: "/other" })).toMatchObject({
      ok: false,
      detail: "HTTP 503",
    });
    expect(
      await runProbe({ ...base, path: "/other", statusMin: 500, statusMax: 503 }),
    ).toMatchObject({ ok: true });
    const slow = await runProbe({ ...base, path: "/slow", timeoutMs: 150 });
    expect(slow).toMatchObject({ ok: false, detail: "timeout after 150 ms" });
    expect(slow.latencyMs).toBeLessThan(1000);
  });

  it("udp: a reply counts, silence and port-unreachable do not", async () => {
    expect(
      await runProbe({
        type: "udp",
        address: "127.0.0.1",
        port: udpPort,
        send: "ping",
        timeoutMs: 1000,
      }),
    ).toMatchObject({ ok: true });
    const refused = await runProbe({
      type: "udp",
      address: "127.0.0.1",
      port: closedPort,
      send: "ping",
      timeoutMs: 500,
    });
    expect(refused.ok).toBe(false);
  });

  it("exec: exit code decides, with a timeout", async () => {
    expect(await runProbe({ type: "exec", command: ["true"], timeoutMs: 2000 })).toMatchObject({
      ok: true,
      detail: "exit 0",
    });
    expect(
      await runProbe({ type: "exec", command: ["sh", "-c", "exit 3"], timeoutMs: 2000 }),
    ).toMatchObject({
      ok: false,
      detail: "exit 3",
    });
    expect(
      await runProbe({
        type: "exec",
        command: ["sh", "-c", 'test "$X" = y'],
        env: { X: "y" },
        timeoutMs: 2000,
      }),
    ).toMatchObject({ ok: true });
    expect(await runProbe({ type: "exec", command: ["sleep", "5"], timeoutMs: 100 })).toMatchObject(
      {
        ok: false,
        detail: "timeout after 100 ms",
      },
    );
    expect(
      await runProbe({ type: "exec", command: ["/nonexistent/probe"], timeoutMs: 1000 }),
    ).toMatchObject({
      ok: false,
      detail: "ENOENT",
    });
  });
});

describe("rise/fall", () => {
  const cfg = { rise: 2, fall: 3 };
  it("needs rise successes to come up and fall failures to go down", () => {
    let s = initialRiseFall();
    const seq = [true, false, true, true, false, false, true, false, false, false];
    const states: boolean[] = [];
    const changes: number[] = [];
    seq.forEach((ok, i) => {
      const r = applyResult(s, ok, cfg);
      s = r.state;
      states.push(s.up);
      if (r.changed) changes.push(i);
    });
    expect(states).toEqual([false, false, false, true, true, true, true, true, true, false]);
    expect(changes).toEqual([3, 9]);
  });
});
