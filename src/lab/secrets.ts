// Lab secrets are made, never committed: a bind source named `health-token`, `token`,
// `*-token` or `*.key` that does not exist is created at `lab up` with 32 random bytes
// (base64) and mode 0600, which is what vipmux asks of a secret file (docs/security.md).
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, writeFileSync } from "node:fs";
import { basename } from "node:path";

/** Whether a bind source is a secret the lab may generate. */
export function isGeneratedSecret(path: string): boolean {
  const name = basename(path);
  return name === "token" || name.endsWith("-token") || name.endsWith(".key");
}

/** Creates the secret file if it is missing; returns whether it did. */
export function ensureSecretFile(path: string): boolean {
  if (existsSync(path)) return false;
  writeFileSync(path, `${randomBytes(32).toString("base64")}\n`, { mode: 0o600, flag: "wx" });
  chmodSync(path, 0o600);
  return true;
}
