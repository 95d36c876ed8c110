// Reading the repository's own TypeScript for the tests that check its shape
// (imports.test.ts, config-keys.test.ts).
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root, with a trailing slash. */
export const root = fileURLToPath(new URL("../../", import.meta.url));

/** Every .ts file under `dir` (declaration files excepted), in a stable order. */
export function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...tsFiles(p));
    else if (name.endsWith(".ts") && !name.endsWith(".d.ts")) out.push(p);
  }
  return out;
}

/**
 * Source text with comments blanked: `//` to the end of the line and `/* ... *\/` blocks
 * become spaces, so offsets, lines and columns stay those of the file. Only comments that
 * start a line or follow whitespace are removed: `//` in a string such as "http://..."
 * follows `:`, and `/*` in a glob such as "src/**\/*.ts" follows `*`.
 */
export function withoutComments(text: string): string {
  const blank = (s: string) => s.replace(/[^\n]/g, " ");
  return text
    .replace(/(^|\s)(\/\*[\s\S]*?\*\/)/g, (_, pre: string, c: string) => pre + blank(c))
    .replace(/(^|\s)(\/\/.*)$/gm, (_, pre: string, c: string) => pre + blank(c));
}

/** 1-based line and column of `offset` in `text`. */
export function lineCol(text: string, offset: number): string {
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  return `${line}:${offset - before.lastIndexOf("\n")}`;
}
