// The two kinds of vipmux config file, told apart by their top-level keys: a host agent's
// has `host:` (its PA) and no `bgp:`, a MUX's has `bgp:`. `vipmux validate` and
// `vipmux config schema` serve both through here.
import { readFileSync } from "node:fs";
import { isMap, isScalar, parseDocument } from "yaml";
import { err, type Result } from "../util/result.ts";
import { kebabizeKeys } from "./camel.ts";
import { type HostAgentConfig, hostAgentJsonSchema, parseHostAgentConfig } from "./host-agent.ts";
import { type ConfigError, parseConfig } from "./load.ts";
import { type Config, configJsonSchema } from "./schema.ts";

export const CONFIG_KINDS = ["mux", "host-agent"] as const;
export type ConfigKind = (typeof CONFIG_KINDS)[number];

/**
 * The kind a file's top-level keys say: `host` without `bgp` is a host agent, anything else
 * a MUX (whose schema then names what is wrong). Unparsable YAML is a MUX too: the YAML
 * errors are the same for both kinds.
 */
export function configKindOf(text: string): ConfigKind {
  let keys: string[] = [];
  try {
    const doc = parseDocument(text);
    if (isMap(doc.contents))
      keys = doc.contents.items.flatMap((i) =>
        isScalar(i.key) && typeof i.key.value === "string" ? [i.key.value] : [],
      );
  } catch {
    return "mux";
  }
  return keys.includes("host") && !keys.includes("bgp") ? "host-agent" : "mux";
}

export type AnyConfig =
  | { kind: "mux"; config: Config }
  | { kind: "host-agent"; config: HostAgentConfig };

/** Loads a file of the given kind, or of the kind its top-level keys say. */
export function loadAnyConfig(
  file: string,
  kind?: ConfigKind,
  env: NodeJS.ProcessEnv = process.env,
): { kind: ConfigKind; result: Result<AnyConfig, ConfigError[]> } {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    return {
      kind: kind ?? "mux",
      result: err([{ file, path: "", message: `cannot read: ${(e as Error).message}` }]),
    };
  }
  const k = kind ?? configKindOf(text);
  if (k === "host-agent") {
    const r = parseHostAgentConfig(text, file, env);
    return { kind: k, result: r.ok ? { ok: true, value: { kind: k, config: r.value } } : r };
  }
  const r = parseConfig(text, file, env);
  return { kind: k, result: r.ok ? { ok: true, value: { kind: k, config: r.value } } : r };
}

/** What a valid file holds, in a few words. */
export function describeConfig(c: AnyConfig): string {
  const backends = c.config.services.reduce((n, s) => n + s.backends.length, 0);
  if (c.kind === "mux")
    return `${c.config.bgp.peers.length} peers, ${c.config.services.length} services, ${backends} backends`;
  const pa = c.config.host.pa;
  const local = c.config.services.reduce(
    (n, s) => n + s.backends.filter((b) => b.host === pa).length,
    0,
  );
  return `host agent of ${pa}: ${c.config.services.length} services, ${local} of ${backends} backends on this host`;
}

/**
 * The config as users write it (kebab-case keys) without secret values: every `password`,
 * `token`, `next-token` and `key` (where the schemas keep secrets) becomes "<redacted>".
 */
export function redactedConfig(c: AnyConfig): unknown {
  return kebabizeKeys(redact(c.config));
}

const SECRET_KEYS = new Set(["password", "token", "nextToken", "key"]);

function redact(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redact);
  if (value === null || typeof value !== "object") return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value))
    out[k] = SECRET_KEYS.has(k) && v !== undefined ? "<redacted>" : redact(v);
  return out;
}

/** The JSON Schema of one kind of file. */
export function jsonSchemaOf(kind: ConfigKind): object {
  return kind === "host-agent" ? hostAgentJsonSchema() : configJsonSchema();
}
