// Health-stream limits over loopback: caps on connections that have not authenticated
// (in all and per source address; authenticated ones never count), a hello-sized budget
// before authentication, and on the agent side the same line cap against whatever answers
// at the MUX address.
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import {
  type BackendReport,
  HealthStreamClient,
  HealthStreamServer,
  helloMac,
  MAX_FRAME_BYTES,
  MAX_HELLO_BYTES,
  MAX_UNAUTHENTICATED_PER_SOURCE,
  reportMac,
} from "../../../src/health/stream.ts";
import { pollUntil } from "../../../src/lab/testing.ts";

const KEY = "k3y-of-the-test-hosts";
// Loopback sources: every 127.0.0.0/8 address is local, so a test can connect "from" many.
const HOSTS = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"];

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function server(limits: { global?: number; perSource?: number } = {}) {
  const s = new HealthStreamServer({
    keysFor: () => [KEY],
    mux: "mux1",
    owns: (_host, key) => key.startsWith("web/"),
    knownHost: (h) => HOSTS.includes(h),
    ...(limits.global !== undefined ? { maxUnauthenticated: limits.global } : {}),
    ...(limits.perSource !== undefined ? { maxUnauthenticatedPerSource: limits.perSource } : {}),
  });
  const addr = await s.listen(0, "127.0.0.1");
  cleanups.push(() => s.close());
  const reports: [string, BackendReport, boolean][] = [];
  s.on("report", (h, b, f) => reports.push([h, b, f]));
  return { s, port: addr.port, reports };
}

/** A raw connection from `from`; `challenged` resolves on the MUX's challenge, if one comes. */
function raw(port: number, from = "127.0.0.1") {
  const sock = net.connect({ port, host: "127.0.0.1", localAddress: from });
  cleanups.push(() => sock.destroy());
  sock.setEncoding("utf8");
  let buf = "";
  let isClosed = false;
  sock.on("data", (d: string) => {
    buf += d;
  });
  sock.on("error", () => {});
  const closed = new Promise<void>((r) =>
    sock.on("close", () => {
      isClosed = true;
      r();
    }),
  );
  const line = async (i: number) =>
    JSON.parse(
      await pollUntil(async () => buf.split("\n")[i] || undefined, {
        timeoutMs: 2000,
        intervalMs: 5,
        what: `line ${i} from the MUX`,
      }),
    ) as { t: string; nonce: string };
  /** Waits until the MUX either challenged this connection or closed it. */
  const outcome = async (): Promise<"challenged" | "refused"> => {
    await pollUntil(async () => buf.includes("\n") || isClosed, {
      timeoutMs: 2000,
      intervalMs: 5,
      what: "a challenge or a close",
    });
    return buf.includes('"challenge"') ? "challenged" : "refused";
  };
  const send = (o: object) => sock.write(`${JSON.stringify(o)}\n`);
  /** Completes the handshake as host `from`. */
  const authenticate = async () => {
    const { nonce } = await line(0);
    send({ t: "hello", host: from, nonce: "cn", mac: helloMac(KEY, nonce, from, "cn") });
    expect((await line(1)).t).toBe("welcome");
    return nonce;
  };
  return { sock, closed, outcome, send, authenticate, received: () => buf };
}

describe("health stream: unauthenticated connections", () => {
  it("refuses the N+1th unauthenticated connection from one source, not other sources", async () => {
    const { s, port } = await server();
    const n = MAX_UNAUTHENTICATED_PER_SOURCE;
    const waiting = Array.from({ length: n }, () => raw(port, "127.0.0.1"));
    for (const c of waiting) expect(await c.outcome()).toBe("challenged");
    expect(s.unauthenticatedCount("127.0.0.1")).toBe(n);

    const extra = raw(port, "127.0.0.1");
    expect(await extra.outcome()).toBe("refused");
    await extra.closed;
    expect(extra.received()).toBe("");
    expect(s.rejects.get("unauthenticated_limit")).toBe(1);

    // Another source has its own allowance.
    expect(await raw(port, "127.0.0.2").outcome()).toBe("challenged");
    // A slot frees when a waiting connection goes away.
    waiting[0]!.sock.destroy();
    await pollUntil(async () => s.unauthenticatedCount("127.0.0.1") === n - 1, {
      timeoutMs: 2000,
      intervalMs: 5,
      what: "the slot to free",
    });
    expect(await raw(port, "127.0.0.1").outcome()).toBe("challenged");
  });

  it("refuses the N+1th unauthenticated connection in all, whatever the source", async () => {
    const { s, port } = await server({ global: 5, perSource: 2 });
    const from = ["127.0.0.1", "127.0.0.1", "127.0.0.2", "127.0.0.2", "127.0.0.3"];
    for (const f of from) expect(await raw(port, f).outcome()).toBe("challenged");
    expect(s.unauthenticatedCount()).toBe(5);
    // 127.0.0.4 has sent nothing yet, but the MUX as a whole is full.
    expect(await raw(port, "127.0.0.4").outcome()).toBe("refused");
    expect(s.rejects.get("unauthenticated_limit")).toBe(1);
  });

  it("does not count authenticated connections, which keep reporting while the caps are full", async () => {
    const { s, port, reports } = await server({ global: 3, perSource: 2 });
    // More authenticated connections from one source than either cap allows waiting ones.
    const authed = [];
    for (let i = 0; i < 4; i++) {
      const c = raw(port, "127.0.0.1");
      authed.push({ c, nonce: await c.authenticate() });
    }
    expect(s.unauthenticatedCount()).toBe(0);
    // Fill both caps with connections that never say hello.
    for (const f of ["127.0.0.1", "127.0.0.1", "127.0.0.2"])
      expect(await raw(port, f).outcome()).toBe("challenged");
    expect(await raw(port, "127.0.0.3").outcome()).toBe("refused");
    expect(await raw(port, "127.0.0.1").outcome()).toBe("refused");
    // The authenticated ones are untouched.
    for (const [i, { c, nonce }] of authed.entries()) {
      const backends: BackendReport = [[`web/10.0.0.${i}`, true]];
      c.send({
        t: "health",
        seq: 1,
        full: true,
        backends,
        mac: reportMac(KEY, nonce, "cn", 1, true, backends),
      });
    }
    await pollUntil(async () => reports.length === 4, {
      timeoutMs: 2000,
      what: "a report from each authenticated connection",
    });
    expect(s.rejects.get("unauthenticated_limit")).toBe(2);
  });
});

describe("health stream: byte caps", () => {
  it("cuts a peer that sends more than a hello's worth before authenticating", async () => {
    const { s, port } = await server();
    const c = raw(port);
    expect(await c.outcome()).toBe("challenged");
    // No newline: under the line cap, but far more than any hello.
    c.sock.write("x".repeat(MAX_HELLO_BYTES + 1));
    await c.closed;
    expect(s.rejects.get("oversize")).toBe(1);
    // Empty lines are bytes too.
    const d = raw(port);
    expect(await d.outcome()).toBe("challenged");
    d.sock.write("\n".repeat(MAX_HELLO_BYTES + 1));
    await d.closed;
    expect(s.rejects.get("oversize")).toBe(2);
    expect(s.rejects.get("unauthenticated")).toBeUndefined();
  });

  it("counts the budget up to the hello only: a report sent in the same write is taken", async () => {
    const { s, port, reports } = await server();
    const c = raw(port, "127.0.0.2");
    expect(await c.outcome()).toBe("challenged");
    const { nonce } = JSON.parse(c.received().split("\n")[0]!) as { nonce: string };
    const backends: BackendReport = Array.from({ length: 400 }, (_, i) => [
      `web/10.2.${i >> 8}.${i & 255}`,
      false,
    ]);
    const hello = {
      t: "hello",
      host: "127.0.0.2",
      nonce: "cn",
      mac: helloMac(KEY, nonce, "127.0.0.2", "cn"),
    };
    const report = {
      t: "health",
      seq: 1,
      full: true,
      backends,
      mac: reportMac(KEY, nonce, "cn", 1, true, backends),
    };
    c.sock.write(`${JSON.stringify(hello)}\n${JSON.stringify(report)}\n`);
    await pollUntil(async () => reports.length === 1, { timeoutMs: 2000, what: "the report" });
    expect(JSON.stringify(report).length).toBeGreaterThan(MAX_HELLO_BYTES);
    expect(s.rejects.size).toBe(0);
  });

  it("allows lines up to the frame cap once authenticated, and cuts a longer one", async () => {
    const { s, port, reports } = await server();
    const c = raw(port, "127.0.0.2");
    const nonce = await c.authenticate();
    // A report well over the hello budget.
    const backends: BackendReport = Array.from({ length: 400 }, (_, i) => [
      `web/10.1.${i >> 8}.${i & 255}`,
      true,
    ]);
    c.send({
      t: "health",
      seq: 1,
      full: true,
      backends,
      mac: reportMac(KEY, nonce, "cn", 1, true, backends),
    });
    await pollUntil(async () => reports.length === 1, { timeoutMs: 2000, what: "the big report" });
    expect(JSON.stringify(backends).length).toBeGreaterThan(MAX_HELLO_BYTES);
    c.sock.write("y".repeat(MAX_FRAME_BYTES + 1));
    await c.closed;
    expect(s.rejects.get("oversize")).toBe(1);
  });
});

/** A fake MUX: `onConnection` decides what it says. */
async function fakeMux(onConnection: (sock: net.Socket, lines: () => string[]) => void) {
  const conns: { closed: boolean }[] = [];
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((sock) => {
    sockets.add(sock);
    const state = { closed: false };
    conns.push(state);
    let buf = "";
    sock.setEncoding("utf8");
    sock.on("data", (d: string) => {
      buf += d;
    });
    sock.on("error", () => {});
    sock.on("close", () => {
      state.closed = true;
      sockets.delete(sock);
    });
    onConnection(sock, () => buf.split("\n").filter((l) => l.length > 0));
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        srv.close(() => r());
      }),
  );
  return { port: (srv.address() as net.AddressInfo).port, conns };
}

function agent(port: number) {
  const c = new HealthStreamClient({
    key: KEY,
    host: "127.0.0.1",
    mux: { address: "127.0.0.1", port },
    heartbeatMs: 100,
    snapshot: () => [["web/10.0.0.1", true]],
  });
  cleanups.push(() => c.stop());
  const events: string[] = [];
  c.on("up", () => events.push("up"));
  c.on("down", (r) => events.push(`down ${r}`));
  c.on("dropped", (r) => events.push(`dropped ${r}`));
  c.start();
  return { c, events };
}

/** Challenges, waits for the hello, welcomes: what a MUX does, without checking anything. */
async function handshake(sock: net.Socket, lines: () => string[]) {
  sock.write(`${JSON.stringify({ t: "challenge", nonce: "n0", mux: "fake" })}\n`);
  await pollUntil(async () => lines().length >= 1, { timeoutMs: 2000, what: "the hello" });
  sock.write(`${JSON.stringify({ t: "welcome" })}\n`);
}

describe("health stream: the agent against a misbehaving MUX", () => {
  it("closes, and counts, when the MUX sends an oversized line before welcome", async () => {
    const mux = await fakeMux((sock) => {
      sock.write("z".repeat(2 * MAX_FRAME_BYTES));
    });
    const { c, events } = agent(mux.port);
    await pollUntil(async () => mux.conns[0]?.closed, {
      timeoutMs: 2000,
      intervalMs: 5,
      what: "the agent to close",
    });
    expect(c.drops.get("oversize")).toBeGreaterThanOrEqual(1);
    expect(events[0]).toBe("dropped oversize");
  });

  it("closes on a line over the frame cap after welcome, reporting why it went down", async () => {
    const mux = await fakeMux((sock, lines) => {
      void handshake(sock, lines).then(() => {
        // Sent in pieces, so it is the agent's framer, not one huge read, that must stop it.
        const piece = "w".repeat(4096);
        for (let i = 0; i <= MAX_FRAME_BYTES / 4096; i++) sock.write(piece);
      });
    });
    const { c, events } = agent(mux.port);
    await pollUntil(async () => mux.conns[0]?.closed, {
      timeoutMs: 2000,
      intervalMs: 5,
      what: "the agent to close",
    });
    expect(c.drops.get("oversize")).toBeGreaterThanOrEqual(1);
    expect(events.slice(0, 3)).toEqual(["up", "dropped oversize", "down oversize"]);
  });

  it("starts one heartbeat and sends one snapshot however often the MUX says welcome", async () => {
    let lines: () => string[] = () => [];
    const mux = await fakeMux((sock, l) => {
      if (mux.conns.length > 1) return;
      lines = l;
      void handshake(sock, l).then(() => {
        for (let i = 0; i < 50; i++) sock.write(`${JSON.stringify({ t: "welcome" })}\n`);
      });
    });
    agent(mux.port);
    await pollUntil(async () => lines().length >= 2, { timeoutMs: 2000, what: "the snapshot" });
    await new Promise((r) => setTimeout(r, 350));
    const sent = lines().map((l) => JSON.parse(l) as { t: string; full?: boolean });
    expect(sent.filter((m) => m.t === "health" && m.full)).toHaveLength(1);
    // ~3 heartbeats at 100 ms in 350 ms; one timer per welcome would make ~150.
    expect(sent.filter((m) => m.t === "health" && !m.full).length).toBeLessThan(10);
  });
});
