// Logging: structured JSON lines (pino) for machines, a short human line on a TTY.
// Never called per packet; every state change, error and long operation logs once.
import { pino } from "pino";

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFn = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => void;

const LEVEL_LABEL: Record<LogLevel, string> = {
  debug: "DEBUG",
  info: "INFO ",
  warn: "WARN ",
  error: "ERROR",
};

/**
 * A logger for a component. JSON to stderr by default; human-readable when stderr is a
 * terminal (or VIPMUX_LOG_FORMAT=text). VIPMUX_LOG_LEVEL sets the threshold (info).
 */
export function createLogger(
  component: string,
  opts: { level?: LogLevel; format?: "json" | "text" } = {},
): LogFn {
  const level = opts.level ?? (process.env.VIPMUX_LOG_LEVEL as LogLevel | undefined) ?? "info";
  const envFormat = process.env.VIPMUX_LOG_FORMAT;
  const format =
    opts.format ??
    (envFormat === "json" || envFormat === "text"
      ? envFormat
      : process.stderr.isTTY
        ? "text"
        : "json");
  if (format === "text") {
    const threshold = ["debug", "info", "warn", "error"].indexOf(level);
    return (lvl, msg, fields) => {
      if (["debug", "info", "warn", "error"].indexOf(lvl) < threshold) return;
      const extra = fields && Object.keys(fields).length > 0 ? ` ${JSON.stringify(fields)}` : "";
      process.stderr.write(
        `${new Date().toISOString().slice(11, 23)} ${LEVEL_LABEL[lvl]} ${component}: ${msg}${extra}\n`,
      );
    };
  }
  const logger = pino(
    { level, base: { component }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination(2),
  );
  return (lvl, msg, fields) => logger[lvl](fields ?? {}, msg);
}
