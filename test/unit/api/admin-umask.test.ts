// The admin socket is born 0600 (umask around bind), not chmod'ed after it exists: with
// every chmod turned into a no-op, the mode is still 0600, and the process umask is the
// same after listen() as before.
import { statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { AdminServer } from "../../../src/api/admin.ts";

vi.mock("node:fs", async (importOriginal) => {
  const fs = await importOriginal<typeof import("node:fs")>();
  const noop = () => {};
  const promises = { ...fs.promises, chmod: async () => {} };
  const patched = { ...fs, chmodSync: noop, chmod: noop, promises };
  return { ...patched, default: patched };
});

const sock = join(tmpdir(), `vipmux-admin-umask-${process.pid}`, "admin.sock");
let server: AdminServer | undefined;
afterAll(() => server?.close());

describe("admin socket mode", () => {
  it("is 0600 from creation on, and the umask is restored", async () => {
    // A usual umask: a socket created under it without care would be 0755.
    const original = process.umask(0o022);
    try {
      server = new AdminServer(sock, {});
      await server.listen();
      expect(statSync(sock).mode & 0o777).toBe(0o600);
      expect(process.umask(0o022)).toBe(0o022);
    } finally {
      process.umask(original);
    }
  });
});
