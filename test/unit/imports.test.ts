// No import circle under src/: every module can be read (and loaded) after the modules it
// imports. A circle makes load order matter (an ES module in a cycle can see another's
// bindings before they are initialised), and it hides a dependency that runs both ways,
// which usually means one concept is split across two modules that should be one, or a
// shared piece belongs in a third module that both import.
//
// What counts as an edge, read from the text of each file:
// - `import ... from "./x.ts"`, `export ... from "./x.ts"`, `import "./x.ts"`, and
//   `import("./x.ts")` with a literal relative specifier;
// - type-only imports (`import type`, `export type ... from`, `{ type X }`) too. They are
//   erased at runtime, so a type-only circle cannot break loading, but it is still a
//   two-way dependency between the modules, and it turns into a runtime circle as soon as
//   someone imports a value along the same edge. The fix is the same either way: move the
//   shared type to the module that owns the concept, or to a third one.
// Not edges: a worker's entry point (`new Worker(new URL("./worker.ts", ...))` starts a
// separate module graph in another thread) and a computed specifier such as
// src/bgp/transport.ts's optional `import(spec)` of the native addon; neither can take
// part in a load-order circle of this graph. Package imports (`node:*`, npm packages) are
// leaves.
//
// Every specifier found must name an existing file, so a misread statement fails here
// instead of silently dropping an edge.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { root, tsFiles, withoutComments } from "./source.ts";

const srcDir = join(root, "src");

/** Relative specifiers a file imports or re-exports, static and literal dynamic ones. */
function importSpecifiers(text: string): string[] {
  const code = withoutComments(text);
  const specs: string[] = [];
  // Static statements start a line (top level). Between the keyword and `from` an import
  // or export clause holds names, braces, commas, `*`, `as` and `type`, never `;`, `=` or
  // `(`, so the match cannot run into a following declaration.
  const statement = /^(?:import|export)\b[^;=()"'`]*?\bfrom\s*["']([^"']+)["']/gm;
  const bare = /^import\s*["']([^"']+)["']/gm;
  const dynamic = /\bimport\(\s*["']([^"']+)["']\s*\)/g;
  for (const re of [statement, bare, dynamic])
    for (const m of code.matchAll(re)) if (m[1]!.startsWith(".")) specs.push(m[1]!);
  return specs;
}

/** The import graph of src/: file (relative to the repository) → files it imports. */
function importGraph(): { graph: Map<string, string[]>; unresolved: string[] } {
  const graph = new Map<string, string[]>();
  const unresolved: string[] = [];
  for (const file of tsFiles(srcDir)) {
    const from = relative(root, file);
    const to = new Set<string>();
    for (const spec of importSpecifiers(readFileSync(file, "utf8"))) {
      const target = resolve(dirname(file), spec);
      if (!existsSync(target)) unresolved.push(`${from}: "${spec}"`);
      else to.add(relative(root, target));
    }
    graph.set(from, [...to].sort());
  }
  return { graph, unresolved };
}

/**
 * Every circle, one per strongly connected component (Tarjan): the shortest cycle through
 * the component's first file, written `a.ts → b.ts → a.ts`. Fixing that cycle may leave a
 * smaller one in the same component, which the next run names.
 */
function importCircles(graph: Map<string, string[]>): string[] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const components: string[][] = [];
  let next = 0;
  const connect = (v: string): void => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        connect(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || (graph.get(v) ?? []).includes(v)) components.push(component);
    }
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) connect(v);

  return components.map((component) => {
    const members = new Set(component);
    const start = [...component].sort()[0]!;
    // Breadth-first inside the component from `start` back to `start`.
    const parent = new Map<string, string>();
    const queue = [start];
    let last: string | undefined;
    while (queue.length > 0 && last === undefined) {
      const v = queue.shift()!;
      for (const w of graph.get(v) ?? []) {
        if (!members.has(w)) continue;
        if (w === start) {
          last = v;
          break;
        }
        if (!parent.has(w)) {
          parent.set(w, v);
          queue.push(w);
        }
      }
    }
    const path = [start];
    for (let v = last; v !== undefined && v !== start; v = parent.get(v)) path.splice(1, 0, v);
    path.push(start);
    return path.join(" → ");
  });
}

describe("import graph of src/", () => {
  const { graph, unresolved } = importGraph();

  it("reads every relative import as an existing file", () => {
    expect(graph.size).toBeGreaterThan(50);
    expect(unresolved).toEqual([]);
  });

  it("has no import circle (type-only imports included)", () => {
    expect(importCircles(graph)).toEqual([]);
  });
});

describe("the scanner itself", () => {
  it("finds static, re-export, side-effect, type-only and dynamic imports", () => {
    const text = [
      'import { a, type B } from "./a.ts";',
      "import type { C } from '../c.ts';",
      "import {",
      "  d,",
      "  e as f,",
      '} from "./d.ts";',
      'export { g } from "./g.ts";',
      'export * from "./h.ts";',
      'export type { I } from "./i.ts";',
      'import "./side.ts";',
      'import { z } from "zod";',
      'const m = await import("./lazy.ts");',
      '// import { x } from "./commented.ts";',
      '/* export * from "./block.ts"; */',
      'const url = "http://example.test/"; // import("./trailing.ts")',
      "export const from = 1;",
    ].join("\n");
    expect(importSpecifiers(text).sort()).toEqual(
      [
        "./a.ts",
        "../c.ts",
        "./d.ts",
        "./g.ts",
        "./h.ts",
        "./i.ts",
        "./side.ts",
        "./lazy.ts",
      ].sort(),
    );
  });

  it("names a circle from its first file", () => {
    const graph = new Map([
      ["src/b.ts", ["src/c.ts"]],
      ["src/c.ts", ["src/a.ts", "src/d.ts"]],
      ["src/a.ts", ["src/b.ts"]],
      ["src/d.ts", []],
      ["src/e.ts", ["src/e.ts"]],
    ]);
    expect(importCircles(graph).sort()).toEqual([
      "src/a.ts → src/b.ts → src/c.ts → src/a.ts",
      "src/e.ts → src/e.ts",
    ]);
  });
});
