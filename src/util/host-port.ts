// `ADDRESS:PORT` text (where a socket listens): the one parser, used by the config schema
// to validate every such field and by every place that opens the socket, so what
// `vipmux validate` accepts is exactly what the daemon binds.
import { isIP, isIPv4 } from "node:net";
import { err, ok, type Result } from "./result.ts";

export interface HostPort {
  /** An IP address; `0.0.0.0` when the text left it out (`:PORT`). */
  host: string;
  port: number;
}

/** How an address:port is written, for messages. */
export const HOST_PORT_FORM = "ADDRESS:PORT (IPv6 as [ADDRESS]:PORT, port 0-65535)";

/**
 * `192.0.2.2:9273`, `[2001:db8::2]:9273`, `[::]:179` or `:7946` (every IPv4 address).
 * Addresses are IP literals (nothing is resolved); an IPv6 address needs brackets (its own
 * colons would make the port ambiguous) and no zone. Errors name the fix.
 */
export function parseHostPort(text: string): Result<HostPort, string> {
  const s = text.trim();
  if (/^\d+$/.test(s))
    return err(
      `a bare port is not an address: write ADDRESS:PORT, e.g. 127.0.0.1:${s} (this host only) or 0.0.0.0:${s} (every IPv4 address)`,
    );
  let host: string;
  let portText: string;
  if (s.startsWith("[")) {
    const close = s.indexOf("]");
    if (close < 0 || s[close + 1] !== ":")
      return err(`must be ${HOST_PORT_FORM}: "${s}" has no :PORT after the bracketed address`);
    host = s.slice(1, close);
    portText = s.slice(close + 2);
    if (host.includes("%"))
      return err(
        "an IPv6 zone (%eth0) names one machine's interface and has no meaning here: remove it",
      );
    if (isIP(host) !== 6) return err(`"${host}" in brackets must be an IPv6 address`);
  } else {
    const colon = s.indexOf(":");
    if (colon < 0)
      return err(
        isIP(s) !== 0
          ? `"${s}" has no port: write ${formatHostPort({ host: s, port: 0 }).replace(/0$/, "PORT")}`
          : `"${s}" is not ${HOST_PORT_FORM}${s === "localhost" ? ": e.g. 127.0.0.1:PORT (names are not resolved)" : ""}`,
      );
    if (s.indexOf(":", colon + 1) >= 0) {
      // Unbracketed IPv6: "::1:9273" may mean [::1]:9273 or the address ::1:9273.
      const last = s.lastIndexOf(":");
      const head = s.slice(0, last);
      const whole = isIP(s) === 6 ? `[${s}]:PORT` : undefined;
      if (isIP(head) === 6 && /^\d+$/.test(s.slice(last + 1)))
        return err(
          `an IPv6 address needs brackets: [${head}]:${s.slice(last + 1)}${whole ? ` (or ${whole})` : ""}`,
        );
      return err(whole ? `"${s}" has no port: write ${whole}` : `"${s}" is not ${HOST_PORT_FORM}`);
    }
    host = s.slice(0, colon);
    portText = s.slice(colon + 1);
    if (host !== "" && !isIPv4(host))
      return err(
        `"${host}" is not an IP address (names are not resolved): e.g. ${host === "localhost" ? "127.0.0.1" : "192.0.2.2"}:${portText || "PORT"}`,
      );
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65_535)
    return err(`port "${portText}" must be a number 0-65535 (${HOST_PORT_FORM})`);
  return ok({ host: host === "" ? "0.0.0.0" : host, port: Number(portText) });
}

/**
 * The address:port of a config that was validated: throws (a bug, not a user error) when
 * the text does not parse.
 */
export function hostPort(text: string): HostPort {
  const r = parseHostPort(text);
  if (!r.ok) throw new TypeError(`${text}: ${r.error}`);
  return r.value;
}

/** `host:port`, IPv6 in brackets. */
export function formatHostPort({ host, port }: HostPort): string {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}
