import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";

it("forwards millions of packets (TCP, UDP, IPv6, ICMP, ICMP errors, drops) without garbage collection", () => {
  const child = fileURLToPath(new URL("./alloc-child.ts", import.meta.url));
  const r = spawnSync(process.execPath, [child], { encoding: "utf8", timeout: 60_000 });
  expect(r.status, r.stderr).toBe(0);
  const { gcs, packets, forwarded } = JSON.parse(r.stdout) as {
    gcs: number;
    packets: number;
    forwarded: number;
  };
  expect(forwarded).toBeGreaterThan(packets * 0.8);
  // An allocating path would scavenge dozens of times over 3M packets; allow one stray GC
  // from the runtime itself (timers, the observer).
  expect(gcs).toBeLessThanOrEqual(1);
});
