// A running MUX re-reads its health secrets at reload: a token rotated in its file takes
// effect, next-token opens a window where both are accepted, and a host whose key is no
// longer accepted is dropped at once and cannot come back.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MuxDaemon } from "../../../src/controller/mux.ts";
import { hostKey } from "../../../src/health/keys.ts";
import { HealthStreamClient } from "../../../src/health/stream.ts";
import { pollUntil } from "../../../src/lab/testing.ts";
import { startFakeDaemon } from "./fake-dataplane.ts";

const OLD = "the-old-cluster-secret-0001";
const NEW = "the-new-cluster-secret-0002";
const HOST = "127.0.0.2";

describe("health secrets at reload", () => {
  const dir = mkdtempSync(join(tmpdir(), "vipmux-secrets-"));
  const file = join(dir, "mux.yml");
  const secret = (name: string, value: string) => {
    writeFileSync(join(dir, name), `${value}\n`, { mode: 0o600 });
    chmodSync(join(dir, name), 0o600);
  };
  const config = (next: boolean) =>
    writeFileSync(
      file,
      `node: { name: sec, router-id: 192.0.2.2 }
bgp: { asn: 65101, peers: [ { address: 127.0.0.1, asn: 65000, port: 1, connect-retry: 60s } ] }
health: { token: { file: health-token }, ${next ? "next-token: { file: health-token.next }, " : ""}listen: "127.0.0.1:0" }
api: { socket: ${join(dir, "admin.sock")} }
services:
  - { name: web, vip: 20.20.20.100, vni: 100, ports: [ { protocol: tcp, port: 80 } ],
      backends: [ { dip: 10.10.1.11, host: ${HOST} } ] }
`,
    );
  let daemon: MuxDaemon;
  const clients: HealthStreamClient[] = [];
  const agent = (key: string) => {
    const c = new HealthStreamClient({
      key,
      host: HOST,
      mux: { address: "127.0.0.1", port: daemon.healthListenAddress()!.port },
      heartbeatMs: 100,
      snapshot: () => [["web/10.10.1.11", true]],
    });
    clients.push(c);
    c.start();
    return c;
  };

  beforeAll(async () => {
    secret("health-token", OLD);
    config(false);
    daemon = await startFakeDaemon(file);
  });
  afterAll(async () => {
    for (const c of clients) c.stop();
    await daemon?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("rotates through next-token without refusing anyone, then revokes the old key", async () => {
    const old = agent(hostKey(OLD, HOST));
    await pollUntil(async () => old.connected, { timeoutMs: 3000, what: "old key accepted" });
    // Step 1: the next secret is added; both keys work.
    secret("health-token.next", NEW);
    config(true);
    expect(await daemon.reload()).toEqual({ ok: true });
    const fresh = agent(hostKey(NEW, HOST));
    await pollUntil(async () => fresh.connected, { timeoutMs: 3000, what: "new key accepted" });
    expect(old.connected).toBe(true);
    // Step 3: the new secret replaces the old one in the same file: the old key is cut.
    secret("health-token", NEW);
    config(false);
    expect(await daemon.reload()).toEqual({ ok: true });
    await pollUntil(async () => !old.connected, { timeoutMs: 3000, what: "old key dropped" });
    await new Promise((r) => setTimeout(r, 800)); // the old agent retries meanwhile
    expect(old.connected).toBe(false);
    expect(fresh.connected).toBe(true);
    expect(daemon.status().hostAgents.connected).toEqual([HOST]);
  });
});
