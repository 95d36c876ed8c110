// "The forwarder allocates nothing per packet", measured as bytes, not as garbage
// collections or time: alloc-child.ts counts the heap bytes each round of 100,000 packets
// allocates (collected garbage included), in a process of its own started with
// --expose-gc. A forwarder that allocates even one small object per packet of one kind
// allocates hundreds of kilobytes a round; a clean one, after the optimising compiler has
// caught up, only the few hundred bytes of the measurement itself. Machine load changes
// how many rounds that takes, not the figures.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";

it("forwards millions of packets (TCP, UDP, IPv6, ICMP, ICMP errors, drops) without allocating", () => {
  const child = fileURLToPath(new URL("./alloc-child.ts", import.meta.url));
  const r = spawnSync(process.execPath, ["--expose-gc", child], { encoding: "utf8" });
  expect(r.status, r.stderr).toBe(0);
  const { rounds, cleanRoundBytes, cleanStreak, packets, forwarded, retainedGrowth } = JSON.parse(
    r.stdout,
  ) as {
    rounds: number[];
    cleanRoundBytes: number;
    cleanStreak: number;
    packets: number;
    forwarded: number;
    retainedGrowth: number;
  };
  expect(packets).toBeGreaterThanOrEqual(2_000_000);
  expect(forwarded).toBeGreaterThan(packets * 0.8);
  // The last rounds, once optimised, allocated (almost) nothing: under 0.7 byte a packet.
  const last = rounds.slice(-cleanStreak);
  for (const bytes of last)
    expect(bytes, `bytes per round: ${rounds}`).toBeLessThanOrEqual(cleanRoundBytes);
  // Nothing stays behind either (the connection table is preallocated).
  expect(retainedGrowth).toBeLessThan(1 << 20);
});
