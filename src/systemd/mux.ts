// The MUX under systemd (configs/systemd/vipmux.service, Type=notify, WatchdogSec=):
// READY=1 once `vipmux run` serves, a STATUS= line that follows peers, VIPs and host
// agents, and WATCHDOG=1 only while the forwarder's heartbeat is fresh. A forwarder that
// stalls makes the MUX unhealthy at once (its VIPs are withdrawn: docs/architecture.md,
// "From a probe to a forwarding table and a BGP route", step 7); one that stays stalled for
// WatchdogSec gets the whole process restarted by systemd.
import type { MuxStatus } from "../api/status.ts";
import type { SystemdNotifier } from "./notify.ts";

/** What the notifier reads of the daemon (src/controller/mux.ts's MuxDaemon). */
export interface NotifiedMux {
  status(): Pick<MuxStatus, "muxHealthy" | "peers" | "services" | "hostAgents">;
  /** The forwarder's heartbeat is fresh, or there is no forwarder (engine none). */
  forwarderAlive(): boolean;
}

/**
 * One line for `systemctl status`, e.g. "BGP 2/2 established, 3/3 VIPs announced, host
 * agents 2/2".
 */
export function muxStatusLine(
  s: Pick<MuxStatus, "muxHealthy" | "peers" | "services" | "hostAgents">,
  forwarderAlive: boolean,
): string {
  const up = s.peers.filter((p) => p.state === "Established").length;
  const announced = s.services.filter((v) => v.announced).length;
  const parts = [
    `BGP ${up}/${s.peers.length} established`,
    `${announced}/${s.services.length} VIPs announced`,
  ];
  if (s.hostAgents.expected.length > 0)
    parts.push(`host agents ${s.hostAgents.connected.length}/${s.hostAgents.expected.length}`);
  let line = parts.join(", ");
  if (!forwarderAlive) line += "; FORWARDER STALLED: all VIPs withdrawn, watchdog not fed";
  else if (!s.muxHealthy) line += "; unhealthy: all VIPs withdrawn";
  return line;
}

/**
 * Tells systemd the MUX is ready and keeps the watchdog and the status line going. Call
 * after MuxDaemon.start(); the returned function stops the timer (SystemdNotifier.stopping
 * does too). Does nothing when not started by systemd.
 */
export function notifyMuxRunning(sd: SystemdNotifier, daemon: NotifiedMux): () => void {
  if (!sd.enabled) return () => {};
  const line = () => muxStatusLine(daemon.status(), daemon.forwarderAlive());
  sd.ready(line());
  return sd.startWatchdog(() => daemon.forwarderAlive(), {
    what: "the forwarder's heartbeat",
    onTick: () => sd.status(line()),
  });
}
