// vipmux validate and config schema under the CLI conventions (README, "CLI conventions"):
// with --json the validation report stays on stdout and an invalid file is also the error
// object on stderr, exit 1; config schema takes --json like every command that prints.
import { describe, expect, it } from "vitest";
import { jsonError, vipmuxHere } from "./run-cli.ts";

describe("validate and config schema with --json", () => {
  it("validate --json: the report on stdout, the error object with every error on stderr", async () => {
    const file = "test/fixtures/config/broken/bad-ip.yml";
    const r = await vipmuxHere("validate", "--json", file);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ valid: false });
    const e = jsonError(r.stderr);
    expect(e.code).toBe("invalid-config");
    expect(e.message).toBe(
      `${file}:8:10: services.0.vip: must be an IPv4 or IPv6 address\n${file}: 1 error`,
    );
    expect(e.details).toEqual({
      errors: [
        {
          file,
          line: 8,
          col: 10,
          path: "services.0.vip",
          message: "must be an IPv4 or IPv6 address",
        },
      ],
    });
    // A valid file: nothing on stderr.
    expect(await vipmuxHere("validate", "--json", "configs/mux.yml")).toMatchObject({
      code: 0,
      stderr: "",
    });
  });

  it("config schema accepts --json", async () => {
    const r = await vipmuxHere("config", "schema", "--json");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toHaveProperty("properties");
  });
});
