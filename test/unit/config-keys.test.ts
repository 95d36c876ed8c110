// YAML keys are kebab-case; the code reads camelCase properties. src/config/ validates the
// kebab-case file and maps it once to the typed config (src/config/camel.ts), so it is the
// only place that spells a YAML key. Anywhere else, a string key with a '-' in a bracket
// access (`cfg.host["dsr-mark"]`, `s["min-healthy"]`, or the type `Service["port-range"]`)
// reads the file's spelling past that mapping: this test finds each one, with file:line:col.
//
// What counts: a string literal key containing '-' in an element access, i.e. `[...]`
// right after an expression (a name, `)`, `]`, a non-null `!`, or `?.`). Array literals
// such as `["-6"]` or `cond ? ["a-b"] : []` are not accesses and are not reported;
// comments are not read. Computed keys (`drops[reason]`) are not config spellings.
import { readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { lineCol, root, tsFiles, withoutComments } from "./source.ts";

/**
 * Accesses that are not the config file's spelling, each with its reason. A match is
 * allowed when the text just before the `[` (the receiver) matches `receiver`.
 */
const ALLOWED: { receiver: RegExp; why: string }[] = [
  {
    receiver: /\bheaders$/,
    why: "HTTP header names are kebab-case by protocol (RFC 9110 §5.1), and Node's `headers` object has them lower-cased as they are",
  },
];

/** Keywords after which `[` starts an array literal, not an access. */
const KEYWORDS = new Set([
  "return",
  "typeof",
  "in",
  "of",
  "yield",
  "await",
  "case",
  "void",
  "throw",
  "new",
  "else",
  "do",
  "extends",
]);

/** Kebab-case bracket accesses in `text`, as `line:col "key": the line`. */
function kebabAccesses(text: string): string[] {
  const code = withoutComments(text);
  const found: string[] = [];
  // receiver end, optional blanks on the same line, `[`, a quoted key with '-', `]`
  const access = /((?<![\w$])[\w$]+|[)\]!]|\?\.)[ \t]*\[\s*(["'])([^"'\n]*-[^"'\n]*)\2\s*\]/g;
  for (const m of code.matchAll(access)) {
    const before = m[1]!;
    if (KEYWORDS.has(before)) continue;
    const lineStart = code.lastIndexOf("\n", m.index) + 1;
    const receiver = code.slice(lineStart, m.index + before.length).trimStart();
    if (ALLOWED.some((a) => a.receiver.test(receiver))) continue;
    const at = code.indexOf("[", m.index + before.length);
    const lineEnd = code.indexOf("\n", at);
    const line = text.slice(lineStart, lineEnd === -1 ? undefined : lineEnd).trim();
    found.push(`${lineCol(code, at)} "${m[3]}": ${line}`);
  }
  return found;
}

describe("config keys outside src/config/", () => {
  it("are never read by their kebab-case YAML spelling", () => {
    const found: string[] = [];
    for (const file of tsFiles(join(root, "src"))) {
      const rel = relative(root, file);
      if (rel.startsWith("src/config/")) continue;
      for (const hit of kebabAccesses(readFileSync(file, "utf8"))) found.push(`${rel}:${hit}`);
    }
    expect(found).toEqual([]);
  });
});

describe("the scanner itself", () => {
  it("finds accesses by a kebab-case string key, with their position", () => {
    const text = [
      'const m = cfg.host["dsr-mark"];',
      'if (x?.[\'min-healthy\'] > 1) f(a[0]!["port-range"], g()["next-hop"]);',
      'type P = ServiceConfig["port-range"];',
    ].join("\n");
    expect(kebabAccesses(text)).toEqual([
      '1:19 "dsr-mark": const m = cfg.host["dsr-mark"];',
      `2:8 "min-healthy": ${text.split("\n")[1]}`,
      `2:36 "port-range": ${text.split("\n")[1]}`,
      `2:55 "next-hop": ${text.split("\n")[1]}`,
      '3:23 "port-range": type P = ServiceConfig["port-range"];',
    ]);
  });

  it("leaves array literals, plain keys, comments and HTTP headers alone", () => {
    const text = [
      'const v6 = ipv6 ? ["-6"] : [];',
      'run("ip", [...(v6 ? ["-6"] : []), "route"]);',
      'return ["a-b"];',
      'for (const k of ["x-y"]) use(k);',
      'const n = cfg.node["name"];',
      `const k = drops[reason] + drops[\`\${a}-\${b}\`];`,
      '// old: cfg.host["dsr-mark"]',
      '/* s["min-healthy"] */',
      'const type = req.headers["content-type"];',
    ].join("\n");
    expect(kebabAccesses(text)).toEqual([]);
  });
});
