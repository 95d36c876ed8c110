// The config reference (docs/config.md), generated from the schema so it cannot drift:
// one row per field with its type, default and description.
import { configJsonSchema } from "./schema.ts";

interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  enum?: unknown[];
  const?: unknown;
  default?: unknown;
  description?: string;
  pattern?: string;
  minimum?: number;
  maximum?: number;
}

function typeOf(s: JsonSchema): string {
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

function rows(s: JsonSchema, path: string, out: string[]): void {
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
    rows(child, p, out);
  }
}

export function configReference(): string {
  const out = [
    "# vipmux config reference",
    "",
    "Generated from the schema by `vipmux config reference` (do not edit by hand).",
    "Validate a file with `vipmux validate FILE`; the JSON Schema for editors is",
    "`vipmux config schema`. Durations are written like `500ms`, `1s`, `2m`; secrets as a",
    "string, `{ file: PATH }` (relative to the config file) or `{ env: VARIABLE }`.",
    "",
    "| field | type | required | default | description |",
    "|---|---|---|---|---|",
  ];
  rows(configJsonSchema() as JsonSchema, "", out);
  return `${out.join("\n")}\n`;
}
