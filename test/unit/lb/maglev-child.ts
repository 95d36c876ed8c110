// Run as a separate `node` process by maglev.test.ts: builds the table for the config given
// on argv and prints SHA-256 digests, so the test can compare what two processes computed:
// line 1, the table's raw bytes; line 2, the slot -> backend-name map of a table built from
// the same backends given in reverse order (the input order must not matter).
import { createHash } from "node:crypto";
import { buildMaglevTable } from "../../../src/lb/maglev.ts";

const [size, count] = process.argv.slice(2).map(Number) as [number, number];
const backends = Array.from({ length: count }, (_, i) => ({
  name: `10.1.${i >> 8}.${i & 255}`,
  weight: 1 + (i % 3),
}));
const table = buildMaglevTable(backends, size);
const reversed = [...backends].reverse();
const names = Array.from(buildMaglevTable(reversed, size), (i) => reversed[i]!.name);
process.stdout.write(
  `${createHash("sha256").update(table).digest("hex")}\n${createHash("sha256").update(names.join("\n")).digest("hex")}\n`,
);
