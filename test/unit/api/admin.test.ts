// The admin API over a unix socket: mode 0600, JSON in and out, errors as JSON; a stale
// socket is replaced, a live one or a regular file at the path is refused.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminServer, adminRequest, MAX_BODY_BYTES } from "../../../src/api/admin.ts";

const sock = join(tmpdir(), `vipmux-admin-test-${process.pid}`, "admin.sock");
let server: AdminServer;
let drained: unknown;
let drainCalls = 0;

beforeAll(async () => {
  server = new AdminServer(sock, {
    "GET /v1/status": () => ({ status: 200, body: { node: "mux1" } }),
    "POST /v1/drain": ({ body }) => {
      drainCalls++;
      drained = body;
      return { status: 200, body: { ok: true } };
    },
    "GET /v1/boom": () => {
      throw new Error("kaput");
    },
  });
  await server.listen();
});
afterAll(async () => {
  await server.close();
  rmSync(join(tmpdir(), `vipmux-admin-test-${process.pid}`), { recursive: true, force: true });
});

/** A raw request, for bodies adminRequest would never send. */
function rawRequest(
  socketPath: string,
  method: string,
  path: string,
  body: string | Buffer,
  chunked = false,
): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method, path }, (res) => {
      let raw = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        raw += c;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(raw) }));
    });
    req.on("error", reject);
    if (chunked) {
      // No content-length: the server only learns the size while reading.
      const bytes = Buffer.from(body);
      for (let i = 0; i < bytes.length; i += 4096) req.write(bytes.subarray(i, i + 4096));
      req.end();
    } else req.end(body);
  });
}

/** A unix socket file nobody listens on: a daemon SIGKILLed while listening. */
async function staleSocket(path: string): Promise<void> {
  const child = spawn(
    process.execPath,
    [
      "-e",
      "require('node:net').createServer().listen(process.argv[1], () => process.kill(process.pid, 'SIGKILL'))",
      path,
    ],
    { stdio: "ignore" },
  );
  await new Promise((r) => child.once("exit", r));
  expect(statSync(path).isSocket()).toBe(true);
}

describe("admin API", () => {
  it("listens on a socket only its owner can use", () => {
    expect(statSync(sock).mode & 0o777).toBe(0o600);
  });

  it("answers requests with JSON", async () => {
    expect(await adminRequest(sock, "GET", "/v1/status")).toEqual({
      status: 200,
      body: { node: "mux1" },
    });
    expect(await adminRequest(sock, "POST", "/v1/drain", { kind: "service", name: "web" })).toEqual(
      {
        status: 200,
        body: { ok: true },
      },
    );
    expect(drained).toEqual({ kind: "service", name: "web" });
  });

  it("turns unknown endpoints and handler errors into JSON errors", async () => {
    expect(await adminRequest(sock, "GET", "/v1/nope")).toEqual({
      status: 404,
      body: { error: "no such endpoint: GET /v1/nope" },
    });
    expect(await adminRequest(sock, "GET", "/v1/boom")).toEqual({
      status: 500,
      body: { error: "kaput" },
    });
  });

  it("answers a malformed JSON body with 400, without calling the handler", async () => {
    const before = drainCalls;
    const r = await rawRequest(sock, "POST", "/v1/drain", '{"kind": "service", name');
    expect(r.status).toBe(400);
    expect((r.body as { error: string }).error).toMatch(/^malformed JSON body: /);
    expect(drainCalls).toBe(before);
  });

  it("answers an oversized body with 413, with or without content-length", async () => {
    const before = drainCalls;
    const big = JSON.stringify({ kind: "service", name: "x".repeat(MAX_BODY_BYTES) });
    const expected = {
      status: 413,
      body: { error: `request body larger than ${MAX_BODY_BYTES} bytes` },
    };
    expect(await adminRequest(sock, "POST", "/v1/drain", JSON.parse(big))).toEqual(expected);
    expect(await rawRequest(sock, "POST", "/v1/drain", Buffer.from(big), true)).toEqual(expected);
    expect(drainCalls).toBe(before);
    // A body right at the bound is read whole.
    const atBound = `"${"y".repeat(MAX_BODY_BYTES - 2)}"`;
    expect(await rawRequest(sock, "POST", "/v1/drain", atBound)).toEqual({
      status: 200,
      body: { ok: true },
    });
    expect((drained as string).length).toBe(MAX_BODY_BYTES - 2);
    // The server is still fine afterwards.
    expect((await adminRequest(sock, "GET", "/v1/status")).status).toBe(200);
  });

  it("says clearly when the daemon is not running", async () => {
    await expect(
      adminRequest(join(tmpdir(), "no-such-vipmux.sock"), "GET", "/v1/status"),
    ).rejects.toThrow(/vipmux is not running \(no admin socket at .*no-such-vipmux\.sock\)/);
  });
});

describe("admin socket path", () => {
  const dir = join(tmpdir(), `vipmux-admin-test-${process.pid}`);
  const routes = { "GET /v1/status": () => ({ status: 200, body: { node: "other" } }) };

  it("replaces a stale socket left by a daemon that died", async () => {
    const path = join(dir, "stale.sock");
    mkdirSync(dir, { recursive: true });
    await staleSocket(path);
    const s = new AdminServer(path, routes);
    await s.listen();
    try {
      expect(await adminRequest(path, "GET", "/v1/status")).toEqual({
        status: 200,
        body: { node: "other" },
      });
      expect(statSync(path).mode & 0o777).toBe(0o600);
    } finally {
      await s.close();
    }
  });

  it("refuses to start, naming the path, when another instance answers on the socket", async () => {
    const second = new AdminServer(sock, routes);
    await expect(second.listen()).rejects.toThrow(
      `another process (vipmux already running?) is listening on the admin socket ${sock}; refusing to start`,
    );
    // The running instance keeps its socket and still answers.
    expect(await adminRequest(sock, "GET", "/v1/status")).toEqual({
      status: 200,
      body: { node: "mux1" },
    });
  });

  it("refuses to remove a regular file at the socket path", async () => {
    const path = join(dir, "not-a-socket");
    mkdirSync(dir, { recursive: true });
    writeFileSync(path, "precious\n");
    const s = new AdminServer(path, routes);
    await expect(s.listen()).rejects.toThrow(
      `${path} exists and is not a socket; refusing to remove it (move it away)`,
    );
    expect(existsSync(path)).toBe(true);
    expect(readFileSync(path, "utf8")).toBe("precious\n");
  });
});
