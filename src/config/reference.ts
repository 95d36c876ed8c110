// The config reference (docs/config.md), generated from the schemas so it cannot drift:
// one row per field with its type, default and description, for the MUX's config and the
// host agent's.
import { hostAgentJsonSchema } from "./host-agent.ts";
import { configJsonSchema } from "./schema.ts";

interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  format?: string;
  oneOf?: JsonSchema[];
  enum?: unknown[];
  const?: unknown;
  default?: unknown;
  description?: string;
  pattern?: string;
  minimum?: number;
  maximum?: number;
}

const FORMATS: Record<string, string> = { ipv4: "IPv4 address", ipv6: "IPv6 address" };

function typeOf(s: JsonSchema): string {
  if (s.format && FORMATS[s.format]) return FORMATS[s.format]!;
  // A string whose alternatives are formats only (an IPv4 or IPv6 address).
  if (s.type === "string" && s.anyOf?.every((a) => a.type === undefined && a.format))
    return s.anyOf.every((a) => a.format === "ipv4" || a.format === "ipv6")
      ? "IPv4 or IPv6 address"
      : "string";
  if (s.enum) return s.enum.map((v) => `\`${String(v)}\``).join(" \\| ");
  if (s.const !== undefined) return `\`${String(s.const)}\``;
  const alts = s.anyOf ?? s.oneOf;
  if (alts) return [...new Set(alts.map(typeOf))].join(" \\| ");
  if (s.type === "array") return `list of ${s.items ? typeOf(s.items) : "any"}`;
  if (s.type === "object" && s.properties) return "object";
  const t = Array.isArray(s.type) ? s.type.join(" \\| ") : (s.type ?? "any");
  if (t === "integer" && s.minimum !== undefined && s.maximum !== undefined && s.maximum < 1e15)
    return `integer ${s.minimum}..${s.maximum}`;
  return t;
}

/** `shallow`: fields listed without their children (described elsewhere). */
function rows(
  s: JsonSchema,
  path: string,
  out: string[],
  shallow: ReadonlySet<string> = new Set(),
): void {
  const obj = s.properties ? s : s.type === "array" && s.items?.properties ? s.items : undefined;
  if (!obj?.properties) return;
  const base = s.type === "array" ? `${path}[]` : path;
  for (const [name, child] of Object.entries(obj.properties)) {
    const p = base ? `${base}.${name}` : name;
    const required = obj.required?.includes(name) && child.default === undefined;
    const def = child.default === undefined ? "" : `\`${JSON.stringify(child.default)}\``;
    const desc = (child.description ?? "").replace(/\|/g, "\\|");
    out.push(
      `| \`${p}\` | ${typeOf(child)} | ${required ? "yes" : ""} | ${def.length > 60 ? "(see fields)" : def} | ${desc} |`,
    );
    if (!shallow.has(p)) rows(child, p, out);
  }
}

export function configReference(): string {
  const out = [
    "# vipmux config reference",
    "",
    "Generated from the schemas by `vipmux config reference` (do not edit by hand).",
    "Validate a file with `vipmux validate FILE` (a MUX's or a host agent's, told apart by",
    "the top-level keys); the JSON Schemas for editors are `vipmux config schema` and",
    "`vipmux config schema --kind host-agent`. Durations are written like `500ms`, `1s`,",
    "`2m`; secrets as a string, `{ file: PATH }` (relative to the config file) or",
    "`{ env: VARIABLE }`; listening addresses as `ADDRESS:PORT` with an IP address (IPv6 as",
    "`[ADDRESS]:PORT`).",
    "",
    "## MUX (`vipmux run --config FILE`)",
    "",
    ...table(configJsonSchema() as JsonSchema),
    "",
    "## Host agent (`vipmux host-agent --config FILE`)",
    "",
    "The services are the MUX config's service objects (rows `services[]...` above).",
    "",
    ...table(hostAgentJsonSchema() as JsonSchema, new Set(["services"])),
  ];
  return `${out.join("\n")}\n`;
}

function table(schema: JsonSchema, shallow: ReadonlySet<string> = new Set()): string[] {
  const out = ["| field | type | required | default | description |", "|---|---|---|---|---|"];
  rows(schema, "", out, shallow);
  return out;
}
