// A second MUX daemon with the same admin socket stops at its start, before it opens a
// BGP session that would collide with the running one's.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../../src/config/index.ts";
import { MuxDaemon } from "../../../src/controller/mux.ts";
import { pollUntil } from "../../../src/lab/testing.ts";
import { fakeDataplane } from "./fake-dataplane.ts";

describe("one MUX daemon per admin socket", () => {
  const dir = mkdtempSync(join(tmpdir(), "vipmux-single-"));
  const daemons: MuxDaemon[] = [];
  let router: net.Server | undefined;
  afterAll(async () => {
    for (const d of daemons) await d.stop();
    router?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("the second one is refused before it connects to any peer", async () => {
    // A "router" on loopback that counts the BGP connections it gets.
    let connections = 0;
    router = net.createServer((s) => {
      connections++;
      s.on("error", () => {});
    });
    await new Promise<void>((r) => router!.listen(0, "127.0.0.1", r));
    const port = (router.address() as net.AddressInfo).port;
    const file = join(dir, "mux.yml");
    writeFileSync(
      file,
      `node: { name: one, router-id: 192.0.2.2 }
bgp: { asn: 65101, peers: [ { address: 127.0.0.1, asn: 65000, port: ${port}, connect-retry: 60s } ] }
health: { listen: "off" }
api: { socket: ${join(dir, "admin.sock")} }
`,
    );
    const cfg = loadConfig(file);
    if (!cfg.ok) throw new Error(JSON.stringify(cfg.error));
    const start = async () => {
      const d = new MuxDaemon(cfg.value, {
        configFile: file,
        dataplane: fakeDataplane,
        log: () => {},
      });
      daemons.push(d);
      await d.start();
    };
    await start();
    await pollUntil(async () => connections === 1, {
      timeoutMs: 5000,
      what: "the first daemon's session",
    });
    await expect(start()).rejects.toThrow(/admin socket/);
    await new Promise((r) => setTimeout(r, 500));
    expect(connections).toBe(1);
  });
});
