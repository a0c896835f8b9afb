export {
  defineService,
  runService,
  startService,
  type MigrateContext,
  type RunContext,
  type RunningService,
  type ServiceContext,
  type ServiceDefinition,
  type StartOptions,
  type StopHook,
} from './service.js';
export {
  ConfigError,
  loadConfig,
  LOG_LEVELS,
  type AuthConfig,
  type ConfigSource,
  type LogLevel,
  type PlatformConfig,
  type Requirement,
  type ServiceConfig,
} from './config.js';
export {
  authInterceptor,
  callerOf,
  createTokenVerifier,
  DEV_JWT_SECRET,
  mintToken,
  requireRole,
  type Caller,
  type Role,
  type TokenClaims,
  type TokenVerifier,
} from './auth.js';
export {
  alreadyExists,
  failedPrecondition,
  internalError,
  invalidArgument,
  notFound,
  permissionDenied,
  resourceExhausted,
  unauthenticated,
} from './errors.js';
export { createLogger, type Logger } from './logger.js';
export { serviceNodeFlags } from './node-flags.js';
export type { ReadinessCheck } from './readiness.js';
export { connectStores, migrateDatabase, storeReadiness, type ConnectStoresOptions, type Stores } from './stores.js';
export { traceContextInterceptor } from './client-tracing.js';
export { pruneSpentRows, type Pruned, type SpentRows } from './housekeeping.js';
