// `npm run bench`: runs every benchmark script that exists, in order, each in its own
// process so one's heap does not skew the next. Each prints its own figures and ratios.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const order = ["codec.ts", "lb.ts", "bgp.ts", "bfd.ts", "dataplane.ts", "health.ts"];
let failed = 0;
for (const name of order) {
  const file = fileURLToPath(new URL(name, import.meta.url));
  if (!existsSync(file)) continue;
  console.log(`\n=== bench/${name}`);
  const r = spawnSync(process.execPath, [file, ...process.argv.slice(2)], { stdio: "inherit" });
  if (r.status !== 0) failed++;
}
process.exit(failed === 0 ? 0 : 1);
