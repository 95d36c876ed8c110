// The admin API: HTTP/JSON over a unix socket (mode 0600: root only), what the CLI's
// status, drain, undrain, reload and flow commands talk to. Handlers are plain async
// functions returning a status and a JSON body; errors become JSON, never a crash.
import { chmodSync, existsSync, mkdirSync, statSync, unlinkSync } from "node:fs";
import http from "node:http";
import { dirname } from "node:path";

export interface AdminResponse {
  status: number;
  body: unknown;
}

export type AdminHandler = (req: {
  method: string;
  path: string;
  query: URLSearchParams;
  body: unknown;
}) => Promise<AdminResponse> | AdminResponse;

export class AdminServer {
  private readonly server: http.Server;
  private readonly socketPath: string;
  /** Inode of our socket: close() removes the path only while it is still ours. */
  private inode = -1;

  constructor(socketPath: string, routes: Record<string, AdminHandler>) {
    this.socketPath = socketPath;
    this.server = http.createServer((req, res) => {
      let raw = "";
      req.setEncoding("utf8");
      req.on("data", (c: string) => {
        if (raw.length < 1_000_000) raw += c;
      });
      req.on("end", async () => {
        const url = new URL(req.url ?? "/", "http://vipmux");
        const key = `${req.method} ${url.pathname}`;
        const handler = routes[key];
        let out: AdminResponse;
        if (!handler) out = { status: 404, body: { error: `no such endpoint: ${key}` } };
        else {
          try {
            const body = raw ? (JSON.parse(raw) as unknown) : undefined;
            out = await handler({
              method: req.method ?? "GET",
              path: url.pathname,
              query: url.searchParams,
              body,
            });
          } catch (e) {
            out = { status: 500, body: { error: (e as Error).message } };
          }
        }
        res.writeHead(out.status, { "content-type": "application/json" });
        res.end(`${JSON.stringify(out.body)}\n`);
      });
    });
  }

  async listen(): Promise<void> {
    mkdirSync(dirname(this.socketPath), { recursive: true, mode: 0o700 });
    // A stale socket from a crashed daemon would make listen fail with EADDRINUSE.
    if (existsSync(this.socketPath)) unlinkSync(this.socketPath);
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(this.socketPath, () => resolve());
    });
    chmodSync(this.socketPath, 0o600);
    this.inode = statSync(this.socketPath).ino;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) =>
      this.server.close(() => {
        try {
          // Another daemon may have taken over the path since: leave its socket alone.
          if (statSync(this.socketPath).ino === this.inode) unlinkSync(this.socketPath);
        } catch {
          // already gone
        }
        resolve();
      }),
    );
  }
}

/** The CLI side: one request to the daemon's socket. */
export function adminRequest(
  socketPath: string,
  method: string,
  path: string,
  body?: unknown,
  timeoutMs = 10_000,
): Promise<AdminResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method, path, timeout: timeoutMs }, (res) => {
      let raw = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        raw += c;
      });
      res.on("end", () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: raw ? JSON.parse(raw) : undefined });
        } catch (e) {
          reject(e);
        }
      });
    });
    req.on("timeout", () =>
      req.destroy(new Error(`no answer from ${socketPath} within ${timeoutMs} ms`)),
    );
    req.on("error", (e: NodeJS.ErrnoException) =>
      reject(
        e.code === "ENOENT" || e.code === "ECONNREFUSED"
          ? new Error(`vipmux is not running (no admin socket at ${socketPath})`)
          : e.code === "EACCES"
            ? new Error(`permission denied on ${socketPath} (the admin socket is root only)`)
            : e,
      ),
    );
    if (body !== undefined) req.end(JSON.stringify(body));
    else req.end();
  });
}
