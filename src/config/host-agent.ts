// The host agent's config: which host this is (its PA, the VXLAN port and inner MAC the
// MUXes use) and the same service objects as the MUX config. The agent programs only the
// backends whose `host` is this host's PA. Loading follows load.ts: YAML with positions →
// schema → semantic rules (the MUX's service rules plus the host's own), every problem
// with file:line:column, nothing thrown.
import { isIPv6 } from "node:net";
import { z } from "zod";
import { dipMacText, dipMark, NO_OWNER_MAC, VIPMUX_MARK_MASK } from "../lb/dip-mac.ts";
import { parseMac } from "../packet/address.ts";
import type { Result } from "../util/result.ts";
import { camelizeKeys } from "./camel.ts";
import { type ConfigError, checkHealthSecret, parseYamlConfig, readConfigFile } from "./load.ts";
import {
  type Config,
  durationMs,
  hostPortAddress,
  ip,
  port,
  secret,
  serviceSchema,
} from "./schema.ts";
import { checkSemantics, type SemanticIssue } from "./semantic.ts";

/**
 * The VXLAN devices' MAC (locally administered, unicast): the inner Ethernet destination of
 * a MUX that names no DIP. MUXes that do write `dipMac(DIP)` (src/lb/dip-mac.ts).
 */
export const DEFAULT_INNER_MAC = "02:76:6d:78:00:01";

const mac = z
  .string()
  .refine((s) => {
    const b = parseMac(s);
    return b !== undefined && (b[0]! & 0x01) === 0;
  }, "must be a unicast MAC address like 02:76:6d:78:00:01")
  .transform((s) => [...parseMac(s)!].map((x) => x.toString(16).padStart(2, "0")).join(":"));

const routeTable = z
  .number()
  .int()
  .min(1)
  .max(4_294_967_295)
  .refine((t) => t < 253 || t > 255, "tables 253-255 are the kernel's default, main and local");

export const hostAgentFileSchema = z
  .strictObject({
    node: z.strictObject({ name: z.string().min(1) }),
    host: z.strictObject({
      pa: ip.describe("this host's physical address: the outer VXLAN destination MUXes use"),
      "vxlan-port": port.default(4789),
      "inner-mac": mac
        .default(DEFAULT_INNER_MAC)
        .refine((m) => m !== NO_OWNER_MAC, {
          message: `must not be ${NO_OWNER_MAC}, the inner source of packets that name no earlier owner (a VXLAN device drops frames from its own MAC)`,
        })
        .describe(
          "every VXLAN device's MAC: the inner destination of MUXes that name no DIP (per-DIP MACs are dipMac(DIP))",
        ),
      gateway: ip
        .optional()
        .describe("edge router for IPv4 DSR replies (default: the main table's default route)"),
      "gateway-v6": ip.optional().describe("edge router for IPv6 DSR replies"),
      interface: z.string().optional().describe("underlay interface towards the gateway"),
      "route-table": routeTable
        .default(4789)
        .describe("routing table of the agent's routes (floating IP, DSR gateway)"),
      "dsr-mark": z
        .number()
        .int()
        .min(1)
        .max(4_294_967_295)
        .default(0x10000000)
        .describe("mark bits of DSR replies when a gateway is set (conntrack and packet mark)"),
      "second-chance": z
        .boolean()
        .default(true)
        .describe(
          "pass mid-flow packets this host does not know to the earlier owner a MUX names (docs/dataplane.md#second-chance; needs Linux 5.16+)",
        ),
      "rule-priority": z
        .number()
        .int()
        .min(1)
        .max(32_764)
        .default(4789)
        .describe(
          "priority of the agent's policy rules (it uses this and the next; main is 32766)",
        ),
    }),
    reconcile: z
      .strictObject({
        interval: durationMs("reconcile interval").default(30_000),
      })
      .default({ interval: 30_000 }),
    health: z
      .strictObject({
        key: secret
          .optional()
          .describe(
            "this host's own key: `vipmux health-key <PA>` on a machine holding the MUXes' health.token",
          ),
        token: secret
          .optional()
          .describe(
            "the MUXes' health.token itself (the agent derives its key; simpler, but this host could then speak for any host)",
          ),
        muxes: z
          .array(z.strictObject({ address: ip, port: port.default(7946) }))
          .min(1)
          .describe("every MUX's health stream (its health.listen)"),
      })
      .optional()
      .describe("probe this host's DIPs and report to the MUXes (absent: no probes)"),
    metrics: hostPortAddress("leave metrics out to have no metrics endpoint")
      .optional()
      .describe(
        "ADDRESS:PORT of the agent's Prometheus /metrics, e.g. 127.0.0.1:9274 (absent: no metrics endpoint)",
      ),
    services: z.array(serviceSchema).default([]),
  })
  .describe("vipmux host agent configuration");

/** The file, validated, as the typed config (camelCase keys, see camel.ts). */
export const hostAgentConfigSchema = hostAgentFileSchema.transform(camelizeKeys);

export type HostAgentConfig = z.output<typeof hostAgentConfigSchema>;

export function loadHostAgentConfig(
  file: string,
  env: NodeJS.ProcessEnv = process.env,
): Result<HostAgentConfig, ConfigError[]> {
  return readConfigFile(file, (text) => parseHostAgentConfig(text, file, env));
}

export function parseHostAgentConfig(
  text: string,
  file: string,
  env: NodeJS.ProcessEnv = process.env,
): Result<HostAgentConfig, ConfigError[]> {
  return parseYamlConfig(text, file, hostAgentConfigSchema, (cfg) =>
    checkHostAgentSemantics(cfg, env),
  );
}

/**
 * The MUX's service rules (duplicate names, overlapping VIP ports, NAT families, one VNI
 * per DIP, ...) plus what only matters on a host: a service's backends on this host are
 * either all floating-IP or all NAT (the MUX's inner packet does not say which DIP it
 * chose, so the host picks among its own and cannot mix the two), and floating DIPs have
 * the VIP's family (the agent routes the VIP to them).
 */
export function checkHostAgentSemantics(
  cfg: HostAgentConfig,
  env: NodeJS.ProcessEnv = process.env,
): SemanticIssue[] {
  // checkSemantics reads services and, for IPv6 VIPs, the BGP next hops; with no peers the
  // next-hop rule holds vacuously, so only the service rules speak.
  const issues = checkSemantics({
    bgp: { peers: [] },
    services: cfg.services,
  } as unknown as Config);
  cfg.services.forEach((s, si) => {
    const local = s.backends.map((b, bi) => ({ b, bi })).filter(({ b }) => b.host === cfg.host.pa);
    const floating = local.filter(({ b }) => b.floatingIp);
    if (floating.length > 0 && floating.length < local.length)
      issues.push({
        path: ["services", si, "backends", floating[0]!.bi, "floating-ip"],
        message: `backends of "${s.name}" on this host (${cfg.host.pa}) must be all floating-IP or all NAT`,
      });
    for (const { b, bi } of floating)
      if (isIPv6(b.dip) !== isIPv6(s.vip))
        issues.push({
          path: ["services", si, "backends", bi, "dip"],
          message: `floating-IP DIP ${b.dip} must have the family of VIP ${s.vip} (the host routes the VIP to it)`,
        });
  });
  issues.push(...dipMacIssues(cfg));
  if ((cfg.host.dsrMark & VIPMUX_MARK_MASK) >>> 0 !== 0)
    issues.push({
      path: ["host", "dsr-mark"],
      message: `must not overlap the mark bits 0x${VIPMUX_MARK_MASK.toString(16).padStart(8, "0")} (the MUX's DIP choice and second chance)`,
    });
  if (cfg.health) {
    const { key, token } = cfg.health;
    if ((key === undefined) === (token === undefined))
      issues.push({
        path: ["health"],
        message: "give exactly one of key (this host's key, recommended) or token",
      });
    const given = key !== undefined ? (["key", key] as const) : (["token", token] as const);
    const problem = given[1] === undefined ? undefined : checkHealthSecret(given[1], env);
    if (problem) issues.push({ path: ["health", given[0]], message: problem });
  }
  if (cfg.host.gateway !== undefined && isIPv6(cfg.host.gateway))
    issues.push({ path: ["host", "gateway"], message: "must be an IPv4 address (see gateway-v6)" });
  if (cfg.host.gatewayV6 !== undefined && !isIPv6(cfg.host.gatewayV6))
    issues.push({ path: ["host", "gateway-v6"], message: "must be an IPv6 address" });
  return issues;
}

/**
 * The MUX names its choice of DIP by the inner MAC `dipMac(DIP)`, and the host carries it
 * to NAT and routing as `dipMark(DIP)` (24 bits of the MAC): two DIPs of one VNI on this
 * host whose MACs or marks are equal could not be told apart, and a DIP whose MAC is the
 * VXLAN device's own would look like "no choice". Refused, at the second DIP. Any DIP
 * (on any host) whose MAC is NO_OWNER_MAC could not be named as an earlier owner.
 */
function dipMacIssues(cfg: HostAgentConfig): SemanticIssue[] {
  const issues: SemanticIssue[] = [];
  const seen = new Map<string, { dip: string; mac: string }>();
  cfg.services.forEach((s, si) => {
    s.backends.forEach((b, bi) => {
      let mac: string;
      try {
        mac = dipMacText(b.dip);
      } catch {
        return; // not an address: the schema reported it
      }
      const path = ["services", si, "backends", bi, "dip"];
      if (mac === NO_OWNER_MAC) {
        issues.push({
          path,
          message: `DIP ${b.dip}'s inner MAC ${mac} is the one that names no earlier owner (second chance): it cannot be told from a MUX's own`,
        });
        return;
      }
      if (b.host !== cfg.host.pa) return;
      if (mac === cfg.host.innerMac) {
        issues.push({
          path,
          message: `DIP ${b.dip}'s inner MAC ${mac} is host.inner-mac (the VXLAN device's own): choose another inner-mac`,
        });
        return;
      }
      const key = `${s.vni}/${dipMark(b.dip)}`;
      const other = seen.get(key);
      if (other === undefined) seen.set(key, { dip: b.dip, mac });
      else if (other.dip !== b.dip)
        issues.push({
          path,
          message:
            other.mac === mac
              ? `DIPs ${other.dip} and ${b.dip} of VNI ${s.vni} on this host have the same inner MAC ${mac}: the host could not tell which one a MUX chose`
              : `DIPs ${other.dip} and ${b.dip} of VNI ${s.vni} on this host have the same DIP mark 0x${dipMark(b.dip).toString(16)} (last 3 bytes of their inner MACs ${other.mac}, ${mac}): the host could not tell which one a MUX chose`,
        });
    });
  });
  return issues;
}

/** JSON Schema of the host agent's config file (what users write: defaults are optional). */
export function hostAgentJsonSchema(): object {
  return z.toJSONSchema(hostAgentFileSchema, { io: "input", unrepresentable: "any" });
}
