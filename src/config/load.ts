// Reading a config file: YAML → schema → semantic rules. Every problem comes back with
// file:line:column and the field path, all at once; nothing throws.
import { readFileSync, statSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { type Document, isAlias, LineCounter, parseDocument, visit } from "yaml";
import type { z } from "zod";
import { err, ok, type Result } from "../util/result.ts";
import { type Config, configSchema } from "./schema.ts";
import { checkSemantics, type SemanticIssue } from "./semantic.ts";

export interface ConfigError {
  file: string;
  line?: number;
  col?: number;
  /** Dotted field path, e.g. services.0.backends.1.dip */
  path: string;
  message: string;
}

export function formatConfigError(e: ConfigError): string {
  const where = e.line !== undefined ? `${e.file}:${e.line}:${e.col ?? 1}` : e.file;
  return `${where}: ${e.path || "(root)"}: ${e.message}`;
}

/** Reads a file for a parser below; an unreadable file is one error, not a throw. */
export function readConfigFile<T>(
  file: string,
  parse: (text: string) => Result<T, ConfigError[]>,
): Result<T, ConfigError[]> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    return err([{ file, path: "", message: `cannot read: ${(e as Error).message}` }]);
  }
  return parse(text);
}

export function loadConfig(
  file: string,
  env: NodeJS.ProcessEnv = process.env,
): Result<Config, ConfigError[]> {
  return readConfigFile(file, (text) => parseConfig(text, file, env));
}

export function parseConfig(
  text: string,
  file: string,
  env: NodeJS.ProcessEnv = process.env,
): Result<Config, ConfigError[]> {
  return parseYamlConfig(text, file, configSchema, (cfg) => [
    ...checkSemantics(cfg),
    ...checkSecrets(cfg, env),
  ]);
}

/**
 * The one way a vipmux YAML file becomes a typed value (MUX and host-agent configs):
 * YAML with positions, the zod schema, `{ file }` secrets made relative to the file, then
 * the semantic rules; every problem located at file:line:column, sorted, none thrown.
 */
export function parseYamlConfig<S extends z.ZodType>(
  text: string,
  file: string,
  schema: S,
  check: (value: z.output<S>) => SemanticIssue[],
): Result<z.output<S>, ConfigError[]> {
  try {
    return parseChecked(text, file, schema, check);
  } catch (e) {
    // A rule that throws is a bug in vipmux, but a reload must still change nothing and
    // keep the daemon up: it becomes an error like any other.
    return err([
      { file, path: "", message: `internal error while validating: ${(e as Error).message}` },
    ]);
  }
}

function parseChecked<S extends z.ZodType>(
  text: string,
  file: string,
  schema: S,
  check: (value: z.output<S>) => SemanticIssue[],
): Result<z.output<S>, ConfigError[]> {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return err(
      doc.errors.map((e) => {
        const pos = lines.linePos(e.pos[0]);
        return { file, line: pos.line, col: pos.col, path: "(yaml)", message: e.message };
      }),
    );
  }
  // Alias expansion is bounded (a "billion laughs" file would exhaust memory): past the
  // bound the YAML library throws, which becomes an error at the first alias.
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) ?? {};
  } catch (e) {
    return err([{ file, ...firstAlias(doc, lines), path: "(yaml)", message: yamlMessage(e) }]);
  }
  const parsed = schema.safeParse(data);
  if (!parsed.success) {
    return err(sortErrors(parsed.error.issues.flatMap((i) => fromZod(i, doc, lines, file))));
  }
  absolutizeSecretFiles(parsed.data, dirname(resolve(file)));
  const semantic = check(parsed.data);
  if (semantic.length > 0) {
    return err(
      sortErrors(
        semantic.map((s) => ({
          file,
          ...locate(doc, lines, s.path),
          path: s.path.join("."),
          message: s.message,
        })),
      ),
    );
  }
  return ok(parsed.data);
}

/** Alias expansions allowed in one file (the YAML library's own default). */
const MAX_ALIAS_COUNT = 100;

function yamlMessage(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return /alias/i.test(m)
    ? `too many alias expansions (more than ${MAX_ALIAS_COUNT}): write the values out or use fewer aliases`
    : m;
}

function firstAlias(doc: Document, lines: LineCounter): Pos {
  let pos: Pos = {};
  visit(doc, {
    Alias(_, node) {
      if (isAlias(node) && node.range) {
        const p = lines.linePos(node.range[0]);
        pos = { line: p.line, col: p.col };
        return visit.BREAK;
      }
      return undefined;
    },
  });
  return pos;
}

function fromZod(
  issue: z.core.$ZodIssue,
  doc: Document,
  lines: LineCounter,
  file: string,
): ConfigError[] {
  const path = issue.path.map((p) => (typeof p === "symbol" ? String(p) : p));
  if (issue.code === "unrecognized_keys") {
    // Point at each unknown key itself, not at its parent object.
    return issue.keys.map((k) => ({
      file,
      ...locateKey(doc, lines, path, k),
      path: [...path, k].join("."),
      message: `unknown field "${k}"`,
    }));
  }
  return [{ file, ...locate(doc, lines, path), path: path.join("."), message: describe(issue) }];
}

function describe(issue: z.core.$ZodIssue): string {
  if (issue.code === "invalid_type" && /received undefined/.test(issue.message))
    return `missing required field (expected ${issue.expected})`;
  if (issue.code === "invalid_value")
    return `must be one of: ${issue.values.map(String).join(", ")}`;
  if (issue.code === "invalid_union") {
    // Durations and secrets are unions: the most helpful message is the first branch's.
    const first = issue.errors[0]?.[0];
    return first ? describe(first) : issue.message;
  }
  return issue.message.replace(/^Invalid input: /, "");
}

type Pos = { line?: number; col?: number };

function locate(doc: Document, lines: LineCounter, path: (string | number)[]): Pos {
  for (let n = path.length; n >= 0; n--) {
    const node = doc.getIn(path.slice(0, n), true) as
      | { range?: [number, number, number] }
      | undefined;
    if (node?.range) {
      const pos = lines.linePos(node.range[0]);
      return { line: pos.line, col: pos.col };
    }
  }
  return {};
}

function locateKey(
  doc: Document,
  lines: LineCounter,
  parent: (string | number)[],
  key: string,
): Pos {
  const map = (parent.length === 0 ? doc.contents : doc.getIn(parent, true)) as
    | { items?: { key?: { value?: unknown; range?: [number, number, number] } }[] }
    | undefined;
  const item = map?.items?.find((i) => i.key?.value === key);
  if (item?.key?.range) {
    const pos = lines.linePos(item.key.range[0]);
    return { line: pos.line, col: pos.col };
  }
  return locate(doc, lines, parent);
}

function sortErrors(errors: ConfigError[]): ConfigError[] {
  return errors.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.col ?? 0) - (b.col ?? 0));
}

/**
 * Resolves a secret ({ file } / { env } / inline); errors name the field, never the value.
 * A file must be what ssh asks of a private key: a regular file owned by root or by this
 * user, with no access for others and no group write (group read for the service's own
 * group is fine), and not empty.
 */
export function resolveSecret(
  s: string | { file: string } | { env: string },
  env: NodeJS.ProcessEnv = process.env,
): Result<string, string> {
  if (typeof s === "string") return s.trim() === "" ? err("is empty") : ok(s);
  if ("file" in s) {
    let text: string;
    try {
      const st = statSync(s.file);
      const uid = process.geteuid?.() ?? 0;
      if (!st.isFile()) return err(`secret file ${s.file} is not a regular file`);
      if (st.uid !== uid && st.uid !== 0)
        return err(`secret file ${s.file} is owned by uid ${st.uid}, not by root or uid ${uid}`);
      if ((st.mode & 0o027) !== 0)
        return err(
          `secret file ${s.file} has mode ${(st.mode & 0o777).toString(8).padStart(4, "0")}: others must have no access and the group no write (chmod 600 ${s.file})`,
        );
      text = readFileSync(s.file, "utf8").trim();
    } catch (e) {
      return err(
        `cannot read secret file ${s.file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      );
    }
    return text === "" ? err(`secret file ${s.file} is empty`) : ok(text);
  }
  const v = env[s.env];
  return v === undefined || v.trim() === ""
    ? err(`environment variable ${s.env} is not set`)
    : ok(v);
}

/** Shortest health secret accepted: 16 characters (about 96 bits when random base64). */
export const MIN_HEALTH_SECRET_LENGTH = 16;

/** A health secret: resolvable and long enough to be a key, not a password. */
export function checkHealthSecret(
  s: string | { file: string } | { env: string },
  env: NodeJS.ProcessEnv,
): string | undefined {
  const r = resolveSecret(s, env);
  if (!r.ok) return r.error;
  if (r.value.length < MIN_HEALTH_SECRET_LENGTH)
    return `must be at least ${MIN_HEALTH_SECRET_LENGTH} characters (e.g. head -c 32 /dev/urandom | base64)`;
  return undefined;
}

/** Secrets must be readable where the config is validated, or the daemon could not start. */
function checkSecrets(cfg: Config, env: NodeJS.ProcessEnv): SemanticIssue[] {
  const issues: SemanticIssue[] = [];
  cfg.bgp.peers.forEach((p, i) => {
    if (!p.password) return;
    const r = resolveSecret(p.password, env);
    if (!r.ok) issues.push({ path: ["bgp", "peers", i, "password"], message: r.error });
  });
  if (cfg.health.listen !== "off" && cfg.health.token === undefined)
    issues.push({
      path: ["health", "token"],
      message:
        "required while health.listen is on: host agents authenticate with keys derived from it; add `token: { file: health-token }` (a file of at least 16 random characters, mode 0600), or set listen: off",
    });
  for (const key of ["token", "nextToken"] as const) {
    const s = cfg.health[key];
    if (s === undefined) continue;
    const problem = checkHealthSecret(s, env);
    if (problem)
      issues.push({ path: ["health", key === "token" ? "token" : "next-token"], message: problem });
  }
  return issues;
}

/**
 * `{ file: name }` secrets are relative to the config file, as operators expect. Secrets
 * sit under `password`, `token`, `next-token` and `key` keys, wherever the schema puts them.
 */
function absolutizeSecretFiles(value: unknown, baseDir: string): void {
  if (typeof value !== "object" || value === null) return;
  for (const [key, v] of Object.entries(value)) {
    if (
      (key === "password" || key === "token" || key === "nextToken" || key === "key") &&
      typeof v === "object" &&
      v !== null &&
      "file" in v &&
      typeof v.file === "string" &&
      !isAbsolute(v.file)
    )
      (value as Record<string, unknown>)[key] = { ...v, file: resolve(baseDir, v.file) };
    else absolutizeSecretFiles(v, baseDir);
  }
}
