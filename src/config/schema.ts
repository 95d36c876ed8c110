// The one schema of vipmux's YAML config. Field names are the config's (kebab-case), so
// errors and the JSON Schema name what users wrote; parsing maps them once to the typed,
// camelCase Config the rest of the code uses (camel.ts). Semantic rules that span fields
// (duplicate VIPs, VNI conflicts, ...) live in semantic.ts; both report through load.ts.
import { isIP, isIPv4 } from "node:net";
import { z } from "zod";
import { parseHostPort } from "../util/host-port.ts";
import { camelizeKeys } from "./camel.ts";
import { parseDurationMs } from "./duration.ts";

// The JSON Schema (`vipmux config schema`) carries each address's format, so editors flag
// a bad one as it is typed; the refinements are what decides.
export const ipv4 = z
  .string()
  .refine((s) => isIPv4(s), { message: "must be an IPv4 address" })
  .meta({ format: "ipv4" });
// Node's isIP accepts IPv6 zones (fe80::1%eth0); a zone names an interface of one machine
// and means nothing in a VIP, DIP or peer address shared by every MUX.
export const ip = z
  .string()
  .refine((s) => isIP(s) !== 0, { message: "must be an IPv4 or IPv6 address" })
  .refine((s) => !s.includes("%"), {
    message:
      "an IPv6 zone (%eth0) names one machine's interface and has no meaning here: remove it",
  })
  .meta({ anyOf: [{ format: "ipv4" }, { format: "ipv6" }] });

/** An editor's approximation of ADDRESS:PORT; parseHostPort decides. */
const HOST_PORT_PATTERN = String.raw`(\[[0-9A-Fa-f:.]+\]|([0-9]{1,3}\.){3}[0-9]{1,3})?:[0-9]{1,5}`;

/** A string; a YAML number (`metrics: 9273`) gets the bare-port message, not a type error. */
const addressText = () =>
  z.string({
    error: (iss) => {
      if (typeof iss.input !== "number") return undefined;
      const r = parseHostPort(String(iss.input));
      return r.ok ? undefined : r.error;
    },
  });

/**
 * `address:port` (IPv6 in brackets), parsed by the one parser the daemon binds with;
 * `whenOff` says what to write instead of `off` where the socket cannot be off.
 */
export const hostPortAddress = (whenOff: string) =>
  addressText()
    .superRefine((s, ctx) => {
      const r = s === "off" ? { ok: false as const, error: whenOff } : parseHostPort(s);
      if (!r.ok) ctx.addIssue({ code: "custom", message: r.error });
    })
    .meta({ pattern: `^${HOST_PORT_PATTERN}$` });

/** `address:port` (IPv6 in brackets) or `off`. */
export const listenAddress = addressText()
  .superRefine((s, ctx) => {
    if (s === "off") return;
    const r = parseHostPort(s);
    if (!r.ok) ctx.addIssue({ code: "custom", message: `${r.error}; or off` });
  })
  .meta({ pattern: `^(off|${HOST_PORT_PATTERN})$` });

/**
 * The BGP identifier: a non-zero 4-octet value (RFC 6286 §2.1), here an IPv4 unicast
 * address of this node, since it is also the default VXLAN outer source.
 */
const routerId = ipv4.superRefine((s, ctx) => {
  if (!isIPv4(s)) return;
  const first = Number(s.split(".")[0]);
  if (s === "0.0.0.0")
    ctx.addIssue({
      code: "custom",
      message:
        "0.0.0.0 is not a BGP identifier (RFC 6286: a non-zero value): use this MUX's own IPv4 address",
    });
  else if (first === 0 || first === 127 || first >= 224)
    ctx.addIssue({
      code: "custom",
      message: `${s} is not a unicast address (${first === 127 ? "loopback" : first === 0 ? "0.0.0.0/8" : first < 240 ? "multicast" : "reserved or broadcast"}): use this MUX's own IPv4 address (it is also the default VXLAN outer source)`,
    });
});
const asn = z.number().int().min(1).max(4_294_967_295);
export const port = z.number().int().min(1).max(65_535);
export const durationMs = (what: string) =>
  z
    .union([z.string(), z.number()])
    .transform((v, ctx) => {
      const ms = parseDurationMs(v);
      if (ms === undefined) {
        ctx.addIssue({
          code: "custom",
          message: `${what}: expected a duration like 500ms, 1s, 2m`,
        });
        return z.NEVER;
      }
      return ms;
    })
    .describe(`${what} (e.g. 500ms, 1s, 2m; a bare number is milliseconds)`);

/** A secret given inline, from a file, or from an environment variable (one of them). */
export const secret = z
  .union([
    z.string().min(1),
    z.strictObject({ file: z.string().min(1) }),
    z.strictObject({ env: z.string().min(1) }),
  ])
  .describe("a string, { file: PATH } or { env: VARIABLE }");

const community = z
  .string()
  .regex(/^\d{1,5}:\d{1,5}$/, "must be ASN:VALUE with 16-bit parts, e.g. 65000:100");
const largeCommunity = z
  .string()
  .regex(/^\d{1,10}:\d{1,10}:\d{1,10}$/, "must be GA:LD1:LD2, e.g. 65000:1:2");

const bfd = z.strictObject({
  "interval-ms": z
    .number()
    .int()
    .min(10)
    .max(60_000)
    .default(300)
    .describe("desired TX and required RX interval"),
  multiplier: z
    .number()
    .int()
    .min(1)
    .max(255)
    .default(3)
    .describe("detection time = multiplier x interval"),
  passive: z.boolean().default(false).describe("wait for the peer to start the session"),
});

const exportPolicy = z.strictObject({
  /** Services whose VIPs go to this peer; all when absent. */
  services: z
    .array(z.string())
    .optional()
    .describe("services whose VIPs go to this peer (default: all)"),
  med: z
    .number()
    .int()
    .min(0)
    .max(4_294_967_295)
    .optional()
    .describe("MULTI_EXIT_DISC sent to this peer"),
  "as-path-prepend": z.number().int().min(0).max(10).default(0).describe("extra copies of our AS"),
  communities: z.array(community).default([]).describe("added to every VIP sent to this peer"),
  "large-communities": z.array(largeCommunity).default([]).describe("RFC 8092 large communities"),
  "next-hop": ip.optional().describe("IPv4 next hop (default: the session's local address)"),
  "next-hop-v6": ip.optional().describe("IPv6 next hop for IPv6 VIPs over this session"),
});

/** RFC 4486 maximum prefixes: a limit, or the limit with its warning and restart timer. */
const prefixCount = z.number().int().min(0).max(4_294_967_295);
const maxPrefixesDefault = { limit: 1000, warning: 75, "restart-after": 60_000 };
const maxPrefixes = z
  .union([
    prefixCount,
    z
      .strictObject({
        limit: prefixCount.describe("most prefixes kept from this peer, IPv4 and IPv6 together"),
        warning: z
          .number()
          .int()
          .min(1)
          .max(100)
          .default(75)
          .describe("log a warning at this percentage of the limit (once per crossing)"),
        "restart-after": durationMs("down after the Cease, then reconnect").default(60_000),
      })
      .refine((m) => m["restart-after"] >= 1000, {
        message: "restart-after must be at least 1s",
        path: ["restart-after"],
      }),
  ])
  .transform((m) => (typeof m === "number" ? { ...maxPrefixesDefault, limit: m } : m))
  .describe(
    "routes kept from this peer, IPv4 and IPv6 together; one more closes the session with Cease 6/1 (RFC 4486), down for restart-after. A number (the limit) or { limit, warning: percent that logs a warning (75), restart-after: duration (60s, at least 1s) }",
  );

const peer = z.strictObject({
  address: ip.describe("the router's address (IPv4 or IPv6)"),
  asn: asn.describe("the router's AS"),
  description: z.string().optional().describe("name in logs, status and metrics"),
  "local-address": ip
    .optional()
    .describe("source address of the session (and default IPv4 next hop)"),
  port: port.default(179),
  passive: z.boolean().default(false).describe("never connect; wait for the router"),
  "hold-time": z
    .number()
    .int()
    .refine((v) => v === 0 || (v >= 3 && v <= 65_535), "must be 0 or 3..65535 (RFC 4271 §4.2)")
    .default(9),
  "connect-retry": durationMs("connect retry").default(5_000),
  "multihop-ttl": z
    .number()
    .int()
    .min(1)
    .max(255)
    .optional()
    .describe("eBGP multihop: TTL of our packets"),
  "ttl-security": z.boolean().default(false).describe("GTSM, RFC 5082"),
  password: secret.optional().describe("TCP-MD5 key (RFC 2385)"),
  "max-prefixes": maxPrefixes.prefault(1000),
  bfd: bfd.optional().describe("RFC 5880/5881 single-hop BFD; a BFD Down takes the session down"),
  export: exportPolicy.default({
    "as-path-prepend": 0,
    communities: [],
    "large-communities": [],
  }),
});

export const healthCheckSchema = z.strictObject({
  type: z.enum(["tcp", "http", "https", "udp", "exec", "none"]).describe("none: always up"),
  from: z
    .enum(["host-agent", "mux"])
    .default("host-agent")
    .describe("who probes: the backend's host agent (streams to every MUX) or each MUX itself"),
  port: port.optional().describe("default: the first backend port"),
  path: z
    .string()
    .regex(
      /^\/[\x21-\x7e]*$/,
      "must start with / and contain no spaces or control characters (percent-encode them)",
    )
    .default("/")
    .describe("HTTP(S) path"),
  "expect-status": z
    .string()
    .regex(/^\d{3}(-\d{3})?$/, "must be a status or a range, e.g. 200 or 200-399")
    .default("200-399"),
  "expect-body": z.string().optional(),
  send: z.string().optional().describe("UDP probe payload"),
  command: z.array(z.string()).min(1).optional().describe("exec probe argv"),
  interval: durationMs("probe interval").default(1_000),
  timeout: durationMs("probe timeout").default(500),
  rise: z.number().int().min(1).max(100).default(2).describe("consecutive successes to come up"),
  fall: z.number().int().min(1).max(100).default(2).describe("consecutive failures to go down"),
  jitter: z.number().min(0).max(0.5).default(0.1).describe("fraction of the interval"),
});

const servicePort = z
  .strictObject({
    protocol: z.enum(["tcp", "udp"]),
    port: port.optional().describe("VIP port"),
    "port-range": z
      .string()
      .regex(/^\d{1,5}-\d{1,5}$/, "must be FIRST-LAST, e.g. 8000-8099")
      .optional(),
    "backend-port": port.optional().describe("default: the same port (no port translation)"),
  })
  .refine((p) => (p.port === undefined) !== (p["port-range"] === undefined), {
    message: "give exactly one of port or port-range",
  });

const backend = z.strictObject({
  dip: ip.describe("the backend's own address"),
  host: ip.describe("PA of the host running it (outer VXLAN destination)"),
  weight: z.number().int().min(0).max(1000).default(1),
  "floating-ip": z.boolean().default(false).describe("the DIP owns the VIP; no NAT on the host"),
});

export const serviceSchema = z.strictObject({
  name: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]*$/, "lowercase letters, digits, - and _")
    .describe("unique service name"),
  vip: ip.describe("announced as /32 or /128 while healthy"),
  ports: z.array(servicePort).min(1).describe("VIP listeners"),
  distribution: z
    .enum(["5-tuple", "3-tuple", "2-tuple"])
    .default("5-tuple")
    .describe(
      "flow hash: 5-tuple, 3-tuple (src, dst, proto) or 2-tuple (src, dst: client affinity)",
    ),
  vni: z.number().int().min(1).max(16_777_215).describe("VXLAN network of the service's backends"),
  "min-healthy": z
    .number()
    .int()
    .min(0)
    .default(1)
    .describe("fewer healthy backends than this: withdraw the VIP"),
  enabled: z.boolean().default(true).describe("false: keep the config, announce nothing"),
  health: healthCheckSchema.default({
    type: "tcp",
    from: "host-agent",
    path: "/",
    "expect-status": "200-399",
    interval: 1_000,
    timeout: 500,
    rise: 2,
    fall: 2,
    jitter: 0.1,
  }),
  backends: z.array(backend).min(1),
});

/** The file as written (kebab-case keys, defaults filled in). */
export const configFileSchema = z
  .strictObject({
    node: z.strictObject({
      name: z.string().min(1).describe("this MUX's name (logs, health stream)"),
      "router-id": routerId.describe(
        "BGP identifier: this MUX's IPv4 unicast address (non-zero, RFC 6286; the default VXLAN outer source)",
      ),
    }),
    bgp: z.strictObject({
      asn: asn.describe("this MUX's AS"),
      "coalesce-ms": z
        .number()
        .int()
        .min(0)
        .max(1000)
        .default(5)
        .describe("batch announce/withdraw bursts for this long before sending UPDATEs"),
      drain: z
        .strictObject({
          wait: durationMs("drain wait").default(30_000),
          "as-path-prepend": z.number().int().min(0).max(10).default(0),
        })
        .default({ wait: 30_000, "as-path-prepend": 0 }),
      "next-hop-v6": ip.optional().describe("IPv6 next hop for IPv6 VIPs (default: per peer)"),
      listen: hostPortAddress("cannot be off (it opens only while a passive peer is configured)")
        .default("[::]:179")
        .describe("where passive peers connect to; open only while a passive peer is configured"),
      "max-prefixes-total": prefixCount
        .default(1_000_000)
        .describe(
          "routes kept from all peers together; the peer that would pass it is closed as by max-prefixes",
        ),
      damping: z
        .strictObject({
          enabled: z.boolean().default(true),
          penalty: z.number().int().min(1).default(1000),
          suppress: z.number().int().min(1).default(2000),
          reuse: z.number().int().min(1).default(750),
          "half-life": durationMs("penalty half-life").default(10_000),
          "max-suppress": durationMs("longest suppression after flapping stops").default(60_000),
        })
        .refine((d) => d.reuse < d.suppress, { message: "reuse must be below suppress" })
        .default({
          enabled: true,
          penalty: 1000,
          suppress: 2000,
          reuse: 750,
          "half-life": 10_000,
          "max-suppress": 60_000,
        })
        .describe(
          "route-flap damping of VIP announcements (RFC 2439 ideas, applied at the source)",
        ),
      peers: z.array(peer).min(1),
    }),
    dataplane: z
      .strictObject({
        engine: z
          .enum(["userspace", "none"])
          .default("userspace")
          .describe(
            "userspace: forward in a worker thread; none: BGP and health only (VIPs announced for a forwarder outside vipmux)",
          ),
        "vxlan-port": port.default(4789),
        "flow-table-size": z.number().int().min(1024).max(16_777_216).default(1_000_000),
        "second-chance": durationMs("second-chance grace period")
          .refine((ms) => ms === 0 || (ms >= 1_000 && ms < 2 ** 31), {
            message: "must be 0 (off) or between 1s and 24 days",
          })
          .default(1_800_000)
          .describe(
            "after a table change, how long a flow without an entry names its earlier DIP to the host (docs/dataplane.md#second-chance); 0: off",
          ),
        "maglev-table-size": z.union([z.literal(65_537), z.literal(655_373)]).default(65_537),
        io: z
          .enum(["tun", "packet"])
          .default("tun")
          .describe(
            "packet I/O: tun (VIPs routed into a TUN device) or packet (AF_PACKET on `interface`)",
          ),
        interface: z.string().optional().describe("interface VIP traffic arrives on (io: packet)"),
        "source-v4": ip
          .optional()
          .describe("VXLAN outer source for IPv4 hosts (default: node.router-id)"),
        "source-v6": ip
          .optional()
          .describe("VXLAN outer source for IPv6 hosts (default: bgp.next-hop-v6)"),
      })
      .default({
        engine: "userspace",
        io: "tun",
        "vxlan-port": 4789,
        "flow-table-size": 1_000_000,
        "second-chance": 1_800_000,
        "maglev-table-size": 65_537,
      }),
    health: z
      .strictObject({
        "agent-timeout": durationMs("host-agent silence before its DIPs count as down").default(
          3_000,
        ),
        token: secret
          .optional()
          .describe(
            "cluster secret (at least 16 characters) host agents' keys derive from; required unless listen is off",
          ),
        "next-token": secret
          .optional()
          .describe("rotation: a second secret also accepted while agents move to it"),
        listen: listenAddress
          .default("0.0.0.0:7946")
          .describe("health stream address:port for host agents, or off"),
        "hold-down": durationMs("wait after MUX recovery before re-announcing").default(5_000),
      })
      .default({ "agent-timeout": 3_000, listen: "0.0.0.0:7946", "hold-down": 5_000 }),
    api: z
      .strictObject({
        socket: z.string().default("/run/vipmux/admin.sock"),
        "socket-group": z
          .string()
          .optional()
          .describe(
            "group (name or gid) whose members may use the admin socket (vipmux status, drain, ...): the socket is made 0660 and owned by it; default: the daemon's user only (0600)",
          ),
        metrics: hostPortAddress("leave metrics out to have no metrics endpoint")
          .optional()
          .describe(
            "ADDRESS:PORT of Prometheus /metrics, e.g. 127.0.0.1:9273 (absent: no metrics endpoint)",
          ),
      })
      .default({ socket: "/run/vipmux/admin.sock" }),
    services: z.array(serviceSchema).default([]),
  })
  .describe("vipmux MUX configuration");

/** The file, validated, as the typed Config (camelCase keys). */
export const configSchema = configFileSchema.transform(camelizeKeys);

export type Config = z.output<typeof configSchema>;
export type ServiceConfig = Config["services"][number];
export type PeerConfig = Config["bgp"]["peers"][number];
export type BackendConfig = ServiceConfig["backends"][number];

/** JSON Schema of the config file (what users write: defaults are optional). */
export function configJsonSchema(): object {
  return z.toJSONSchema(configFileSchema, { io: "input", unrepresentable: "any" });
}
