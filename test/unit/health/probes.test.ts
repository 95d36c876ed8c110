// Probes against real servers on loopback: each probe type, success and each failure.
import dgram from "node:dgram";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runProbe } from "../../../src/health/probes.ts";
import { applyResult, initialRiseFall } from "../../../src/health/rise-fall.ts";
import { pollUntil } from "../../../src/lab/testing.ts";

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
    else if (req.url === "/slow") setTimeout(() => res.end("late"), 30_000).unref();
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
    // The answer would take 30 s: any latency far below proves the probe's own timeout cut it.
    expect(slow.latencyMs).toBeLessThan(10_000);
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

/** State and process group of a live (not zombie) process, from /proc; undefined if gone. */
function procStat(pid: number | string): { pgrp: number } | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined; // exited (and reaped)
  }
  // pid (comm) state ppid pgrp ...: comm may hold spaces, so split after its ")".
  const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // A killed orphan may stay a zombie when PID 1 does not reap: it runs nothing.
  return state === "Z" || state === "X" ? undefined : { pgrp: Number(pgrp) };
}

/** Live processes whose process group is `pgid`. */
function liveInGroup(pgid: number): number[] {
  return readdirSync("/proc")
    .filter((name) => /^\d+$/.test(name) && procStat(name)?.pgrp === pgid)
    .map(Number);
}

describe("exec probe isolation", () => {
  const dir = mkdtempSync(join(tmpdir(), "vipmux-exec-probe-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("runs with PATH, LANG and the configured variables only: no token", async () => {
    const out = join(dir, "env.txt");
    process.env.VIPMUX_HEALTH_TOKEN = "do-not-leak";
    process.env.VIPMUX_TEST_SECRET = "do-not-leak-either";
    try {
      const r = await runProbe({
        type: "exec",
        command: ["sh", "-c", 'env > "$OUT"'],
        env: { OUT: out, VIPMUX_DIP: "10.10.1.11" },
        timeoutMs: 2000,
      });
      expect(r).toMatchObject({ ok: true });
    } finally {
      delete process.env.VIPMUX_HEALTH_TOKEN;
      delete process.env.VIPMUX_TEST_SECRET;
    }
    const env = readFileSync(out, "utf8");
    expect(env).not.toContain("do-not-leak");
    const names = env
      .split("\n")
      .filter((l) => l.includes("="))
      .map((l) => l.slice(0, l.indexOf("=")));
    expect(names).toContain("PATH");
    expect(names).toContain("VIPMUX_DIP");
    // What the shell adds by itself (PWD, SHLVL, _) aside, nothing from the daemon.
    const shellOwn = new Set(["PWD", "OLDPWD", "SHLVL", "_"]);
    expect(names.filter((n) => !shellOwn.has(n)).sort()).toEqual(
      ["OUT", "PATH", "VIPMUX_DIP", ...(process.env.LANG !== undefined ? ["LANG"] : [])].sort(),
    );
  });

  it("on timeout kills the probe's whole process group, grandchildren included", async () => {
    const pids = join(dir, "pids.txt");
    // The shell (leader of the probe's group) starts a sleep that would outlive it by far.
    // The probe reports the sleep's process group while it runs.
    const r = await runProbe({
      type: "exec",
      command: [
        "sh",
        "-c",
        'sleep 30 & echo "$$ $! $(cut -d" " -f5 /proc/$!/stat)" > "$PIDS.tmp"; mv "$PIDS.tmp" "$PIDS"; wait',
      ],
      env: { PIDS: pids },
      timeoutMs: 500,
    });
    expect(r).toMatchObject({ ok: false, detail: "timeout after 500 ms" });
    const [shell, sleeper, pgid] = readFileSync(pids, "utf8").trim().split(/\s+/).map(Number);
    expect(sleeper).toBeGreaterThan(0);
    // The probe ran in its own process group, led by the shell.
    expect(pgid).toBe(shell);
    await pollUntil(async () => procStat(sleeper!) === undefined, {
      timeoutMs: 2000,
      intervalMs: 20,
      what: "the grandchild sleep to be gone",
    });
    expect(liveInGroup(shell!)).toEqual([]);
  });

  it("leaves nothing behind when the probe exits and forgot a background process", async () => {
    const pids = join(dir, "pids2.txt");
    const r = await runProbe({
      type: "exec",
      command: ["sh", "-c", 'sleep 30 & echo "$$ $!" > "$PIDS"'],
      env: { PIDS: pids },
      timeoutMs: 2000,
    });
    expect(r).toMatchObject({ ok: true });
    const [shell, sleeper] = readFileSync(pids, "utf8").trim().split(" ").map(Number);
    await pollUntil(async () => procStat(sleeper!) === undefined, {
      timeoutMs: 2000,
      intervalMs: 20,
      what: "the forgotten sleep to be gone",
    });
    expect(liveInGroup(shell!)).toEqual([]);
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
