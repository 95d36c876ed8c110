export { formatDurationMs, parseDurationMs } from "./duration.ts";
export {
  type ConfigError,
  formatConfigError,
  loadConfig,
  parseConfig,
  resolveSecret,
} from "./load.ts";
export {
  type BackendConfig,
  type Config,
  configJsonSchema,
  configSchema,
  type PeerConfig,
  type ServiceConfig,
} from "./schema.ts";
export { checkSemantics, type SemanticIssue } from "./semantic.ts";
