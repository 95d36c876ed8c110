// Validation against containerlab's published JSON Schema (shipped in schemas/), with
// ajv's raw errors turned into one readable line each, located in the YAML source.
import { readFileSync } from "node:fs";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import type { Document, LineCounter } from "yaml";

const SCHEMA_URL = new URL("../../schemas/clab.schema.json", import.meta.url);

let validator: ValidateFunction | undefined;

function getValidator(): ValidateFunction {
  if (!validator) {
    const schema = JSON.parse(readFileSync(SCHEMA_URL, "utf8")) as object;
    // strict: false because the published schema mixes draft-07 with newer keywords
    // (prefixItems); allErrors so the user sees every problem at once.
    const ajv = new Ajv({ strict: false, allErrors: true });
    validator = ajv.compile(schema);
  }
  return validator;
}

export interface SchemaIssue {
  path: string;
  line?: number;
  col?: number;
  message: string;
}

/** Returns the schema violations of a parsed topology document (empty when valid). */
export function validateTopologySchema(
  value: unknown,
  doc: Document,
  lines: LineCounter,
): SchemaIssue[] {
  const validate = getValidator();
  if (validate(value)) return [];
  return summarize(validate.errors ?? []).map((e) => {
    const segments = e.instancePath.split("/").slice(1).map(unescapePointer);
    const where = locate(doc, lines, segments);
    return { path: segments.join(".") || "(root)", ...where, message: describe(e) };
  });
}

function unescapePointer(s: string): string {
  return s.replace(/~1/g, "/").replace(/~0/g, "~");
}

// oneOf/anyOf wrappers and the "or null" alternative of nullable nodes repeat what the
// specific errors already say; keep the specific ones.
function summarize(errors: ErrorObject[]): ErrorObject[] {
  const specific = errors.filter((e) => e.keyword !== "oneOf" && e.keyword !== "anyOf");
  const pathsWithOther = new Set(
    specific.filter((e) => !isNullAlternative(e)).map((e) => e.instancePath),
  );
  const kept = specific.filter(
    (e) => !(isNullAlternative(e) && pathsWithOther.has(e.instancePath)),
  );
  const seen = new Set<string>();
  return (kept.length > 0 ? kept : errors).filter((e) => {
    const key = `${e.instancePath}|${describe(e)}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function isNullAlternative(e: ErrorObject): boolean {
  return e.keyword === "type" && (e.params as { type?: string }).type === "null";
}

function describe(e: ErrorObject): string {
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case "additionalProperties":
      return `unknown field "${String(p.additionalProperty)}"`;
    case "required":
      return `missing required field "${String(p.missingProperty)}"`;
    case "enum":
      return `must be one of: ${(p.allowedValues as unknown[]).join(", ")}`;
    case "pattern":
      return `does not match the pattern ${String(p.pattern)}`;
    default:
      return e.message ?? e.keyword;
  }
}

function locate(
  doc: Document,
  lines: LineCounter,
  segments: string[],
): { line?: number; col?: number } {
  for (let n = segments.length; n >= 0; n--) {
    const keyPath = segments.slice(0, n).map((s) => (/^\d+$/.test(s) ? Number(s) : s));
    const node = doc.getIn(keyPath, true) as { range?: [number, number, number] } | undefined;
    if (node?.range) {
      const pos = lines.linePos(node.range[0]);
      return { line: pos.line, col: pos.col };
    }
  }
  return {};
}
