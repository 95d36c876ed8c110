// Load-balancing core: Maglev, flow hashing, connection table, service model, forwarding table.
export {
  ConnectionTable,
  type ConnTableOptions,
  type ConnTimeouts,
  DEFAULT_TIMEOUTS,
  FlowKind,
  FlowState,
  InsertFailure,
} from "./conn-table.ts";
export { DIP_MAC_PREFIX, DIP_MAC_SEED, dipMac, dipMacText } from "./dip-mac.ts";
export {
  Distribution,
  FLOW_KEY_WORDS,
  flowHash,
  parseDistribution,
  writeFlowKey,
} from "./flow-hash.ts";
export {
  type BackendEntry,
  BackendStateCode,
  buildForwardingTable,
  type ForwardingTable,
  type ServiceEntry,
} from "./forwarding-table.ts";
export { DEFAULT_SEED, hashBytes, hashString } from "./hash.ts";
export {
  buildMaglevTable,
  isPrime,
  MAGLEV_MAX_BACKENDS,
  MAGLEV_SIZE_DEFAULT,
  MAGLEV_SIZE_LARGE,
  type MaglevBackend,
  maglevShares,
} from "./maglev.ts";
export type {
  BackendSpec,
  BackendState,
  DistributionName,
  ServiceModel,
  ServicePort,
  ServiceProtocol,
  ServiceSpec,
} from "./service.ts";
export { validateServiceModel } from "./service.ts";
export { VipMap } from "./vip-map.ts";
