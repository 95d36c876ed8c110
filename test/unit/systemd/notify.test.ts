// sd_notify for the Type=notify units: the native sender against a real AF_UNIX datagram
// socket (bound by test/fixtures/systemd/notify-receiver.py, which also reports the
// sender's pid as systemd sees it), the notifier's messages and watchdog logic, and the
// `vipmux run` daemon notifying READY=1, WATCHDOG=1, RELOADING=1/READY=1 and STOPPING=1.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { NativeSocketError, nativeAvailable, sdNotify } from "../../../src/native/index.ts";
import { muxStatusLine, notifyMuxRunning } from "../../../src/systemd/mux.ts";
import { SystemdNotifier } from "../../../src/systemd/notify.ts";
import { NotifyReceiver } from "../../fixtures/systemd/receiver.ts";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "vipmux-notify-"));
const receivers: NotifyReceiver[] = [];
afterAll(() => {
  for (const r of receivers) r.close();
  rmSync(dir, { recursive: true, force: true });
});

async function receiver(socket: string): Promise<NotifyReceiver> {
  const r = new NotifyReceiver(socket);
  receivers.push(r);
  await r.ready();
  return r;
}

describe.skipIf(!nativeAvailable())("native sdNotify", () => {
  it("sends one datagram to a socket path, from this process", async () => {
    const r = await receiver(join(dir, "notify.sock"));
    expect(sdNotify(r.socket, "READY=1\nSTATUS=up\n")).toBe(18);
    const m = await r.waitFor("READY", "1");
    expect(m.data).toBe("READY=1\nSTATUS=up\n");
    expect(m.fields.STATUS).toBe("up");
    // systemd accepts a notification (NotifyAccess=main) only from the main PID.
    expect(m.pid).toBe(process.pid);
  });

  it("reaches an abstract socket named with a leading @", async () => {
    const name = `@vipmux-test-${process.pid}-${Date.now()}`;
    const r = await receiver(name);
    sdNotify(name, "WATCHDOG=1\n");
    expect((await r.waitFor("WATCHDOG")).pid).toBe(process.pid);
  });

  it("rejects a socket that is neither a path nor @name, and reports errno", () => {
    expect(() => sdNotify("relative/notify", "READY=1")).toThrow(NativeSocketError);
    expect(() => sdNotify("relative/notify", "READY=1")).toThrow(/EINVAL|Invalid/);
    expect(() => sdNotify("@", "READY=1")).toThrow(/EINVAL|Invalid/);
    expect(() => sdNotify(`/${"x".repeat(200)}`, "READY=1")).toThrow(/EINVAL|Invalid/);
    try {
      sdNotify(join(dir, "nobody-listens.sock"), "READY=1");
      expect.unreachable();
    } catch (e) {
      expect((e as NativeSocketError).code).toBe("ENOENT");
    }
  });
});

describe("SystemdNotifier", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  const recording = (opts: { watchdogUsec?: number } = {}) => {
    const sent: string[] = [];
    const logs: string[] = [];
    const sd = new SystemdNotifier({
      socket: "/run/systemd/notify",
      ...opts,
      send: (_socket, message) => {
        sent.push(message);
      },
      log: (level, msg) => logs.push(`${level}: ${msg}`),
      monotonicUsec: () => 123_456_789n,
    });
    return { sd, sent, logs };
  };

  it("does nothing without a notification socket", () => {
    const send = vi.fn();
    const sd = new SystemdNotifier({ send });
    expect(sd.enabled).toBe(false);
    sd.ready("x");
    sd.reloading();
    sd.stopping();
    sd.status("y");
    expect(sd.startWatchdog(() => true)).toBeTypeOf("function");
    expect(send).not.toHaveBeenCalled();
  });

  it("formats READY, RELOADING with MONOTONIC_USEC, STOPPING and STATUS", () => {
    const { sd, sent } = recording();
    sd.ready("BGP 1/1 established");
    sd.reloading();
    sd.ready();
    sd.status("line two\nwith a newline");
    sd.status("line two\nwith a newline");
    sd.stopping();
    expect(sent).toEqual([
      "READY=1\nSTATUS=BGP 1/1 established\n",
      "RELOADING=1\nMONOTONIC_USEC=123456789\nSTATUS=reloading the config\n",
      "READY=1\n",
      "STATUS=line two with a newline\n",
      "STOPPING=1\nSTATUS=stopping\n",
    ]);
  });

  it("reads NOTIFY_SOCKET and WATCHDOG_USEC (only for its own WATCHDOG_PID) and unsets them", () => {
    const env: NodeJS.ProcessEnv = {
      NOTIFY_SOCKET: "@sd",
      WATCHDOG_USEC: "10000000",
      WATCHDOG_PID: String(process.pid),
      OTHER: "kept",
    };
    const sd = SystemdNotifier.fromEnv(env, { send: () => {} });
    expect(sd.enabled).toBe(true);
    expect(sd.watchdogMs).toBe(10_000);
    expect(env).toEqual({ OTHER: "kept" });
    const other = SystemdNotifier.fromEnv(
      { NOTIFY_SOCKET: "/run/n", WATCHDOG_USEC: "5000000", WATCHDOG_PID: "1" },
      { send: () => {} },
    );
    expect(other.enabled).toBe(true);
    expect(other.watchdogMs).toBeUndefined();
    const logs: string[] = [];
    const bad = SystemdNotifier.fromEnv(
      { NOTIFY_SOCKET: "vsock:2:1234" },
      { log: (_l, m) => logs.push(m) },
    );
    expect(bad.enabled).toBe(false);
    expect(logs.join()).toMatch(/neither a path nor @name/);
  });

  it("a failing send is logged once per reason and never thrown", () => {
    const logs: string[] = [];
    let fail = true;
    const sd = new SystemdNotifier({
      socket: "/run/systemd/notify",
      send: () => {
        if (fail) throw new NativeSocketError(11, "sd_notify");
      },
      log: (_l, m) => logs.push(m),
    });
    expect(sd.notify({ WATCHDOG: 1 })).toBe(false);
    expect(sd.notify({ WATCHDOG: 1 })).toBe(false);
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatch(/cannot notify/);
    fail = false;
    expect(sd.notify({ WATCHDOG: 1 })).toBe(true);
    expect(logs[1]).toMatch(/work again/);
  });

  it("feeds the watchdog every quarter of WatchdogSec (at most 1 s) only while alive", () => {
    vi.useFakeTimers();
    const { sd, sent, logs } = recording({ watchdogUsec: 2_000_000 });
    let alive = true;
    let ticks = 0;
    const stop = sd.startWatchdog(() => alive, {
      what: "the forwarder's heartbeat",
      onTick: () => ticks++,
    });
    const pings = () => sent.filter((m) => m === "WATCHDOG=1\n").length;
    expect(pings()).toBe(1); // at once
    vi.advanceTimersByTime(2000); // 500 ms apart
    expect(pings()).toBe(5);
    alive = false;
    vi.advanceTimersByTime(3000);
    expect(pings()).toBe(5);
    expect(logs.filter((l) => /fails; not feeding/.test(l))).toHaveLength(1);
    alive = true;
    vi.advanceTimersByTime(500);
    expect(pings()).toBe(6);
    expect(logs.at(-1)).toMatch(/passes again/);
    expect(ticks).toBe(1 + 4 + 6 + 1);
    stop();
    vi.advanceTimersByTime(5000);
    expect(pings()).toBe(6);
    const long = recording({ watchdogUsec: 30_000_000 });
    long.sd.startWatchdog(() => true);
    vi.advanceTimersByTime(10_000);
    expect(long.sent).toHaveLength(11); // every second, not every 7.5 s
    long.sd.stopping();
    vi.advanceTimersByTime(5000);
    expect(long.sent).toHaveLength(12);
  });

  it("a throwing check counts as a failure", () => {
    vi.useFakeTimers();
    const { sd, sent } = recording({ watchdogUsec: 1_000_000 });
    sd.startWatchdog(() => {
      throw new Error("boom");
    });
    vi.advanceTimersByTime(1000);
    expect(sent).toEqual([]);
    sd.stopWatchdog();
  });
});

describe("the MUX's notifications", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  type Line = Parameters<typeof muxStatusLine>[0];
  const status = (over: Partial<Line> = {}): Line => ({
    muxHealthy: true,
    peers: [{ state: "Established" }, { state: "Active" }] as Line["peers"],
    services: [{ announced: true }, { announced: false }] as Line["services"],
    hostAgents: { expected: ["198.51.100.2", "198.51.100.6"], connected: ["198.51.100.2"] },
    ...over,
  });

  it("the status line", () => {
    expect(muxStatusLine(status(), true)).toBe(
      "BGP 1/2 established, 1/2 VIPs announced, host agents 1/2",
    );
    expect(muxStatusLine(status({ muxHealthy: false }), false)).toMatch(
      /FORWARDER STALLED: all VIPs withdrawn, watchdog not fed$/,
    );
    expect(muxStatusLine(status({ hostAgents: { expected: [], connected: [] } }), true)).toBe(
      "BGP 1/2 established, 1/2 VIPs announced",
    );
  });

  it("READY=1, then WATCHDOG=1 only while the forwarder's heartbeat is fresh", () => {
    vi.useFakeTimers();
    const sent: string[] = [];
    const sd = new SystemdNotifier({
      socket: "@sd",
      watchdogUsec: 4_000_000,
      send: (_s, m) => {
        sent.push(m);
      },
    });
    let alive = true;
    const stop = notifyMuxRunning(sd, { status: () => status(), forwarderAlive: () => alive });
    expect(sent[0]).toBe(
      "READY=1\nSTATUS=BGP 1/2 established, 1/2 VIPs announced, host agents 1/2\n",
    );
    vi.advanceTimersByTime(3000);
    const pings = () => sent.filter((m) => m === "WATCHDOG=1\n").length;
    expect(pings()).toBe(4);
    alive = false;
    vi.advanceTimersByTime(5000);
    expect(pings()).toBe(4);
    expect(sent.some((m) => /STATUS=.*FORWARDER STALLED/.test(m))).toBe(true);
    stop();
  });
});

describe.skipIf(!nativeAvailable())("vipmux run under a notification socket", () => {
  it("READY=1 once serving, WATCHDOG=1, RELOADING=1/READY=1 on SIGHUP and reload, STOPPING=1", async () => {
    const r = await receiver(join(dir, "run-notify.sock"));
    const socket = join(dir, "admin.sock");
    const file = join(dir, "mux.yml");
    // Engine none: BGP and health only, so no root; the peer is a port nobody listens on.
    writeFileSync(
      file,
      `node: { name: sd, router-id: 192.0.2.2 }
bgp: { asn: 65101, peers: [ { address: 127.0.0.1, asn: 65000, port: 9, connect-retry: 60s } ] }
dataplane: { engine: none }
health: { listen: "off" }
api: { socket: ${socket} }
`,
    );
    const child = spawn(process.execPath, [`${root}src/cli/main.ts`, "run", "--config", file], {
      env: {
        ...process.env,
        NOTIFY_SOCKET: r.socket,
        WATCHDOG_USEC: "400000",
        VIPMUX_LOG_FORMAT: "json",
      },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr!.on("data", (d) => {
      stderr += d;
    });
    try {
      const ready = await r.waitFor("READY", "1").catch((e: Error) => {
        throw new Error(`${e.message}\n${stderr}`);
      });
      expect(ready.pid).toBe(child.pid);
      expect(ready.fields.STATUS).toBe("BGP 0/1 established, 0/0 VIPs announced");
      const pings = r.messages.length;
      await r.waitFor("WATCHDOG", "1", pings);
      await new Promise((res) => setTimeout(res, 500));
      // Every 100 ms (a quarter of 400 ms); a loaded machine may delay some.
      expect(r.messages.filter((m) => m.fields.WATCHDOG === "1").length).toBeGreaterThan(2);

      let mark = r.messages.length;
      child.kill("SIGHUP");
      const reloading = await r.waitFor("RELOADING", "1", mark);
      expect(Number(reloading.fields.MONOTONIC_USEC)).toBeGreaterThan(0);
      await r.waitFor("READY", "1", r.messages.indexOf(reloading));

      // ExecReload=vipmux reload: the same notifications through the admin socket.
      mark = r.messages.length;
      const reload = spawn(
        process.execPath,
        [`${root}src/cli/main.ts`, "reload", "--socket", socket],
        { stdio: "ignore", env: { ...process.env, NOTIFY_SOCKET: r.socket } },
      );
      const [code] = (await once(reload, "exit")) as [number];
      expect(code).toBe(0);
      const again = await r.waitFor("RELOADING", "1", mark);
      // From the daemon, not from the `vipmux reload` client.
      expect(again.pid).toBe(child.pid);
      expect(r.messages.slice(mark).every((m) => m.pid === child.pid)).toBe(true);
      await r.waitFor("READY", "1", r.messages.indexOf(again));

      mark = r.messages.length;
      child.kill("SIGTERM");
      await r.waitFor("STOPPING", "1", mark);
      const [exit] = (await once(child, "exit")) as [number];
      expect(exit).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  });
});
