// A running MUX daemon takes random mutations of its config through reload: every one is
// applied or refused with errors, the daemon never throws, never exits, and an invalid
// file leaves the running config (and its announcements) as they were.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { isIP } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../../src/config/index.ts";
import type { MuxDaemon } from "../../../src/controller/mux.ts";
import { mutate, mutation } from "../config/mutate.ts";
import { startFakeDaemon } from "./fake-dataplane.ts";

// Everything the daemon could send to lives on loopback: peers, BFD, MUX-side probes.
const SEED = `node: { name: fuzz, router-id: 192.0.2.2 }
bgp:
  asn: 65101
  listen: "127.0.0.1:0"   # a mutation may make the peer passive: never bind port 179 here
  peers:
    - { address: 127.0.0.1, asn: 65000, port: 1, connect-retry: 60s }   # nobody there
health: { token: "a-cluster-secret-for-the-fuzz", listen: "127.0.0.1:0" }
api: { socket: SOCKET }
services:
  - name: web
    vip: 20.20.20.100
    ports: [ { protocol: tcp, port: 80, backend-port: 8080 } ]
    vni: 100
    health: { type: none }
    backends:
      - { dip: 10.10.1.11, host: 198.51.100.2 }
      - { dip: 10.10.2.21, host: 198.51.100.6, weight: 2 }
  - name: dns
    vip: 20.20.20.53
    ports: [ { protocol: udp, port-range: 53-54 } ]
    vni: 200
    health: { type: tcp, port: 53 }
    backends: [ { dip: 10.10.2.22, host: 198.51.100.6 } ]
`;

const loopback = (a: string) =>
  (isIP(a) === 4 && a.startsWith("127.")) || a === "::1" || a === "0:0:0:0:0:0:0:1";

/** Only configs that can make the daemon send nowhere but loopback are reloaded. */
function safeToApply(text: string): boolean {
  const r = parseConfig(text, "probe.yml", {});
  if (!r.ok) return true; // refused by reload before anything is used
  const c = r.value;
  if (!c.bgp.peers.every((p) => loopback(p.address))) return false;
  return c.services.every(
    (s) => s.health.from !== "mux" || s.backends.every((b) => loopback(b.dip)),
  );
}

/** What a refused reload must leave unchanged: services, backends and announcements. */
function snapshot(d: MuxDaemon): string {
  const { services, backends, announced } = d.status();
  return JSON.stringify({ services, backends, announced });
}

describe("reload under random config mutations", () => {
  const dir = mkdtempSync(join(tmpdir(), "vipmux-reload-fuzz-"));
  const file = join(dir, "mux.yml");
  const seed = SEED.replace("SOCKET", join(dir, "admin.sock"));
  let daemon: MuxDaemon;
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => unhandled.push(e);

  beforeAll(async () => {
    process.on("unhandledRejection", onUnhandled);
    process.on("uncaughtException", onUnhandled);
    writeFileSync(file, seed);
    daemon = await startFakeDaemon(file);
  });
  afterAll(async () => {
    await daemon?.stop();
    process.off("unhandledRejection", onUnhandled);
    process.off("uncaughtException", onUnhandled);
    rmSync(dir, { recursive: true, force: true });
  });

  it("applies or refuses every mutation; an invalid file changes nothing", async () => {
    let applied = 0;
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 5 }), async (muts) => {
        const text = mutate(seed, muts);
        fc.pre(safeToApply(text));
        const before = snapshot(daemon);
        writeFileSync(file, text);
        const r = await daemon.reload();
        if (r.ok) applied++;
        else {
          refused++;
          expect(r.errors.length).toBeGreaterThan(0);
          expect(snapshot(daemon)).toBe(before);
        }
        // Back to the seed: the next mutation starts from a known, valid state.
        writeFileSync(file, seed);
        expect(await daemon.reload()).toEqual({ ok: true });
      }),
      { numRuns: 250, seed: 20261203 },
    );
    expect(unhandled).toEqual([]);
    expect(refused).toBeGreaterThan(50);
    expect(applied).toBeGreaterThan(0);
  });

  it("inputs that once passed validate and then crashed the daemon are refused, and it stays up", async () => {
    const v6 = seed
      .replace("peers:", "next-hop-v6: 2001:db8::2\n  peers:")
      .replace("vip: 20.20.20.100", "vip: 2001:db8:f::100%eth0")
      .replace("10.10.1.11", "2001:db8:1::11")
      .replace("10.10.2.21", "2001:db8:2::21");
    const spacePath = seed
      .replace(
        "health: { type: tcp, port: 53 }",
        'health: { type: http, from: mux, port: 53, path: "/health check" }',
      )
      .replace("10.10.2.22", "127.0.0.1");
    const bomb = `${seed}x: &a [1, 2, 3]\ny: [${Array(150).fill("*a").join(", ")}]\n`;
    for (const [what, text] of [
      ["IPv6 zone", v6],
      ["space in a probe path", spacePath],
      ["alias bomb", bomb],
    ] as const) {
      const before = snapshot(daemon);
      writeFileSync(file, text);
      const r = await daemon.reload();
      expect(r.ok, what).toBe(false);
      expect(snapshot(daemon), what).toBe(before);
    }
    writeFileSync(file, seed);
    expect(await daemon.reload()).toEqual({ ok: true });
    // Let any stray promise of those reloads settle before judging.
    await new Promise((r) => setTimeout(r, 300));
    expect(unhandled).toEqual([]);
  });
});
