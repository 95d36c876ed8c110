// Random mutations of YAML text for the "never throws" property tests (validate, reload).
import fc from "fast-check";

/** A mutation of YAML text: characters, lines, values, indentation. */
export const mutation = fc.oneof(
  fc.record({
    kind: fc.constant("char" as const),
    at: fc.nat(),
    ch: fc.constantFrom(..."{}[]:,&*!|>-'\"#% \t\n0123456789abc:/.@"),
  }),
  fc.record({
    kind: fc.constant("drop" as const),
    at: fc.nat(),
    len: fc.integer({ min: 1, max: 40 }),
  }),
  fc.record({ kind: fc.constant("dupline" as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant("value" as const),
    at: fc.nat(),
    v: fc.constantFrom(
      "-1",
      "0",
      "1e309",
      "99999999999999999999",
      '""',
      "null",
      "~",
      "[]",
      "{}",
      "*x",
      "&x 1",
      "!!binary aGk=",
      "2001:db8::1%eth0",
      "/a b",
      "\u0000",
      "ÿ".repeat(3),
      "x".repeat(5000),
    ),
  }),
);

export type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

export function mutate(text: string, muts: Mutation[]): string {
  let s = text;
  for (const m of muts) {
    const at = s.length === 0 ? 0 : m.at % s.length;
    if (m.kind === "char") s = s.slice(0, at) + m.ch + s.slice(at);
    else if (m.kind === "drop") s = s.slice(0, at) + s.slice(at + m.len);
    else if (m.kind === "dupline") {
      const lines = s.split("\n");
      const i = m.at % lines.length;
      lines.splice(i, 0, lines[i]!);
      s = lines.join("\n");
    } else {
      // Replace the value after the colon at or after `at`.
      const c = s.indexOf(": ", at);
      if (c < 0) continue;
      const end = s.slice(c + 2).search(/[,}\n]/);
      s = s.slice(0, c + 2) + m.v + (end < 0 ? "" : s.slice(c + 2 + end));
    }
  }
  return s;
}
