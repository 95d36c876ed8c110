// api.socket-group (BIRD's `-g`): members of one group may use the admin socket. The socket
// is 0660 and owned by that group, its directory lets the group through, an unknown group
// stops the start before anything exists, and without a group the socket stays 0600.
import { execFile, execFileSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { AdminServer, adminRequest, resolveGroup } from "../../../src/api/admin.ts";
import { loadConfig } from "../../../src/config/index.ts";
import { MuxDaemon } from "../../../src/controller/mux.ts";
import { fakeDataplane } from "../controller/fake-dataplane.ts";

/** A group of this machine other than ours, and its gid as getent says. */
const GROUP = "adm";
const gid = Number(execFileSync("getent", ["group", GROUP], { encoding: "utf8" }).split(":")[2]);
const root = mkdtempSync(join(tmpdir(), "vipmux-admin-group-"));
const servers: { close(): Promise<void> }[] = [];
afterAll(async () => {
  for (const s of servers) await s.close();
  rmSync(root, { recursive: true, force: true });
});

/** As root, with setpriv and curl at hand: run curl on the socket as nobody, in `groups`. */
const asNobody =
  process.getuid?.() === 0 && existsSync("/usr/bin/setpriv") && existsSync("/usr/bin/curl");
async function curlAsNobody(sock: string, groups: string[]): Promise<string> {
  const ids = ["--reuid=nobody", "--regid=nogroup"];
  const g = groups.length ? [`--groups=${groups.join(",")}`] : ["--clear-groups"];
  try {
    const r = await promisify(execFile)("/usr/bin/setpriv", [
      ...ids,
      ...g,
      "/usr/bin/curl",
      "-sS",
      "--unix-socket",
      sock,
      "http://vipmux/v1/ping",
    ]);
    return r.stdout.trim();
  } catch (e) {
    return `failed: ${(e as { stderr: string }).stderr.trim()}`;
  }
}

const routes = { "GET /v1/ping": () => ({ status: 200, body: { pong: true } }) };

describe("admin socket group", () => {
  it("resolves a group by name (getent) or number, and names an unknown one", () => {
    expect(resolveGroup(GROUP)).toBe(gid);
    expect(resolveGroup(String(gid))).toBe(gid);
    expect(() => resolveGroup("no-such-group-vipmux")).toThrow(
      'admin socket group "no-such-group-vipmux" does not exist',
    );
  });

  it("the socket is 0660 and the group's; directories it created let the group through", async () => {
    const dir = join(root, "made", "run");
    const sock = join(dir, "admin.sock");
    const s = new AdminServer(sock, routes, { group: GROUP });
    servers.push(s);
    await s.listen();
    const st = statSync(sock);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o660);
    expect(st.gid).toBe(gid);
    expect(st.uid).toBe(process.getuid!());
    for (const d of [dir, join(root, "made")]) {
      expect(statSync(d).mode & 0o777).toBe(0o750);
      expect(statSync(d).gid).toBe(gid);
    }
    expect((await adminRequest(sock, "GET", "/v1/ping")).body).toEqual({ pong: true });
  });

  it("a private directory that existed (systemd's RuntimeDirectory, 0700) gets group search only", async () => {
    const dir = join(root, "runtime");
    mkdirSync(dir);
    chmodSync(dir, 0o700);
    const s = new AdminServer(join(dir, "admin.sock"), routes, { group: String(gid) });
    servers.push(s);
    await s.listen();
    expect(statSync(dir).mode & 0o777).toBe(0o710);
    expect(statSync(dir).gid).toBe(gid);
    expect(statSync(join(dir, "admin.sock")).mode & 0o777).toBe(0o660);
  });

  it("a directory others can use already is left as it is", async () => {
    const dir = join(root, "shared");
    mkdirSync(dir);
    chmodSync(dir, 0o755);
    const before = statSync(dir);
    const s = new AdminServer(join(dir, "admin.sock"), routes, { group: GROUP });
    servers.push(s);
    await s.listen();
    expect(statSync(dir).mode).toBe(before.mode);
    expect(statSync(dir).gid).toBe(before.gid);
  });

  it("an unknown group stops the start before the socket or its directory exist", async () => {
    const dir = join(root, "never");
    const s = new AdminServer(join(dir, "admin.sock"), routes, { group: "no-such-group-vipmux" });
    await expect(s.listen()).rejects.toThrow(/no-such-group-vipmux" does not exist/);
    expect(existsSync(dir)).toBe(false);
  });

  it.skipIf(!asNobody)("a member of the group gets in, someone else does not", async () => {
    // The test's own directory must let nobody through to the one the server makes.
    chmodSync(root, 0o711);
    const sock = join(root, "members", "admin.sock");
    const s = new AdminServer(sock, routes, { group: GROUP });
    servers.push(s);
    await s.listen();
    expect(await curlAsNobody(sock, [GROUP])).toBe('{"pong":true}');
    expect(await curlAsNobody(sock, [])).toMatch(/^failed: .*(Permission denied|Couldn't connect)/);
  });

  it("without a group: 0600 as before", async () => {
    const sock = join(root, "plain", "admin.sock");
    const s = new AdminServer(sock, routes);
    servers.push(s);
    await s.listen();
    expect(statSync(sock).mode & 0o777).toBe(0o600);
    expect(statSync(join(root, "plain")).mode & 0o777).toBe(0o700);
  });

  it("the MUX daemon takes the group from api.socket-group", async () => {
    const dir = join(root, "daemon");
    mkdirSync(dir);
    const sock = join(dir, "run", "admin.sock");
    const file = join(dir, "mux.yml");
    writeFileSync(
      file,
      `node: { name: grouptest, router-id: 192.0.2.2 }
bgp: { asn: 65101, peers: [ { address: 127.0.0.1, asn: 65000, port: 1, connect-retry: 60s } ] }
health: { listen: "off" }
api: { socket: ${sock}, socket-group: ${GROUP} }
`,
    );
    const cfg = loadConfig(file);
    if (!cfg.ok) throw new Error(JSON.stringify(cfg.error));
    expect(cfg.value.api.socketGroup).toBe(GROUP);
    const daemon = new MuxDaemon(cfg.value, {
      configFile: file,
      dataplane: fakeDataplane,
      log: () => {},
    });
    servers.push({ close: () => daemon.stop() });
    await daemon.start();
    expect(statSync(sock).mode & 0o777).toBe(0o660);
    expect(statSync(sock).gid).toBe(gid);
  });
});
