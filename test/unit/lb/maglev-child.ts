// Run as a separate `node` process by maglev.test.ts: builds the table for the config given
// on argv and prints the SHA-256 of its bytes, so the test can compare two processes.
import { createHash } from "node:crypto";
import { buildMaglevTable } from "../../../src/lb/maglev.ts";

const [size, count] = process.argv.slice(2).map(Number) as [number, number];
const backends = Array.from({ length: count }, (_, i) => ({
  name: `10.1.${i >> 8}.${i & 255}`,
  weight: 1 + (i % 3),
}));
// Shuffled differently from the parent process: the table must not depend on input order.
backends.reverse();
const table = buildMaglevTable(backends, size);
// Indexes refer to the caller's order; map them to names to compare across orders.
const names = Array.from(table, (i) => backends[i]!.name);
process.stdout.write(createHash("sha256").update(names.join("\n")).digest("hex"));
