// BGP peers through the MUX daemon's config and reload, without root: the speaker listens on
// bgp.listen only while a passive peer is configured, so a passive peer that a reload adds
// must open the listener (and be accepted); max-prefixes reaches the speaker.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../../src/config/index.ts";
import { type DataplanePort, MuxDaemon, speakerOptions } from "../../../src/controller/mux.ts";
import { nativeAvailable } from "../../../src/native/index.ts";
import { freePort, RawPeer, until } from "../bgp-speaker/helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "vipmux-bgp-reload-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const listenPort = freePort();
const config = (peers: string) => `node: { name: bgptest, router-id: 192.0.2.2 }
bgp:
  asn: 65101
  listen: "127.0.0.2:${listenPort}"
  peers:
    - { address: 127.0.0.1, asn: 65000, port: 1, connect-retry: 60s }   # nobody there
${peers}
health: { token: "a-cluster-secret-for-tests", listen: "127.0.0.1:0" }
api: { socket: ${join(dir, "admin.sock")} }
`;

/** A dataplane that takes every table and always looks alive. */
const port: DataplanePort = {
  start: async () => {},
  apply: () => {},
  heartbeatAgeMs: () => 0,
  stop: async () => {},
};

const accepts = (host: string, p: number) =>
  new Promise<boolean>((resolve) => {
    const c = net.connect({ host, port: p, localAddress: "127.0.0.9" });
    c.once("connect", () => {
      c.destroy();
      resolve(true);
    });
    c.once("error", () => resolve(false));
  });

describe("BGP peers through the daemon", () => {
  it("a passive peer added by reload gets a listener and is accepted", async () => {
    const file = join(dir, "mux.yml");
    writeFileSync(file, config(""));
    const cfg = loadConfig(file);
    if (!cfg.ok) throw new Error(JSON.stringify(cfg.error));
    const logs: string[] = [];
    const daemon = new MuxDaemon(cfg.value, {
      configFile: file,
      dataplane: () => port,
      log: (_level, m) => logs.push(m),
    });
    cleanups.push(() => daemon.stop());
    await daemon.start();
    // No passive peer yet: nothing listens (the port stays free for a router on the host).
    expect(await accepts("127.0.0.2", listenPort)).toBe(false);

    writeFileSync(
      file,
      config("    - { address: 127.0.0.4, asn: 65000, passive: true, password: s3cret }"),
    );
    expect(await daemon.reload()).toEqual({ ok: true });
    // The password goes again (a reset of that peer): its key leaves the listener, or the
    // kernel would drop the unsigned connection below (with the native addon built).
    writeFileSync(file, config("    - { address: 127.0.0.4, asn: 65000, passive: true }"));
    expect(await daemon.reload()).toEqual({ ok: true });
    const peer = new RawPeer(65000);
    cleanups.push(() => peer.close());
    await peer.dial("127.0.0.2", listenPort, "127.0.0.4");
    const state = () => daemon.speaker.peers().find((p) => p.address === "127.0.0.4")?.state;
    await until(() => state() === "Established", 5000, "the passive peer Established");
    if (nativeAvailable()) expect(logs.filter((m) => m.includes("listener:"))).toEqual([]);

    // The passive peer leaves: the listener closes.
    writeFileSync(file, config(""));
    expect(await daemon.reload()).toEqual({ ok: true });
    expect(await accepts("127.0.0.2", listenPort)).toBe(false);
  });

  it("max-prefixes: 1,000 by default, a number, or limit / warning / restart-after", () => {
    const parse = (peers: string) => {
      const file = join(dir, "limits.yml");
      writeFileSync(file, config(peers));
      const r = loadConfig(file);
      if (!r.ok) throw new Error(JSON.stringify(r.error));
      return speakerOptions(r.value);
    };
    const o = parse(
      `    - { address: 127.0.0.4, asn: 65000, max-prefixes: 5 }
    - { address: 127.0.0.5, asn: 65000, max-prefixes: { limit: 900000, warning: 90, restart-after: 5m } }`,
    );
    expect(o.maxPrefixesTotal).toBe(1_000_000);
    expect(o.peers.map((p) => p.maxPrefixes)).toEqual([
      { limit: 1000, warningPercent: 75, restartAfterMs: 60_000 },
      { limit: 5, warningPercent: 75, restartAfterMs: 60_000 },
      { limit: 900_000, warningPercent: 90, restartAfterMs: 300_000 },
    ]);
  });

  it("refuses a peer limit above bgp.max-prefixes-total and a restart-after below 1s", () => {
    const errors = (text: string) => {
      const file = join(dir, "bad.yml");
      writeFileSync(file, text);
      const r = loadConfig(file);
      return r.ok ? [] : r.error.map((e) => `${e.path}: ${e.message}`);
    };
    expect(
      errors(
        config("    - { address: 127.0.0.4, asn: 65000, max-prefixes: 2000000 }").replace(
          "  asn: 65101",
          "  asn: 65101\n  max-prefixes-total: 1500000",
        ),
      ).join("\n"),
    ).toMatch(/bgp\.peers\.1\.max-prefixes: max-prefixes 2000000 is above bgp.max-prefixes-total/);
    expect(
      errors(
        config(
          "    - { address: 127.0.0.4, asn: 65000, max-prefixes: { limit: 5, restart-after: 10ms } }",
        ),
      ).join("\n"),
    ).toMatch(/restart-after must be at least 1s/);
  });
});
