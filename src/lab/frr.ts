// FRR inside a lab namespace: Debian's daemons run with their own pathspace (-N) so many
// routers share one machine; `vtysh -N <pathspace>` reaches each of them.
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isAlive, must, sleep } from "../util/proc.ts";
import type { FrrPlan } from "./plan.ts";

export const FRR_LIB = "/usr/lib/frr";

export const frrConfDir = (ps: string) => `/etc/frr/${ps}`;
export const frrRunDir = (ps: string) => `/var/run/frr/${ps}`;

export function frrInstalled(): boolean {
  return existsSync(join(FRR_LIB, "zebra")) && existsSync(join(FRR_LIB, "bgpd"));
}

/** Starts the planned daemons in `netns`; resolves once each answers on its vty socket. */
export async function startFrr(netns: string, plan: FrrPlan, logDir: string): Promise<void> {
  const ps = plan.pathspace;
  const confDir = frrConfDir(ps);
  const runDir = frrRunDir(ps);
  await stopFrr(ps); // a crashed earlier run may have left daemons under the same name
  mkdirSync(confDir, { recursive: true });
  mkdirSync(runDir, { recursive: true });
  mkdirSync(logDir, { recursive: true });
  const conf = join(confDir, "frr.conf");
  if (plan.config) copyFileSync(plan.config, conf);
  else writeFileSync(conf, "");
  writeFileSync(join(confDir, "vtysh.conf"), "service integrated-vtysh-config\n");
  await must(["chown", "-R", "frr:frr", confDir, runDir, logDir]);
  for (const daemon of plan.daemons) {
    await must(
      [
        "ip",
        "netns",
        "exec",
        netns,
        join(FRR_LIB, daemon),
        "-d",
        "-N",
        ps,
        "-F",
        plan.profile,
        "-f",
        conf,
        "--log",
        `file:${join(logDir, `${daemon}.log`)}`,
      ],
      { timeoutMs: 15_000 },
    );
    // bgpd and bfdd register with zebra over zserv.api; wait for each vty so the next
    // daemon and the first vtysh command find it ready.
    await waitFor(() => existsSync(join(runDir, `${daemon}.vty`)), 10_000, `${daemon} in ${netns}`);
  }
}

/** Stops every daemon of a pathspace and waits until they are gone, then removes its dirs. */
export async function stopFrr(ps: string, removeDirs = false): Promise<number> {
  const runDir = frrRunDir(ps);
  const pids: number[] = [];
  if (existsSync(runDir)) {
    for (const d of ["zebra", "bgpd", "bfdd", "staticd", "watchfrr"]) {
      const pidFile = join(runDir, `${d}.pid`);
      if (!existsSync(pidFile)) continue;
      const pid = Number.parseInt(readFileSync(pidFile, "utf8"), 10);
      if (pid > 0 && isAlive(pid)) pids.push(pid);
    }
  }
  await killAndWait(pids);
  if (removeDirs) {
    rmSync(runDir, { recursive: true, force: true });
    rmSync(frrConfDir(ps), { recursive: true, force: true });
  }
  return pids.length;
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when all are gone. */
export async function killAndWait(pids: number[], graceMs = 3000): Promise<void> {
  for (const pid of pids) signal(pid, "SIGTERM");
  const deadline = Date.now() + graceMs;
  while (pids.some(isAlive) && Date.now() < deadline) await sleep(50);
  for (const pid of pids.filter(isAlive)) signal(pid, "SIGKILL");
  const hard = Date.now() + 5000;
  while (pids.some(isAlive) && Date.now() < hard) await sleep(50);
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** argv for vtysh on a lab node. */
export function vtyshArgv(ps: string, args: string[]): string[] {
  return ["vtysh", "-N", ps, ...args];
}
