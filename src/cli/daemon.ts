// The CLI's side of the admin API (src/api/admin.ts): one request to the daemon's socket,
// its failures as CliErrors with the codes of the CLI conventions (src/cli/errors.ts).
import type { Command } from "commander";
import { adminRequest } from "../api/admin.ts";
import { CliError } from "./errors.ts";

export const DEFAULT_SOCKET = "/run/vipmux/admin.sock";

/** `-s, --socket PATH` for the commands that talk to the daemon. */
export const socketOption = (c: Command): Command =>
  c.option("-s, --socket <path>", "admin socket of the daemon", DEFAULT_SOCKET);

/**
 * One request; the answer's body when the daemon said yes. No answer: `unavailable`. The
 * daemon's no: 400 (the request's values) is a usage error, 404 `not-found`, anything else
 * `refused`, with the daemon's answer as details.
 */
export async function callDaemon(
  socket: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<unknown> {
  const r = await adminRequest(socket, method, path, body).catch((e: Error) => {
    throw new CliError(e.message, { code: "unavailable" });
  });
  if (r.status < 400) return r.body;
  const b = (r.body ?? {}) as { error?: string; errors?: string[] };
  const message = b.errors ? b.errors.join("\n") : (b.error ?? `HTTP ${r.status}`);
  const code = r.status === 400 ? "usage" : r.status === 404 ? "not-found" : "refused";
  throw new CliError(message, { code, details: { status: r.status, ...b } });
}
