// Reading systemd unit files (configs/systemd/*.service), enough for the tests that check
// them and run their commands the way systemd would without systemd: sections, keys in
// order, comments, continuation lines, and an empty assignment resetting a list setting.
import { splitCommand } from "../util/proc.ts";

export interface UnitFile {
  /** Every value assigned to `key` in `section`, in order (an empty one clears the list). */
  values(section: string, key: string): string[];
  /** The last value of `key` in `section`, if any. */
  value(section: string, key: string): string | undefined;
}

export function parseUnit(text: string): UnitFile {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    // A trailing backslash joins the next line (with a space, as systemd does).
    while (line.endsWith("\\") && i + 1 < lines.length) {
      line = `${line.slice(0, -1)} ${lines[++i]!.trim()}`;
    }
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      current = sections.get(header[1]!) ?? new Map();
      sections.set(header[1]!, current);
      continue;
    }
    const eq = line.indexOf("=");
    if (eq < 0 || !current) throw new Error(`unit line ${i + 1}: not KEY=VALUE in a section`);
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim();
    const list = current.get(key) ?? [];
    if (value === "") list.length = 0;
    else list.push(value);
    current.set(key, list);
  }
  return {
    values: (section, key) => [...(sections.get(section)?.get(key) ?? [])],
    value: (section, key) => sections.get(section)?.get(key)?.at(-1),
  };
}

/** The capability names of AmbientCapabilities= / CapabilityBoundingSet= values. */
export function capabilityNames(values: readonly string[]): string[] {
  const out = new Set<string>();
  for (const v of values) for (const c of v.split(/\s+/)) if (c !== "") out.add(c);
  return [...out];
}

/**
 * An Exec*= line as argv: systemd's prefixes ("-", "@", "+", "!", ":") are refused rather
 * than half-understood; quotes are split as a shell would (what the units use).
 */
export function execArgv(line: string): string[] {
  if (/^[-@+!:]/.test(line)) throw new Error(`Exec prefix not supported here: ${line}`);
  return splitCommand(line);
}

/** Environment= values as a record ("A=1 B=2" assigns both). */
export function environment(values: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const v of values)
    for (const pair of splitCommand(v)) {
      const eq = pair.indexOf("=");
      if (eq > 0) env[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
  return env;
}
