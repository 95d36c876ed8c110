// Rules that span fields: what a schema cannot say but an operator would catch in review.
// Each returns issues with the config path they concern, so load.ts can give line:column.
import { isIPv6 } from "node:net";
import type { Config } from "./schema.ts";

export interface SemanticIssue {
  path: (string | number)[];
  message: string;
}

interface PortSpan {
  service: number;
  port: number;
  protocol: string;
  first: number;
  last: number;
}

function span(p: { port?: number | undefined; portRange?: string | undefined }): [number, number] {
  if (p.port !== undefined) return [p.port, p.port];
  const [a, b] = (p.portRange ?? "0-0").split("-").map(Number);
  return [a ?? 0, b ?? 0];
}

const fmtSpan = (s: PortSpan) => (s.first === s.last ? `${s.first}` : `${s.first}-${s.last}`);

export function checkSemantics(cfg: Config): SemanticIssue[] {
  const issues: SemanticIssue[] = [];
  const add = (path: (string | number)[], message: string) => issues.push({ path, message });

  const peerAddrs = new Map<string, number>();
  cfg.bgp.peers.forEach((p, i) => {
    const prev = peerAddrs.get(p.address);
    if (prev !== undefined)
      add(["bgp", "peers", i, "address"], `duplicate peer ${p.address} (also bgp.peers.${prev})`);
    else peerAddrs.set(p.address, i);
    if (p.maxPrefixes.limit > cfg.bgp.maxPrefixesTotal)
      add(
        ["bgp", "peers", i, "max-prefixes"],
        `max-prefixes ${p.maxPrefixes.limit} is above bgp.max-prefixes-total ${cfg.bgp.maxPrefixesTotal}: raise the total too`,
      );
  });

  const serviceNames = new Map<string, number>();
  const spansByVip = new Map<string, PortSpan[]>();
  const vniByDip = new Map<string, { vni: number; service: string }>();
  cfg.services.forEach((s, si) => {
    const base = ["services", si];
    const prev = serviceNames.get(s.name);
    if (prev !== undefined)
      add([...base, "name"], `duplicate service name "${s.name}" (also services.${prev})`);
    else serviceNames.set(s.name, si);

    const v6 = isIPv6(s.vip);
    s.ports.forEach((p, pi) => {
      const [first, last] = span(p);
      if (p.portRange !== undefined) {
        if (first < 1 || last > 65535 || first > last)
          add(
            [...base, "ports", pi, "port-range"],
            `port range ${p.portRange} must be FIRST-LAST within 1-65535, FIRST <= LAST`,
          );
        if (p.backendPort !== undefined)
          add(
            [...base, "ports", pi, "backend-port"],
            "backend-port cannot be combined with port-range (ranges keep their ports)",
          );
      }
      const mine: PortSpan = { service: si, port: pi, protocol: p.protocol, first, last };
      const list = spansByVip.get(s.vip) ?? [];
      for (const other of list) {
        if (
          other.protocol === mine.protocol &&
          other.first <= mine.last &&
          mine.first <= other.last
        ) {
          const what =
            other.service === si
              ? "this service"
              : `service "${cfg.services[other.service]?.name}"`;
          add(
            [...base, "ports", pi],
            other.first === mine.first && other.last === mine.last
              ? `duplicate VIP ${s.vip} ${mine.protocol}/${fmtSpan(mine)}: already in ${what}`
              : `${mine.protocol} ports ${fmtSpan(mine)} of ${s.vip} overlap ${fmtSpan(other)} in ${what}`,
          );
        }
      }
      list.push(mine);
      spansByVip.set(s.vip, list);
    });

    if (s.minHealthy > s.backends.length)
      add(
        [...base, "min-healthy"],
        `min-healthy ${s.minHealthy} exceeds the number of backends (${s.backends.length}): the VIP could never be announced`,
      );

    const dips = new Map<string, number>();
    s.backends.forEach((b, bi) => {
      const bpath = [...base, "backends", bi];
      const dup = dips.get(b.dip);
      if (dup !== undefined)
        add([...bpath, "dip"], `duplicate backend ${b.dip} (also backends.${dup})`);
      dips.set(b.dip, bi);
      if (!b.floatingIp && isIPv6(b.dip) !== v6)
        add(
          [...bpath, "dip"],
          `DIP ${b.dip} and VIP ${s.vip} are of different families (NAT needs the same family)`,
        );
      const seen = vniByDip.get(b.dip);
      if (seen && seen.vni !== s.vni)
        add(
          [...bpath, "dip"],
          `DIP ${b.dip} is in service "${seen.service}" with VNI ${seen.vni} and here with VNI ${s.vni}`,
        );
      else if (!seen) vniByDip.set(b.dip, { vni: s.vni, service: s.name });
    });

    const h = s.health;
    if (h.type !== "none" && h.timeout >= h.interval)
      add(
        [...base, "health", "timeout"],
        `probe timeout (${h.timeout} ms) must be shorter than the interval (${h.interval} ms)`,
      );
    if (h.type === "exec" && !h.command)
      add([...base, "health", "command"], "an exec probe needs command: [argv...]");
    if (h.type === "exec" && h.from === "mux")
      add([...base, "health", "from"], "exec probes run on the host agent; use from: host-agent");

    if (v6) {
      const hasV6NextHop =
        cfg.bgp.nextHopV6 !== undefined ||
        cfg.bgp.peers.every((p) => p.export.nextHopV6 !== undefined || isIPv6(p.address));
      if (!hasV6NextHop)
        add(
          [...base, "vip"],
          `IPv6 VIP ${s.vip} needs an IPv6 next hop: set bgp.next-hop-v6 or export.next-hop-v6 on each IPv4 peer`,
        );
    }
  });

  cfg.bgp.peers.forEach((p, i) => {
    (p.export.services ?? []).forEach((name, j) => {
      if (!serviceNames.has(name))
        add(
          ["bgp", "peers", i, "export", "services", j],
          `unknown service "${name}" in the export policy of peer ${p.address}`,
        );
    });
  });
  return issues;
}
