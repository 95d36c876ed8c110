// The admin API over a unix socket: mode 0600, JSON in and out, errors as JSON.
import { statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminServer, adminRequest } from "../../../src/api/admin.ts";

const sock = join(tmpdir(), `vipmux-admin-test-${process.pid}`, "admin.sock");
let server: AdminServer;
let drained: unknown;

beforeAll(async () => {
  server = new AdminServer(sock, {
    "GET /v1/status": () => ({ status: 200, body: { node: "mux1" } }),
    "POST /v1/drain": ({ body }) => {
      drained = body;
      return { status: 200, body: { ok: true } };
    },
    "GET /v1/boom": () => {
      throw new Error("kaput");
    },
  });
  await server.listen();
});
afterAll(() => server.close());

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

  it("says clearly when the daemon is not running", async () => {
    await expect(
      adminRequest(join(tmpdir(), "no-such-vipmux.sock"), "GET", "/v1/status"),
    ).rejects.toThrow(/vipmux is not running \(no admin socket at .*no-such-vipmux\.sock\)/);
  });
});
