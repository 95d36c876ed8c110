// The lab backend on loopback: HTTP with name and client, /healthz, UDP and TCP echo.
import dgram from "node:dgram";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningBackend, startBackend } from "../../../src/lab/backend.ts";

let backend: RunningBackend;
const ports = { http: 0, udp: 0, tcp: 0 };

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const p = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

beforeAll(async () => {
  ports.http = await freePort();
  ports.udp = await freePort();
  ports.tcp = await freePort();
  backend = await startBackend({
    name: "vm99",
    http: ports.http,
    udpEcho: ports.udp,
    tcpEcho: ports.tcp,
    log: () => {},
  });
});
afterAll(() => backend.close());

describe("lab backend", () => {
  it("answers HTTP with its name and the client address, and /healthz", async () => {
    const body = await (await fetch(`http://127.0.0.1:${ports.http}/`)).text();
    expect(body).toMatch(
      new RegExp(`^vm99 127\\.0\\.0\\.1:${ports.http} client 127\\.0\\.0\\.1:\\d+\\n$`),
    );
    expect(await (await fetch(`http://[::1]:${ports.http}/healthz`)).text()).toBe("ok\n");
  });

  it("echoes UDP over IPv4 and IPv6", async () => {
    for (const [type, addr] of [
      ["udp4", "127.0.0.1"],
      ["udp6", "::1"],
    ] as const) {
      const s = dgram.createSocket(type);
      const reply = new Promise<string>((r) => s.once("message", (m) => r(m.toString())));
      s.send(`ping-${type}`, ports.udp, addr);
      expect(await reply).toBe(`ping-${type}`);
      s.close();
    }
  });

  it("echoes TCP lines with its name in front", async () => {
    const s = net.connect(ports.tcp, "127.0.0.1");
    const got = new Promise<string>((r) => s.once("data", (d) => r(d.toString())));
    s.write("hel");
    s.write("lo 1\n");
    expect(await got).toBe("vm99 hello 1\n");
    s.destroy();
  });
});
