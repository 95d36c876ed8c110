// The CLI conventions (README, "CLI conventions"; `vipmux --help`): --json on every command
// that prints, one error object on stderr under --json, exit 0 / 1 (the operation failed) /
// 2 (usage error). The CLI's main() runs in this process (a child process costs a second or
// more on a busy machine); the last tests run it as a user does. No daemon needed.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { jsonError, root, vipmux, vipmuxHere } from "./run-cli.ts";

const dir = mkdtempSync(join(tmpdir(), "vipmux-cli-conv-"));
const noDaemon = join(dir, "no-daemon.sock");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("exit status 2 for usage errors", () => {
  const usage: [string, string[]][] = [
    ["unknown command", ["frobnicate"]],
    ["unknown option", ["status", "--bogus"]],
    ["unknown option of the program", ["--bogus"]],
    ["missing argument", ["drain"]],
    ["missing argument", ["validate"]],
    ["excess argument", ["reload", "now"]],
    ["bad value of an argument", ["drain", "everything"]],
    ["bad value of an option", ["dataplane", "-c", "configs/mux.yml", "--io", "pcap"]],
    ["missing subcommand", ["config"]],
    ["a name the command needs", ["drain", "service", "-s", noDaemon]],
    ["a name the command refuses", ["drain", "mux", "web", "-s", noDaemon]],
    ["bad protocol of vipmux flow", ["flow", "sctp", "192.0.2.1", "1", "20.20.20.100", "80"]],
    ["bad port of vipmux flow", ["flow", "tcp", "192.0.2.1", "0", "20.20.20.100", "80"]],
    ["bad address of vipmux flow", ["flow", "tcp", "nope", "1", "20.20.20.100", "80"]],
    ["mixed families in vipmux flow", ["flow", "udp", "192.0.2.1", "1", "2001:db8::1", "80"]],
    ["bgp table without a neighbor", ["bgp", "neighbor", "adj-out"]],
    ["bad bgp table", ["bgp", "neighbor", "192.0.2.1", "adj-rib"]],
    ["unknown shell", ["completion", "fish"]],
    ["host-agent plan without --config", ["host-agent", "plan"]],
  ];
  for (const [what, args] of usage) {
    it(`${what}: ${args.join(" ")}`, async () => {
      const text = await vipmuxHere(...args);
      expect(text.code).toBe(2);
      expect(text.stdout).toBe("");
      expect(text.stderr).not.toBe("");
      const json = await vipmuxHere(...args, "--json");
      expect(json.code).toBe(2);
      expect(json.stdout).toBe("");
      expect(jsonError(json.stderr).code).toBe("usage");
    });
  }

  it("the flow's own checks run before the daemon is asked (no daemon needed)", async () => {
    const r = await vipmuxHere(
      "flow",
      "tcp",
      "192.0.2.1",
      "1",
      "2001:db8::1",
      "80",
      "-s",
      noDaemon,
    );
    expect(r).toMatchObject({ code: 2 });
    expect(r.stderr).toBe(
      "vipmux: source 192.0.2.1 and destination 2001:db8::1 are not of one address family\n",
    );
  });

  it("help and version are no errors", async () => {
    expect((await vipmuxHere("--help")).code).toBe(0);
    expect((await vipmuxHere("status", "--help")).code).toBe(0);
    expect((await vipmuxHere("--version")).code).toBe(0);
  });
});

describe("exit status 1 when the operation fails, with the error object under --json", () => {
  it("the daemon is not running: unavailable", async () => {
    const cases = [
      ["status"],
      ["drain", "mux"],
      ["undrain", "backend", "web/10.10.1.11"],
      ["reload"],
      ["flow", "tcp", "192.0.2.1", "1", "20.20.20.100", "80"],
      ["bgp", "neighbor"],
      ["bgp", "neighbor", "192.0.2.1", "adj-in"],
    ];
    const check = async (args: string[]) => {
      const text = await vipmuxHere(...args, "-s", noDaemon);
      expect(text).toMatchObject({
        code: 1,
        stdout: "",
        stderr: `vipmux: vipmux is not running (no admin socket at ${noDaemon})\n`,
      });
      const json = await vipmuxHere(...args, "-s", noDaemon, "--json");
      expect(json.code).toBe(1);
      expect(jsonError(json.stderr)).toEqual({
        code: "unavailable",
        message: `vipmux is not running (no admin socket at ${noDaemon})`,
      });
    };
    for (const c of cases) await check(c);
  });

  it("a config the command needs is invalid: invalid-config", async () => {
    const bad = "test/fixtures/config/broken/bad-ip.yml";
    for (const args of [
      ["run", "-c", bad],
      ["health-key", "198.51.100.2", "-c", bad],
    ]) {
      const r = await vipmuxHere(...args, ...(args[0] === "run" ? [] : ["--json"]));
      expect(r.code).toBe(1);
      if (args[0] === "run") expect(r.stderr).toContain("services.0.vip");
      else expect(jsonError(r.stderr).code).toBe("invalid-config");
    }
  });

  it("what the command names does not exist: not-found", async () => {
    const r = await vipmuxHere("lab", "status", "--name", "no-such-lab", "--json");
    expect(r.code).toBe(1);
    expect(jsonError(r.stderr)).toEqual({
      code: "not-found",
      message: "lab no-such-lab is not up",
    });
  });
});

describe("--json on the commands that print", () => {
  it("version", async () => {
    const { version } = JSON.parse(readFileSync(`${root}package.json`, "utf8")) as {
      version: string;
    };
    const r = await vipmuxHere("version", "--json");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ version });
  });

  it("health-key, to stdout and to a file", async () => {
    const plain = await vipmuxHere("health-key", "198.51.100.2", "-c", "configs/mux.yml");
    expect(plain.code).toBe(0);
    const r = await vipmuxHere("health-key", "198.51.100.2", "-c", "configs/mux.yml", "--json");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ pa: "198.51.100.2", key: plain.stdout.trim() });
    const out = join(dir, "host1.key");
    const f = await vipmuxHere(
      "health-key",
      "198.51.100.2",
      "-c",
      "configs/mux.yml",
      "-o",
      out,
      "--json",
    );
    expect(f.code).toBe(0);
    expect(JSON.parse(f.stdout)).toEqual({ pa: "198.51.100.2", file: out });
    expect(readFileSync(out, "utf8").trim()).toBe(plain.stdout.trim());
  });

  it("host-agent plan (JSON by default; --json says so; not with --nft)", async () => {
    const r = await vipmuxHere("host-agent", "plan", "-c", "configs/host-agent.yml", "--json");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(
      JSON.parse((await vipmuxHere("host-agent", "plan", "-c", "configs/host-agent.yml")).stdout),
    );
    const both = await vipmuxHere(
      "host-agent",
      "plan",
      "-c",
      "configs/host-agent.yml",
      "--json",
      "--nft",
    );
    expect(both.code).toBe(2);
    expect(jsonError(both.stderr).code).toBe("usage");
  });

  it("every command that prints takes --json", async () => {
    const commands = [
      ["status"],
      ["drain"],
      ["undrain"],
      ["reload"],
      ["flow"],
      ["bgp", "neighbor"],
      ["validate"],
      ["version"],
      ["health-key"],
      ["lab", "status"],
      ["host-agent", "plan"],
    ];
    for (const cmd of commands)
      expect((await vipmuxHere(...cmd, "--help")).stdout, cmd.join(" ")).toContain("--json");
  });

  it("--help states the conventions", async () => {
    const r = await vipmuxHere("--help");
    expect(r.stdout).toContain('{"error": {"code": "usage", "message": "...", "details": ...}}');
    expect(r.stdout).toMatch(/0 success; 1 the operation failed/);
    expect(r.stdout).toMatch(/2 usage error/);
  });
});

describe.concurrent("as a user runs it: the process's exit status", () => {
  it("2 for a usage error, with the error object under --json", async () => {
    const r = await vipmux("drain", "everything", "--json");
    expect(r.code).toBe(2);
    expect(jsonError(r.stderr).code).toBe("usage");
  }, 60_000);

  it("1 when the daemon is not running", async () => {
    const r = await vipmux("bgp", "neighbor", "-s", noDaemon, "--json");
    expect(r.code).toBe(1);
    expect(jsonError(r.stderr).code).toBe("unavailable");
  }, 60_000);
});
