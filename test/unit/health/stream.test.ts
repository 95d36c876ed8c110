// The authenticated health stream over loopback: real reports arrive within milliseconds;
// forged, replayed and foreign reports are rejected and counted.
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import {
  type BackendReport,
  HealthStreamClient,
  HealthStreamServer,
  helloMac,
  reportMac,
} from "../../../src/health/stream.ts";
import { pollUntil } from "../../../src/lab/testing.ts";

const TOKEN = "s3cret-token";
const owns = (host: string, key: string) =>
  (host === "198.51.100.2" && key.endsWith("/10.10.1.11")) ||
  (host === "198.51.100.6" && key.endsWith("/10.10.2.21"));
const knownHost = (h: string) => h === "198.51.100.2" || h === "198.51.100.6";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function server() {
  const s = new HealthStreamServer({ token: TOKEN, mux: "mux1", owns, knownHost });
  const addr = await s.listen(0, "127.0.0.1");
  cleanups.push(() => s.close());
  const reports: [string, BackendReport, boolean][] = [];
  s.on("report", (h, b, f) => reports.push([h, b, f]));
  return { s, port: addr.port, reports };
}

function client(
  port: number,
  opts: { token?: string; host?: string; snapshot?: BackendReport } = {},
) {
  const c = new HealthStreamClient({
    token: opts.token ?? TOKEN,
    host: opts.host ?? "198.51.100.2",
    mux: { address: "127.0.0.1", port },
    heartbeatMs: 100,
    snapshot: () => opts.snapshot ?? [["web/10.10.1.11", true]],
  });
  cleanups.push(() => c.stop());
  c.start();
  return c;
}

/** A raw connection speaking the protocol by hand, to forge what a real client never sends. */
async function raw(port: number) {
  const sock = net.connect({ port, host: "127.0.0.1" });
  cleanups.push(() => sock.destroy());
  sock.setEncoding("utf8");
  let buf = "";
  sock.on("data", (d: string) => {
    buf += d;
  });
  sock.on("error", () => {});
  const closed = new Promise<void>((r) => sock.on("close", () => r()));
  const line = async (i: number) =>
    JSON.parse(
      await pollUntil(async () => buf.split("\n")[i] || undefined, {
        timeoutMs: 2000,
        what: "a line",
      }),
    ) as {
      t: string;
      nonce: string;
    };
  return { sock, line, closed, send: (o: object) => sock.write(`${JSON.stringify(o)}\n`) };
}

describe("health stream", () => {
  it("delivers the snapshot on connect and each change within milliseconds", async () => {
    const { s, port, reports } = await server();
    const c = client(port);
    await pollUntil(async () => reports.length >= 1, { timeoutMs: 2000, what: "snapshot" });
    expect(reports[0]).toEqual(["198.51.100.2", [["web/10.10.1.11", true]], true]);
    const t0 = performance.now();
    c.send([["web/10.10.1.11", false]]);
    await pollUntil(async () => reports.some(([, b]) => b.length > 0 && b[0]?.[1] === false), {
      timeoutMs: 1000,
      intervalMs: 1,
      what: "the change",
    });
    expect(performance.now() - t0).toBeLessThan(100);
    expect(s.rejects.size).toBe(0);
  });

  it("rejects a client with the wrong token, and counts it", async () => {
    const { s, port, reports } = await server();
    client(port, { token: "wrong" });
    await pollUntil(async () => (s.rejects.get("bad_mac") ?? 0) >= 1, {
      timeoutMs: 2000,
      what: "bad_mac",
    });
    expect(reports).toEqual([]);
  });

  it("rejects reports about DIPs the host does not own", async () => {
    const { s, port, reports } = await server();
    client(port, { snapshot: [["web/10.10.2.21", false]] });
    await pollUntil(async () => (s.rejects.get("not_owner") ?? 0) >= 1, {
      timeoutMs: 2000,
      what: "not_owner",
    });
    expect(reports).toEqual([]);
  });

  it("rejects unknown hosts even with the right token", async () => {
    const { s, port } = await server();
    client(port, { host: "192.0.2.99" });
    await pollUntil(async () => (s.rejects.get("unknown_host") ?? 0) >= 1, {
      timeoutMs: 2000,
      what: "unknown_host",
    });
  });

  it("rejects reports before hello, forged MACs, and replays", async () => {
    const { s, port, reports } = await server();
    const a = await raw(port);
    await a.line(0);
    a.send({ t: "health", seq: 1, full: false, backends: [["web/10.10.1.11", false]], mac: "00" });
    await a.closed;
    expect(s.rejects.get("unauthenticated")).toBe(1);

    const b = await raw(port);
    const challenge = await b.line(0);
    const cn = "abcd";
    b.send({
      t: "hello",
      host: "198.51.100.2",
      nonce: cn,
      mac: helloMac(TOKEN, challenge.nonce, "198.51.100.2", cn),
    });
    expect((await b.line(1)).t).toBe("welcome");
    const good: BackendReport = [["web/10.10.1.11", true]];
    b.send({
      t: "health",
      seq: 5,
      full: false,
      backends: good,
      mac: reportMac(TOKEN, challenge.nonce, cn, 5, false, good),
    });
    await pollUntil(async () => reports.length === 1, { timeoutMs: 2000, what: "the good report" });
    // Same MAC'd message again: a replay.
    b.send({
      t: "health",
      seq: 5,
      full: false,
      backends: good,
      mac: reportMac(TOKEN, challenge.nonce, cn, 5, false, good),
    });
    await b.closed;
    expect(s.rejects.get("replay")).toBe(1);

    const c = await raw(port);
    const ch2 = await c.line(0);
    c.send({
      t: "hello",
      host: "198.51.100.2",
      nonce: cn,
      mac: helloMac(TOKEN, ch2.nonce, "198.51.100.2", cn),
    });
    await c.line(1);
    const forged: BackendReport = [["web/10.10.1.11", false]];
    // MAC computed for the first session's nonce: useless on this one.
    c.send({
      t: "health",
      seq: 6,
      full: false,
      backends: forged,
      mac: reportMac(TOKEN, challenge.nonce, cn, 6, false, forged),
    });
    await c.closed;
    expect(s.rejects.get("bad_mac")).toBe(1);
    expect(reports).toHaveLength(1);
  });

  it("rejects garbage and oversize frames", async () => {
    const { s, port } = await server();
    const a = await raw(port);
    await a.line(0);
    a.sock.write("this is not json\n");
    await a.closed;
    const b = await raw(port);
    await b.line(0);
    b.sock.write("x".repeat(70_000));
    await b.closed;
    expect(s.rejects.get("bad_frame")).toBe(1);
    expect(s.rejects.get("oversize")).toBe(1);
  });
});
