// The admin API: HTTP/JSON over a unix socket (mode 0600: the daemon's user only; 0660 with
// a group, `api.socket-group`), what the CLI's status, drain, undrain, reload, flow and bgp
// commands talk to. Handlers are plain async functions returning a status and a JSON body;
// errors become JSON, never a crash.
import { execFileSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  statSync,
  unlinkSync,
} from "node:fs";
import http from "node:http";
import net from "node:net";
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

/** Largest request body the API reads; a larger one is answered 413. */
export const MAX_BODY_BYTES = 64 * 1024;

export interface AdminServerOptions {
  /** Default MAX_BODY_BYTES. */
  maxBodyBytes?: number;
  /**
   * A group (name or gid) whose members may use the API, BIRD's `-g` (`api.socket-group`):
   * the socket is 0660 and owned by that group. Default: the daemon's user only (0600).
   */
  group?: string | undefined;
}

/**
 * The gid of a group: a number as it is, a name through `getent group` (so groups from
 * NSS sources beyond /etc/group count), or /etc/group where getent is missing.
 */
export function resolveGroup(group: string): number {
  if (/^\d+$/.test(group)) return Number(group);
  let line: string | undefined;
  try {
    line = execFileSync("getent", ["group", group], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT")
      line = readFileSync("/etc/group", "utf8")
        .split("\n")
        .find((l) => l.split(":")[0] === group);
  }
  const gid = Number(line?.split(":")[2]);
  if (!line || !Number.isInteger(gid))
    throw new Error(`admin socket group "${group}" does not exist`);
  return gid;
}

/**
 * Lets members of `gid` through to the socket: directories this start created get the
 * group and 0750; the socket's directory when it existed already and is private to us
 * (mode 0700, e.g. systemd's RuntimeDirectory) gets the group and 0710 (search only). Any
 * other directory is left as it is: no one who could reach it before loses access.
 */
function openDirectoryTo(dir: string, firstCreated: string | undefined, gid: number): void {
  if (firstCreated !== undefined) {
    for (let d = dir; ; d = dirname(d)) {
      chownSync(d, -1, gid);
      chmodSync(d, 0o750);
      if (d === firstCreated || d === dirname(d)) break;
    }
    return;
  }
  const st = statSync(dir);
  const searchable = (st.mode & 0o001) !== 0 || (st.gid === gid && (st.mode & 0o010) !== 0);
  if (!searchable && st.uid === process.getuid?.() && (st.mode & 0o077) === 0) {
    chownSync(dir, -1, gid);
    chmodSync(dir, 0o710);
  }
}

/**
 * What is at `path` before we listen there: nothing, a socket nobody answers on (left by a
 * daemon that died), or something we must not remove (docs/security.md, "Admin socket").
 */
async function checkSocketPath(path: string): Promise<"absent" | "stale"> {
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return "absent";
    throw e;
  }
  if (!st.isSocket())
    throw new Error(`${path} exists and is not a socket; refusing to remove it (move it away)`);
  const answer = await new Promise<"live" | "stale" | NodeJS.ErrnoException>((resolve) => {
    const probe = net.connect({ path });
    probe.setTimeout(1000, () => {
      // Accepting nothing for a second: someone holds it (busy or hung), not a dead daemon.
      probe.destroy();
      resolve("live");
    });
    probe.once("connect", () => {
      probe.destroy();
      resolve("live");
    });
    probe.once("error", (e: NodeJS.ErrnoException) =>
      resolve(e.code === "ECONNREFUSED" || e.code === "ENOENT" ? "stale" : e),
    );
  });
  if (answer === "live")
    throw new Error(
      `another process (vipmux already running?) is listening on the admin socket ${path}; refusing to start`,
    );
  if (answer !== "stale")
    throw new Error(`cannot tell whether the admin socket ${path} is in use: ${answer.message}`);
  return "stale";
}

/** Reads a request body of at most `max` bytes; undefined when it is larger. */
function readBody(req: http.IncomingMessage, max: number): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"]);
    if (declared > max) {
      req.resume();
      resolve(undefined);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on("data", (c: Buffer) => {
      if (over) return;
      size += c.length;
      if (size > max) {
        // Stop keeping it; the rest is read and dropped until the answer is out.
        over = true;
        chunks.length = 0;
        resolve(undefined);
        return;
      }
      chunks.push(c);
    });
    req.once("end", () => {
      if (!over) resolve(Buffer.concat(chunks).toString("utf8"));
    });
    req.once("error", reject);
  });
}

export class AdminServer {
  private readonly server: http.Server;
  private readonly socketPath: string;
  private readonly maxBodyBytes: number;
  private readonly group: string | undefined;
  /** Inode of our socket: close() removes the path only while it is still ours. */
  private inode = -1;

  constructor(
    socketPath: string,
    routes: Record<string, AdminHandler>,
    opts: AdminServerOptions = {},
  ) {
    this.socketPath = socketPath;
    this.maxBodyBytes = opts.maxBodyBytes ?? MAX_BODY_BYTES;
    this.group = opts.group;
    this.server = http.createServer((req, res) => {
      const reply = (out: AdminResponse, close = false) => {
        res.writeHead(out.status, {
          "content-type": "application/json",
          ...(close ? { connection: "close" } : {}),
        });
        res.end(`${JSON.stringify(out.body)}\n`);
      };
      readBody(req, this.maxBodyBytes).then(
        async (raw) => {
          if (raw === undefined) {
            reply(
              {
                status: 413,
                body: { error: `request body larger than ${this.maxBodyBytes} bytes` },
              },
              true,
            );
            return;
          }
          const url = new URL(req.url ?? "/", "http://vipmux");
          const key = `${req.method} ${url.pathname}`;
          const handler = routes[key];
          if (!handler) return reply({ status: 404, body: { error: `no such endpoint: ${key}` } });
          let body: unknown;
          try {
            body = raw ? (JSON.parse(raw) as unknown) : undefined;
          } catch (e) {
            return reply({
              status: 400,
              body: { error: `malformed JSON body: ${(e as Error).message}` },
            });
          }
          let out: AdminResponse;
          try {
            out = await handler({
              method: req.method ?? "GET",
              path: url.pathname,
              query: url.searchParams,
              body,
            });
          } catch (e) {
            out = { status: 500, body: { error: (e as Error).message } };
          }
          reply(out);
        },
        () => res.destroy(),
      );
    });
  }

  async listen(): Promise<void> {
    // An unknown group stops the start before anything is created.
    const gid = this.group === undefined ? undefined : resolveGroup(this.group);
    const dir = dirname(this.socketPath);
    const created = mkdirSync(dir, { recursive: true, mode: 0o700 });
    // A stale socket from a crashed daemon would make listen fail with EADDRINUSE; a
    // live one or anything that is not a socket is refused, never removed.
    if ((await checkSocketPath(this.socketPath)) === "stale") unlinkSync(this.socketPath);
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      // bind(2) creates the socket file with mode 0777 & ~umask: with 0177 it is born
      // 0600, with no moment at which another user could connect. The bind happens inside
      // listen(), synchronously, so the umask is restored before any other code runs.
      const umask = process.umask(0o177);
      try {
        this.server.listen(this.socketPath, () => resolve());
      } finally {
        process.umask(umask);
      }
    });
    this.inode = statSync(this.socketPath).ino;
    if (gid !== undefined) {
      // Born 0600 and ours; then the group, then its read-write: at no moment is the
      // socket open to anyone outside its owner and that group.
      try {
        chownSync(this.socketPath, -1, gid);
        chmodSync(this.socketPath, 0o660);
        openDirectoryTo(dir, created, gid);
      } catch (e) {
        await this.close();
        const hint =
          (e as NodeJS.ErrnoException).code === "EPERM"
            ? " (a daemon that is not root must be a member of the group, e.g. systemd's SupplementaryGroups=)"
            : "";
        throw new Error(`admin socket group "${this.group}": ${(e as Error).message}${hint}`);
      }
    }
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
            ? new Error(
                `permission denied on ${socketPath} (the admin socket is for the daemon's user, and the members of api.socket-group when it is set)`,
              )
            : e,
      ),
    );
    if (body !== undefined) req.end(JSON.stringify(body));
    else req.end();
  });
}
