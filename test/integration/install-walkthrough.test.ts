// docs/install.md's walkthrough, step by step, on network namespaces instead of machines
// (test/fixtures/install-lab/walkthrough.clab.yml): `npm pack`, a global install into a
// prefix that stands for /usr/local, the walkthrough's own files (docs/walkthrough/) in each
// machine's /etc/vipmux, the health token and the hosts' keys made as the walkthrough says,
// the FRR edge router running the walkthrough's frr.conf, and the MUXes and host agents
// started from the systemd units' own ExecStartPre=/ExecStart= lines, as an unprivileged
// user with the units' capabilities and sandbox (test/integration/unit-sandbox.ts), with a
// stand-in for systemd's notification socket. Then: both MUXes announce the VIPs (one ECMP
// route at the edge), HTTP through the VIP reaches a backend, the units' reload and stop do
// what they say, the watchdog is fed only while the forwarder's heartbeat is fresh, and every
// system call mux1 and host1 made (traced with strace) is one their unit's SystemCallFilter=
// allows.
import { type ChildProcess, spawnSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmdirSync,
  rmSync,
  symlinkSync,
} from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fibNextHops, pollUntil, startLab, type TestLab } from "../../src/lab/testing.ts";
import { execArgv, parseUnit } from "../../src/systemd/unit.ts";
import { type Notification, NotifyReceiver } from "../fixtures/systemd/receiver.ts";
import { fixture, isRoot, namespacesWithPrefix, repoRoot } from "./helpers.ts";
import {
  allowedSyscalls,
  asUnitUser,
  type SandboxOptions,
  sandboxArgv,
  unitSyscalls,
} from "./unit-sandbox.ts";

const walkthrough = (f: string) => `${repoRoot}docs/walkthrough/${f}`;
const muxUnit = parseUnit(readFileSync(`${repoRoot}configs/systemd/vipmux.service`, "utf8"));
const agentUnit = parseUnit(
  readFileSync(`${repoRoot}configs/systemd/vipmux-host-agent.service`, "utf8"),
);
const VIP = "20.20.20.100";
const VIP6 = "2001:db8:f::100";
const MUXES = ["mux1", "mux2"] as const;
const HOSTS = [
  ["host1", "198.51.100.2"],
  ["host2", "198.51.100.6"],
] as const;
type Machine = (typeof MUXES)[number] | (typeof HOSTS)[number][0];
/** WATCHDOG_USEC as systemd would set it; the units say 10 s (MUX), shortened here. */
const WATCHDOG_USEC = 4_000_000;
/** Daemons run under `strace -f` for the SystemCallFilter= check (one of each kind). */
const TRACED: readonly Machine[] = ["mux1", "host1"];

function sh(cmd: string, args: string[], opts: { cwd?: string; timeoutMs?: number } = {}) {
  const r = spawnSync(cmd, args, {
    cwd: opts.cwd ?? repoRoot,
    encoding: "utf8",
    timeout: opts.timeoutMs ?? 300_000,
  });
  return { code: r.status, out: `${r.stdout ?? ""}${r.stderr ?? ""}` };
}

/** A uid/gid no account or group on this machine has: the units' user `vipmux` here. */
function freeId(): number {
  const used = new Set<number>();
  for (const f of ["/etc/passwd", "/etc/group"])
    for (const line of readFileSync(f, "utf8").split("\n")) {
      const id = Number(line.split(":")[2]);
      if (Number.isInteger(id)) used.add(id);
    }
  let id = 64_000 + (process.pid % 500);
  while (used.has(id)) id++;
  return id;
}

describe.skipIf(!isRoot)("install: docs/install.md's walkthrough, followed literally", () => {
  let work = "";
  let prefix = "";
  let lab: TestLab;
  let createdEtc = false;
  const id = freeId();
  const etc = (m: Machine) => join(work, "etc", m);
  const procs = new Map<Machine, ChildProcess>();
  const notify = new Map<Machine, NotifyReceiver>();
  const strace = spawnSync("sh", ["-c", "command -v strace && command -v systemd-analyze"]);
  const tracing = strace.status === 0;
  const traceFile = (m: Machine) => join(work, `${m}.strace`);
  const traced = (m: Machine) => tracing && TRACED.includes(m);
  /** The daemon's pid, from its READY=1 (under strace the lab's child is strace). */
  const mainPid = (m: Machine) => {
    const pid = notify.get(m)?.find("READY", "1")?.pid;
    if (!pid) throw new Error(`${m} has not said READY=1`);
    return pid;
  };

  /**
   * Runs a shell script as root "on" a machine: its /etc/vipmux and the /usr/local the
   * install filled, in its network namespace (lab.exec). The walkthrough's root commands.
   */
  const onMachine = (m: Machine, script: string) =>
    lab.must(m, [
      "unshare",
      "--mount",
      "--propagation",
      "private",
      "--",
      "/bin/sh",
      "-ec",
      `mount --bind ${prefix} /usr/local; mount --bind ${etc(m)} /etc/vipmux; PATH=/usr/local/bin:$PATH; ${script}`,
    ]);

  /** The unit's user, capabilities and environment, inside the running daemon's namespaces. */
  const asDaemon = (m: Machine, argv: string[]) => {
    const unit = m.startsWith("mux") ? muxUnit : agentUnit;
    const pid = mainPid(m);
    return sh("nsenter", [
      `--target=${pid}`,
      "--mount",
      "--net",
      "--",
      ...asUnitUser({ unit, uid: id, gid: id }, argv),
    ]);
  };

  const hops = (prefixLen: string) => fibNextHops(lab, "edge", prefixLen);
  const waitHops = (p: string, want: string[], what: string, timeoutMs = 30_000) =>
    pollUntil(
      async () => {
        const h = await hops(p);
        return JSON.stringify(h) === JSON.stringify(want) ? h : undefined;
      },
      { timeoutMs, intervalMs: 100, what },
    );

  beforeAll(async () => {
    expect(await namespacesWithPrefix(`clab-inst-${process.pid.toString(36)}`)).toEqual([]);
    work = mkdtempSync("/var/tmp/vipmux-install-");
    chmodSync(work, 0o755);
    prefix = join(work, "usr-local");

    // "npm pack" in the source tree, then "npm install -g --prefix /usr/local vipmux-*.tgz".
    const pack = sh("npm", ["pack", "--pack-destination", work]);
    expect(pack.code, pack.out).toBe(0);
    const tgz = readdirSync(work).find((f) => /^vipmux-.*\.tgz$/.test(f));
    expect(tgz, pack.out).toBeDefined();
    const install = sh("npm", ["install", "-g", "--prefix", prefix, join(work, tgz!)], {
      cwd: work,
    });
    expect(install.code, install.out).toBe(0);
    // "npm install -g --prefix /usr/local node@24" puts Node at /usr/local/bin/node; the
    // Node running these tests stands in for it instead of being downloaded again.
    symlinkSync(process.execPath, join(prefix, "bin", "node"));

    // The mount points the machines' own directories go on.
    if (!existsSync("/etc/vipmux")) {
      mkdirSync("/etc/vipmux");
      createdEtc = true;
    }
    mkdirSync("/run/vipmux", { recursive: true });
    for (const m of [...MUXES, ...HOSTS.map(([h]) => h)]) mkdirSync(etc(m), { recursive: true });

    lab = await startLab(fixture("install-lab/walkthrough.clab.yml"), "inst");

    // On each MUX: "install -m 0644 mux1.yml /etc/vipmux/mux.yml" (from the installed
    // package's docs/walkthrough/); on mux1 the token, copied to mux2 with its mode.
    for (const m of MUXES)
      await onMachine(
        m,
        `install -m 0644 /usr/local/lib/node_modules/vipmux/docs/walkthrough/${m}.yml /etc/vipmux/mux.yml`,
      );
    await onMachine(
      "mux1",
      `head -c 32 /dev/urandom | base64 > /etc/vipmux/health-token && chown root:${id} /etc/vipmux/health-token && chmod 0640 /etc/vipmux/health-token`,
    );
    copyFileSync(join(etc("mux1"), "health-token"), join(etc("mux2"), "health-token"));
    chownSync(join(etc("mux2"), "health-token"), 0, id);
    chmodSync(join(etc("mux2"), "health-token"), 0o640);
    // On mux1, each host's key ("vipmux health-key PA -o hostN.key"), then on the host:
    // "install -o root -g vipmux -m 0640 hostN.key /etc/vipmux/health.key".
    for (const [h, pa] of HOSTS) {
      await onMachine("mux1", `vipmux health-key ${pa} -o ${work}/${h}.key`);
      await onMachine(
        h,
        `install -m 0644 /usr/local/lib/node_modules/vipmux/docs/walkthrough/${h}.yml /etc/vipmux/host-agent.yml && install -o root -g ${id} -m 0640 ${work}/${h}.key /etc/vipmux/health.key`,
      );
    }

    // The backends: anything answering HTTP on 8080 (the walkthrough's VMs).
    for (const vm of ["vm1", "vm2"])
      lab.spawn(
        vm,
        [
          process.execPath,
          `${prefix}/bin/vipmux`,
          "lab",
          "backend",
          "--name",
          vm,
          "--http",
          "8080",
        ],
        `${vm}-backend`,
      );

    // "systemctl enable --now vipmux" / "vipmux-host-agent": the units' commands, sandboxed.
    for (const m of [...MUXES, ...HOSTS.map(([h]) => h)]) {
      const r = new NotifyReceiver(`@vipmux-notify-${lab.plan.lab}-${m}`, {
        netns: lab.node(m).netns,
      });
      notify.set(m, r);
      await r.ready();
      const isMux = m.startsWith("mux");
      const opts: SandboxOptions = {
        unit: isMux ? muxUnit : agentUnit,
        uid: id,
        gid: id,
        binds: { "/usr/local": prefix, "/etc/vipmux": etc(m) },
        env: {
          NOTIFY_SOCKET: r.socket,
          WATCHDOG_USEC: String(WATCHDOG_USEC),
          // Lab only: SIGUSR2 stalls mux1's forwarder, for the watchdog test below.
          ...(m === "mux1" ? { VIPMUX_TEST_FAULTS: "1" } : {}),
        },
        // Debian's udev makes /dev/net/tun 0666 (50-udev-default.rules); this machine has no
        // udev and a 0600 node, so the MUX gets the node a Debian machine would give it.
        setup: isMux
          ? [
              "mknod -m 0666 /tmp/.tun c 10 200 && mount --bind /tmp/.tun /dev/net/tun && rm /tmp/.tun",
            ]
          : [],
      };
      const argv = sandboxArgv(opts);
      const trace = traced(m) ? ["strace", "-f", "-qq", "-o", traceFile(m)] : [];
      procs.set(m, lab.spawn(m, [...trace, ...argv], `vipmux-${m}`));
    }
  }, 400_000);

  afterAll(async () => {
    for (const p of procs.values()) if (p.exitCode === null) p.kill("SIGTERM");
    for (const r of notify.values()) r.close();
    await lab?.down();
    if (work) rmSync(work, { recursive: true, force: true });
    if (createdEtc)
      try {
        rmdirSync("/etc/vipmux");
      } catch {
        // someone else put something there meanwhile: leave it
      }
  });

  const log = (m: Machine) => {
    try {
      return readFileSync(join(lab.plan.dir, `vipmux-${m}.log`), "utf8");
    } catch {
      return "";
    }
  };

  it("npm pack + npm install -g: /usr/local/bin/vipmux, the addon built, the configs valid", async () => {
    expect(readlinkSync(join(prefix, "bin", "vipmux"))).toBe(
      "../lib/node_modules/vipmux/dist/cli/main.js",
    );
    const pkg = join(prefix, "lib", "node_modules", "vipmux");
    expect(existsSync(join(pkg, "build", "Release", "vipmux_native.node"))).toBe(true);
    for (const f of ["mux1.yml", "mux2.yml", "host1.yml", "host2.yml", "edge-frr.conf"])
      expect(readFileSync(join(pkg, "docs", "walkthrough", f), "utf8")).toBe(
        readFileSync(walkthrough(f), "utf8"),
      );
    for (const m of MUXES)
      expect(await onMachine(m, "vipmux validate /etc/vipmux/mux.yml")).toBe(
        "/etc/vipmux/mux.yml: valid (1 peers, 2 services, 4 backends)\n",
      );
    for (const [h, pa] of HOSTS)
      expect(await onMachine(h, "vipmux validate /etc/vipmux/host-agent.yml")).toBe(
        `/etc/vipmux/host-agent.yml: valid (host agent of ${pa}: 2 services, 2 of 4 backends on this host)\n`,
      );
  });

  it("every daemon says READY=1 from its main PID, running as the unit's user", async () => {
    for (const [m, r] of notify) {
      const ready = await r.waitFor("READY", "1", 0, 60_000).catch((e: Error) => {
        throw new Error(`${m}: ${e.message}\n${log(m)}`);
      });
      // systemd takes notifications only from the main PID (NotifyAccess=main): the
      // sandbox execs down to the daemon, so that is the process the lab started (or, when
      // traced, the one strace started).
      if (!traced(m)) expect(ready.pid, m).toBe(procs.get(m)!.pid);
      expect(readFileSync(`/proc/${ready.pid}/cmdline`, "utf8").split("\0")).toContain(
        "/usr/local/bin/vipmux",
      );
      const status = readFileSync(`/proc/${ready.pid}/status`, "utf8");
      expect(status).toMatch(new RegExp(`^Uid:\\s+${id}\\s+${id}\\s+${id}\\s+${id}$`, "m"));
      expect(status).toMatch(/^NoNewPrivs:\s+1$/m);
      const amb = BigInt(`0x${/^CapAmb:\s+(\w+)$/m.exec(status)![1]}`);
      // CAP_NET_ADMIN (12), plus for the MUX CAP_NET_RAW (13), CAP_NET_BIND_SERVICE (10),
      // CAP_SYS_NICE (23).
      const want = m.startsWith("mux")
        ? (1n << 12n) | (1n << 13n) | (1n << 10n) | (1n << 23n)
        : 1n << 12n;
      expect(amb, m).toBe(want);
    }
  });

  it("both MUXes announce the VIPs: one ECMP route at the edge, BFD up", async () => {
    await waitHops(`${VIP}/32`, ["192.0.2.2", "192.0.2.6"], "the VIP via both MUXes", 60_000);
    await waitHops(
      `${VIP6}/128`,
      ["2001:db8:0:1::2", "2001:db8:0:2::2"],
      "the IPv6 VIP via both MUXes",
    );
    // BFD comes up beside BGP (FRR does not wait for it), so it may still be in Init here.
    await pollUntil(
      async () => {
        const bfd = await lab.vtyshJson<{ peer: string; status: string }[]>(
          "edge",
          "show bfd peers json",
        );
        const states = bfd.map((p) => `${p.peer} ${p.status}`).sort();
        return states.join() === "192.0.2.2 up,192.0.2.6 up" ? states : undefined;
      },
      { timeoutMs: 15_000, what: "BFD up with both MUXes" },
    );
    // Only the VIPs came in from the MUXes (the prefix lists let nothing else through).
    const bgp = await lab.vtyshJson<Record<string, unknown>>("edge", "show ip route bgp json");
    expect(Object.keys(bgp)).toEqual([`${VIP}/32`]);
    const want = "BGP 1/1 established, 2/2 VIPs announced, host agents 2/2";
    for (const m of MUXES) {
      const s = await pollUntil(
        async () => {
          const st = [...notify.get(m)!.messages].reverse().find((x) => x.fields.STATUS);
          return st?.fields.STATUS === want ? st : undefined;
        },
        { timeoutMs: 10_000, what: `${m}'s STATUS= line` },
      );
      expect(s.fields.STATUS).toBe(want);
    }
  });

  it("HTTP through the VIP reaches a backend VM (IPv4 and IPv6)", async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const body = await lab.must("client", ["curl", "-sS", "-m", "5", `http://${VIP}/`]);
      expect(body).toMatch(/^vm[12] /);
      seen.add(body.split(" ")[0]!);
    }
    expect(await lab.must("client", ["curl", "-sS", "-m", "5", `http://[${VIP6}]/`])).toMatch(
      /^vm[12] /,
    );
    expect(seen.size).toBeGreaterThan(0);
  });

  it("status and ExecReload work as the unit's user; reloads say RELOADING=1, then READY=1", async () => {
    const status = asDaemon("mux1", [
      "/usr/local/bin/vipmux",
      "status",
      "--json",
      "-s",
      "/run/vipmux/admin.sock",
    ]);
    expect(status.code, status.out).toBe(0);
    const s = JSON.parse(status.out) as { peers: { state: string }[]; muxHealthy: boolean };
    expect(s.muxHealthy).toBe(true);
    expect(s.peers.map((p) => p.state)).toEqual(["Established"]);

    const r = notify.get("mux1")!;
    const mark = r.messages.length;
    const reload = asDaemon("mux1", execArgv(muxUnit.value("Service", "ExecReload")!));
    expect(reload.code, reload.out).toBe(0);
    const reloading = await r.waitFor("RELOADING", "1", mark);
    expect(reloading.pid).toBe(mainPid("mux1"));
    await r.waitFor("READY", "1", r.messages.indexOf(reloading));

    // The host agent's ExecReload is `kill -HUP $MAINPID`.
    expect(agentUnit.value("Service", "ExecReload")).toBe("/bin/kill -HUP $MAINPID");
    const a = notify.get("host1")!;
    const amark = a.messages.length;
    process.kill(mainPid("host1"), "SIGHUP");
    const areloading = await a.waitFor("RELOADING", "1", amark);
    await a.waitFor("READY", "1", a.messages.indexOf(areloading));
    await waitHops(`${VIP}/32`, ["192.0.2.2", "192.0.2.6"], "the VIP via both MUXes after reloads");
  });

  it("the watchdog is fed only while the forwarder's heartbeat is fresh", async () => {
    const r = notify.get("mux1")!;
    const pings = (from: number, to = Date.now()) =>
      r.messages.filter(
        (m: Notification) => m.fields.WATCHDOG === "1" && m.at >= from && m.at < to,
      );
    // Fed every second (a quarter of WATCHDOG_USEC, at most 1 s) while healthy.
    const t0 = Date.now();
    await pollUntil(async () => pings(t0).length >= 2, { timeoutMs: 5000, what: "two pings" });

    const mux1 = mainPid("mux1");
    process.kill(mux1, "SIGUSR2"); // stall the forwarder
    const stalled = Date.now();
    await waitHops(`${VIP}/32`, ["192.0.2.6"], "mux1's VIP withdrawn while its forwarder stalls");
    // A heartbeat older than 1 s fails the check; wait past one more check interval.
    await new Promise((res) => setTimeout(res, 3000));
    expect(pings(stalled + 1500)).toEqual([]);
    expect(
      r.messages.some((m) => m.at >= stalled && /FORWARDER STALLED/.test(m.fields.STATUS ?? "")),
    ).toBe(true);

    process.kill(mux1, "SIGUSR2"); // resume
    const resumed = Date.now();
    await pollUntil(async () => pings(resumed).length > 0, {
      timeoutMs: 5000,
      what: "WATCHDOG=1 again once the forwarder runs",
    });
    // After health.hold-down the VIP comes back at mux1.
    await waitHops(`${VIP}/32`, ["192.0.2.2", "192.0.2.6"], "mux1's VIP back", 60_000);
  });

  it("systemctl stop: STOPPING=1, exit 0, and the VIP stays up through the other MUX", async () => {
    const r = notify.get("mux2")!;
    const mark = r.messages.length;
    const mux2 = procs.get("mux2")!;
    const exited = new Promise<number | null>((res) => mux2.once("exit", (code) => res(code)));
    mux2.kill("SIGTERM");
    await r.waitFor("STOPPING", "1", mark);
    expect(await exited).toBe(0);
    await waitHops(`${VIP}/32`, ["192.0.2.2"], "the VIP via mux1 only");
    expect(await lab.must("client", ["curl", "-sS", "-m", "5", `http://${VIP}/`])).toMatch(
      /^vm[12] /,
    );
  });

  it("every system call of mux1 and host1 is allowed by their unit's SystemCallFilter=", async (ctx) => {
    if (!tracing) ctx.skip("strace or systemd-analyze is not installed (scripts/setup.sh)");
    // Stop them (systemctl stop) so strace has written everything, then compare.
    for (const m of TRACED) {
      const exited = new Promise((res) => procs.get(m)!.once("exit", res));
      process.kill(mainPid(m), "SIGTERM");
      await notify.get(m)!.waitFor("STOPPING", "1");
      await exited;
    }
    const filter = sh("systemd-analyze", ["syscall-filter"]).out;
    for (const m of TRACED) {
      const unit = m.startsWith("mux") ? muxUnit : agentUnit;
      const allowed = allowedSyscalls(unit, filter);
      const used = unitSyscalls(readFileSync(traceFile(m), "utf8"));
      // The daemon itself, the ExecStartPre= check and what they ran (ip, nft, sh).
      expect(used.get("execve"), m).toBeGreaterThan(1);
      expect(used.size, m).toBeGreaterThan(40);
      expect(
        [...used.keys()].filter((c) => !allowed.has(c)),
        `${m}: system calls its unit's SystemCallFilter= refuses`,
      ).toEqual([]);
    }
  });
});
