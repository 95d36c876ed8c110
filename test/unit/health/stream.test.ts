// The authenticated health stream over loopback: real reports arrive within milliseconds;
// forged, replayed and foreign reports are rejected and counted.
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { hostKey } from "../../../src/health/keys.ts";
import {
  type BackendReport,
  HealthStreamClient,
  HealthStreamServer,
  helloMac,
  reportMac,
} from "../../../src/health/stream.ts";
import { pollUntil } from "../../../src/lab/testing.ts";

// Hosts are loopback addresses so each client can connect from the PA it claims.
const TOKEN = "s3cret-token-of-the-cluster";
let secrets = [TOKEN];
const KEY = hostKey(TOKEN, "127.0.0.2");
const owns = (host: string, key: string) =>
  (host === "127.0.0.2" && key.endsWith("/10.10.1.11")) ||
  (host === "127.0.0.6" && key.endsWith("/10.10.2.21"));
const knownHost = (h: string) => h === "127.0.0.2" || h === "127.0.0.6";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  secrets = [TOKEN];
});

async function server() {
  const s = new HealthStreamServer({
    keysFor: (host) => secrets.map((t) => hostKey(t, host)),
    mux: "mux1",
    owns,
    knownHost,
  });
  const addr = await s.listen(0, "127.0.0.1");
  cleanups.push(() => s.close());
  const reports: [string, BackendReport, boolean][] = [];
  s.on("report", (h, b, f) => reports.push([h, b, f]));
  return { s, port: addr.port, reports };
}

function client(
  port: number,
  opts: { key?: string; host?: string; snapshot?: BackendReport; heartbeatMs?: number } = {},
) {
  const host = opts.host ?? "127.0.0.2";
  const c = new HealthStreamClient({
    key: opts.key ?? hostKey(TOKEN, host),
    host,
    mux: { address: "127.0.0.1", port },
    heartbeatMs: opts.heartbeatMs ?? 100,
    snapshot: () => opts.snapshot ?? [["web/10.10.1.11", true]],
  });
  cleanups.push(() => c.stop());
  c.start();
  return c;
}

/** A raw connection speaking the protocol by hand, to forge what a real client never sends. */
async function raw(port: number, localAddress = "127.0.0.2") {
  const sock = net.connect({ port, host: "127.0.0.1", localAddress });
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
  it("delivers the snapshot on connect and pushes each change at once (not on a timer)", async () => {
    const { s, port, reports } = await server();
    // No heartbeat for a minute: whatever arrives after the snapshot was pushed by send().
    const c = client(port, { heartbeatMs: 60_000 });
    await pollUntil(async () => reports.length >= 1, { timeoutMs: 5000, what: "snapshot" });
    expect(reports[0]).toEqual(["127.0.0.2", [["web/10.10.1.11", true]], true]);
    c.send([["web/10.10.1.11", false]]);
    await pollUntil(async () => reports.length >= 2, {
      timeoutMs: 10_000,
      intervalMs: 1,
      what: "the change",
    });
    expect(reports[1]).toEqual(["127.0.0.2", [["web/10.10.1.11", false]], false]);
    expect(s.rejects.size).toBe(0);
  });

  it("rejects a client with the wrong token, and counts it", async () => {
    const { s, port, reports } = await server();
    client(port, { key: "wrong" });
    await pollUntil(async () => (s.rejects.get("bad_mac") ?? 0) >= 1, {
      timeoutMs: 2000,
      what: "bad_mac",
    });
    expect(reports).toEqual([]);
  });

  it("drops (and counts) report entries about DIPs the host does not own, and keeps the stream", async () => {
    const { s, port, reports } = await server();
    // Its own DIP and another host's: only its own is believed.
    const c = client(port, {
      snapshot: [
        ["web/10.10.1.11", true],
        ["web/10.10.2.21", false],
      ],
    });
    await pollUntil(async () => reports.length >= 1, { timeoutMs: 2000, what: "the report" });
    expect(reports[0]).toEqual(["127.0.0.2", [["web/10.10.1.11", true]], true]);
    expect(s.rejects.get("not_owner")).toBe(1);
    // Only foreign entries: an empty report, and the stream stays up (a rolling reload
    // can put a DIP in a host's config before the MUX's).
    c.send([["web/10.10.2.21", true]]);
    await pollUntil(async () => reports.length >= 2, {
      timeoutMs: 2000,
      what: "the second report",
    });
    expect(reports[1]).toEqual(["127.0.0.2", [], false]);
    expect(c.connected).toBe(true);
    // After the MUX's reload it asks for the whole picture again.
    const seen = reports.length;
    s.resync();
    const full = await pollUntil(async () => reports.slice(seen).find((r) => r[2] === true), {
      timeoutMs: 2000,
      what: "the full report asked for",
    });
    expect(full).toEqual(["127.0.0.2", [["web/10.10.1.11", true]], true]);
  });

  it("rejects unknown hosts even with the right token", async () => {
    const { s, port } = await server();
    client(port, { host: "127.0.0.99" });
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
      host: "127.0.0.2",
      nonce: cn,
      mac: helloMac(KEY, challenge.nonce, "127.0.0.2", cn),
    });
    expect((await b.line(1)).t).toBe("welcome");
    const good: BackendReport = [["web/10.10.1.11", true]];
    b.send({
      t: "health",
      seq: 5,
      full: false,
      backends: good,
      mac: reportMac(KEY, challenge.nonce, cn, 5, false, good),
    });
    await pollUntil(async () => reports.length === 1, { timeoutMs: 2000, what: "the good report" });
    // Same MAC'd message again: a replay.
    b.send({
      t: "health",
      seq: 5,
      full: false,
      backends: good,
      mac: reportMac(KEY, challenge.nonce, cn, 5, false, good),
    });
    await b.closed;
    expect(s.rejects.get("replay")).toBe(1);

    const c = await raw(port);
    const ch2 = await c.line(0);
    c.send({
      t: "hello",
      host: "127.0.0.2",
      nonce: cn,
      mac: helloMac(KEY, ch2.nonce, "127.0.0.2", cn),
    });
    await c.line(1);
    const forged: BackendReport = [["web/10.10.1.11", false]];
    // MAC computed for the first session's nonce: useless on this one.
    c.send({
      t: "health",
      seq: 6,
      full: false,
      backends: forged,
      mac: reportMac(KEY, challenge.nonce, cn, 6, false, forged),
    });
    await c.closed;
    expect(s.rejects.get("bad_mac")).toBe(1);
    expect(reports).toHaveLength(1);
  });

  it("a host's key speaks only for that host, and only from its own address", async () => {
    const { s, port, reports } = await server();
    // Host 127.0.0.6's key used to claim 127.0.0.2: the MAC does not verify.
    client(port, { host: "127.0.0.2", key: hostKey(TOKEN, "127.0.0.6") });
    await pollUntil(async () => (s.rejects.get("bad_mac") ?? 0) >= 1, {
      timeoutMs: 2000,
      what: "bad_mac",
    });
    // The right key for 127.0.0.2, but connecting from 127.0.0.6: refused.
    const a = await raw(port, "127.0.0.6");
    const ch = await a.line(0);
    a.send({
      t: "hello",
      host: "127.0.0.2",
      nonce: "n",
      mac: helloMac(KEY, ch.nonce, "127.0.0.2", "n"),
    });
    await a.closed;
    expect(s.rejects.get("source_mismatch")).toBe(1);
    expect(reports).toEqual([]);
  });

  it("rotation: old and next secret both accepted; revoking one drops its streams at once", async () => {
    const NEXT = "the-next-cluster-secret-2027";
    secrets = [TOKEN, NEXT];
    const { s, port, reports } = await server();
    const old = client(port, { host: "127.0.0.2", key: hostKey(TOKEN, "127.0.0.2") });
    const next = client(port, {
      host: "127.0.0.6",
      key: hostKey(NEXT, "127.0.0.6"),
      snapshot: [["web/10.10.2.21", true]],
    });
    await pollUntil(async () => old.connected && next.connected, {
      timeoutMs: 2000,
      what: "both up",
    });
    expect(s.revalidate()).toBe(0);
    secrets = [NEXT];
    expect(s.revalidate()).toBe(1);
    expect(s.rejects.get("key_revoked")).toBe(1);
    await pollUntil(async () => !old.connected, { timeoutMs: 2000, what: "old key dropped" });
    // The old key cannot come back; the new one keeps reporting.
    await pollUntil(async () => (s.rejects.get("bad_mac") ?? 0) >= 1, {
      timeoutMs: 3000,
      what: "old key refused",
    });
    expect(next.connected).toBe(true);
    expect(reports.some(([h]) => h === "127.0.0.6")).toBe(true);
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
