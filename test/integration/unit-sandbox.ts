// Running a systemd unit's commands the way systemd would, without systemd (this machine
// has no systemd as PID 1): a shell script for `unshare --mount` that applies the parts of
// the unit a process can feel, read from the unit file itself, then runs ExecStartPre= and
// execs ExecStart=. What it reproduces:
//
// | unit setting                          | here                                               |
// |---------------------------------------|----------------------------------------------------|
// | User=, Group=                         | setpriv --reuid/--regid --clear-groups (numeric ids) |
// | AmbientCapabilities=, CapabilityBoundingSet= | setpriv --inh-caps, --ambient-caps, --bounding-set |
// | NoNewPrivileges=yes                   | setpriv --no-new-privs                             |
// | ProtectSystem=strict                  | every mount read-only but /dev, /proc, /sys, the runtime directory, /tmp |
// | ProtectHome=yes                       | empty read-only tmpfs over /home, /root, /run/user |
// | PrivateTmp=yes                        | fresh tmpfs on /tmp and /var/tmp                   |
// | RuntimeDirectory=, RuntimeDirectoryMode= | tmpfs on /run/NAME owned by the user            |
// | UMask=                                | umask                                              |
// | Environment=                          | env -i with those, PATH as systemd sets it, and the caller's |
//
// Not reproduced (they need systemd's seccomp, cgroup or namespace setup): SystemCall*,
// RestrictAddressFamilies, DevicePolicy/DeviceAllow, PrivateDevices, Protect{Kernel*,Clock,
// Hostname,ControlGroups,Proc}, PrivateIPC, RestrictNamespaces, RestrictRealtime,
// LockPersonality, WatchdogSec (the test stands in for systemd's notification socket).
import { capabilityNames, environment, execArgv, type UnitFile } from "../../src/systemd/unit.ts";

/** systemd's PATH for services (systemd.exec(5), "Environment variables in spawned processes"). */
export const SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export interface SandboxOptions {
  unit: UnitFile;
  uid: number;
  gid: number;
  /** Bind mounts made before everything turns read-only: target path → source on this machine. */
  binds: Record<string, string>;
  /** Extra environment for ExecStart= (NOTIFY_SOCKET, WATCHDOG_USEC, ...). */
  env?: Record<string, string>;
  /** Shell lines run as root after the mounts, before everything turns read-only. */
  setup?: string[];
}

const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/** argv that runs the unit's ExecStartPre= commands and then its ExecStart= in the sandbox. */
export function sandboxArgv(o: SandboxOptions): string[] {
  return [
    "unshare",
    "--mount",
    "--propagation",
    "private",
    "--",
    "/bin/sh",
    "-c",
    sandboxScript(o),
  ];
}

export function sandboxScript(o: SandboxOptions): string {
  const S = "Service";
  const u = o.unit;
  const lines = ["set -e"];
  for (const [target, source] of Object.entries(o.binds))
    lines.push(`mount --bind ${q(source)} ${q(target)}`);
  const runtimeDirs = (u.value(S, "RuntimeDirectory") ?? "").split(/\s+/).filter(Boolean);
  const runtimeMode = u.value(S, "RuntimeDirectoryMode") ?? "0755";
  for (const d of runtimeDirs)
    lines.push(
      `mount -t tmpfs -o mode=${runtimeMode},uid=${o.uid},gid=${o.gid} tmpfs ${q(`/run/${d}`)}`,
    );
  if (u.value(S, "PrivateTmp") === "yes")
    for (const d of ["/tmp", "/var/tmp"]) lines.push(`mount -t tmpfs -o mode=1777 tmpfs ${d}`);
  if (u.value(S, "ProtectHome") === "yes")
    for (const d of ["/home", "/root", "/run/user"])
      lines.push(`if [ -d ${d} ]; then mount -t tmpfs -o ro,mode=0755 tmpfs ${d}; fi`);
  lines.push(...(o.setup ?? []));
  if (u.value(S, "ProtectSystem") === "strict") {
    const writable = [
      "/dev",
      "/proc",
      "/sys",
      "/tmp",
      "/var/tmp",
      ...runtimeDirs.map((d) => `/run/${d}`),
    ];
    const keep = writable.map((w) => `${w}|${w}/*`).join("|");
    lines.push(
      `findmnt -rn -o TARGET | while IFS= read -r m; do case "$m" in ${keep}) ;; *) mount -o remount,bind,ro "$m" 2>/dev/null || true ;; esac; done`,
    );
  } else if (u.value(S, "ProtectSystem") !== undefined) {
    throw new Error(`ProtectSystem=${u.value(S, "ProtectSystem")}: only strict is reproduced here`);
  }
  const umask = u.value(S, "UMask");
  if (umask) lines.push(`umask ${umask}`);
  for (const pre of u.values(S, "ExecStartPre"))
    lines.push(asUnitUser(o, execArgv(pre)).map(q).join(" "));
  const start = u.value(S, "ExecStart");
  if (!start) throw new Error("the unit has no ExecStart=");
  lines.push(
    `exec ${asUnitUser(o, execArgv(start), o.env ?? {})
      .map(q)
      .join(" ")}`,
  );
  return lines.join("\n");
}

/**
 * argv that runs `argv` as the unit's user, with its capabilities, no_new_privs and its
 * environment (PATH as systemd sets it, Environment=, then `env`): what every Exec*= line
 * of the unit gets. Use it inside the sandbox's mount namespace (nsenter) for ExecReload=.
 */
export function asUnitUser(
  o: Pick<SandboxOptions, "unit" | "uid" | "gid">,
  argv: readonly string[],
  env: Record<string, string> = {},
): string[] {
  const S = "Service";
  const capList = (key: string) =>
    capabilityNames(o.unit.values(S, key))
      .map((c) => `,+${c.replace(/^CAP_/, "").toLowerCase()}`)
      .join("");
  const ambient = capList("AmbientCapabilities");
  return [
    "setpriv",
    `--reuid=${o.uid}`,
    `--regid=${o.gid}`,
    "--clear-groups",
    `--inh-caps=-all${ambient}`,
    `--ambient-caps=-all${ambient}`,
    `--bounding-set=-all${capList("CapabilityBoundingSet")}`,
    ...(o.unit.value(S, "NoNewPrivileges") === "yes" ? ["--no-new-privs"] : []),
    "--",
    "env",
    "-i",
    ...Object.entries({
      PATH: SYSTEMD_PATH,
      ...environment(o.unit.values(S, "Environment")),
      ...env,
    }).map(([k, v]) => `${k}=${v}`),
    ...argv,
  ];
}

/**
 * System calls made by the unit's processes in `strace -f` output of a sandboxed run: those
 * of every process from the `env -i` that starts each Exec*= command (setpriv and the root
 * set-up before it are systemd's part), and of their children. Name → count.
 */
export function unitSyscalls(strace: string): Map<string, number> {
  const inUnit = new Set<string>();
  const calls = new Map<string, number>();
  for (const line of strace.split("\n")) {
    const m = /^(\d+) +(?:<\.\.\. )?([a-z0-9_]+)[( ]/.exec(line);
    if (!m) continue;
    const [, pid, name] = m as unknown as [string, string, string];
    if (line.includes('execve("/usr/bin/env", ["env", "-i"')) inUnit.add(pid);
    if (!inUnit.has(pid) || name === "exited" || name === "killed" || name === "resumed") continue;
    calls.set(name, (calls.get(name) ?? 0) + 1);
    if (/^(clone3?|v?fork)$/.test(name)) {
      const child = /= (\d+)$/.exec(line.trim());
      if (child) inUnit.add(child[1]!);
    }
  }
  return calls;
}

/**
 * The system calls a unit's SystemCallFilter= lines allow, expanded with
 * `systemd-analyze syscall-filter` (this machine's systemd): the first allow list, then each
 * line in order adds (plain) or removes (~) its sets and names.
 */
export function allowedSyscalls(unit: UnitFile, syscallFilterOutput: string): Set<string> {
  const sets = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const raw of syscallFilterOutput.split("\n")) {
    const line = raw.trim();
    if (raw.startsWith("@")) {
      current = [];
      sets.set(line, current);
    } else if (line !== "" && !line.startsWith("#") && current) current.push(line);
  }
  const expand = (name: string, seen: Set<string> = new Set()): string[] => {
    if (!name.startsWith("@")) return [name];
    if (seen.has(name)) return [];
    seen.add(name);
    const members = sets.get(name);
    if (!members) throw new Error(`unknown system call set ${name}`);
    return members.flatMap((x) => expand(x, seen));
  };
  let allowed: Set<string> | undefined;
  for (const value of unit.values("Service", "SystemCallFilter")) {
    const deny = value.startsWith("~");
    const names = (deny ? value.slice(1) : value)
      .split(/\s+/)
      .filter(Boolean)
      .flatMap((n) => expand(n));
    if (!allowed) {
      if (deny) throw new Error("a deny-list-only SystemCallFilter is not handled here");
      allowed = new Set(names);
    } else for (const n of names) deny ? allowed.delete(n) : allowed.add(n);
  }
  if (!allowed) throw new Error("the unit has no SystemCallFilter=");
  return allowed;
}
