import { z } from 'zod';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** How bearer tokens are verified. */
export type AuthConfig =
  | { mode: 'secret'; secret: string; issuer?: string; audience?: string }
  | { mode: 'jwks'; jwksUrl: string; issuer?: string; audience?: string }
  | { mode: 'dev' };

/** Settings every service has, read from the environment by {@link loadConfig}. */
export interface PlatformConfig {
  serviceName: string;
  /** Interface both servers bind to. */
  host: string;
  /** Connect + gRPC + gRPC-Web (h2c and HTTP/1.1 on one port); 0 picks a free port. */
  port: number;
  /** /healthz /readyz /metrics; 0 picks a free port. */
  opsPort: number;
  databaseUrl?: string;
  /** Postgres schema the service owns; defaults to its name in snake_case. */
  databaseSchema: string;
  /** Prepared statements (default on); off behind a transaction-mode pooler. */
  databasePreparedStatements: boolean;
  natsUrl?: string;
  /** Prefix of stream and subject names; '' in production. */
  busNamespace: string;
  auth: AuthConfig;
  logLevel: LogLevel;
  otlpEndpoint?: string;
  /** How long in-flight RPCs may run after SIGTERM before they are cancelled. */
  shutdownGraceMs: number;
  /** Time between rounds of housekeeping (deleting rows that served their purpose); 0 = none. */
  housekeepingIntervalMs: number;
}

/** Platform settings plus the service's own variables, parsed by the definition's `env` schema. */
export type ServiceConfig<Env = {}> = PlatformConfig & { env: Env };

/** A dependency whose URL must be configured for the service to start. */
export type Requirement = 'database' | 'nats';

/** What {@link loadConfig} needs from a service definition. */
export interface ConfigSource<Env> {
  name: string;
  defaultPorts: { api: number; ops: number };
  requires?: readonly Requirement[];
  env?: z.ZodType<Env>;
}

/** Thrown at start when the environment is invalid; the message names every bad variable. */
export class ConfigError extends Error {
  constructor(
    readonly service: string,
    readonly problems: ReadonlyArray<{ variable: string; message: string }>,
  ) {
    super(`invalid configuration for ${service}:\n${problems.map((p) => `  ${p.variable}: ${p.message}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

// Unset and empty are the same thing in env files and Kubernetes manifests.
const optional = <T extends z.ZodType>(schema: T) =>
  z.preprocess((v) => (typeof v === 'string' && v.trim() === '' ? undefined : v), schema.optional());

const port = () =>
  optional(
    z.coerce
      .number({ error: 'must be a port number (0-65535)' })
      .int({ error: 'must be a port number (0-65535)' })
      .min(0, { error: 'must be a port number (0-65535)' })
      .max(65535, { error: 'must be a port number (0-65535)' }),
  );

const url = (protocols: RegExp, what: string) =>
  optional(z.url({ protocol: protocols, error: `must be a ${what} URL` }));

const milliseconds = () =>
  optional(
    z.coerce.number({ error: 'must be a number of milliseconds' }).int({ error: 'must be a whole number of milliseconds' }).min(0, { error: 'must not be negative' }),
  );

const flag = optional(z.enum(['1', '0', 'true', 'false'], { error: 'must be 1, 0, true or false' })).transform(
  (v) => v === '1' || v === 'true',
);

const platformEnv = z.object({
  SERVICE_NAME: optional(z.string()),
  HOST: optional(z.string()),
  PORT: port(),
  OPS_PORT: port(),
  DATABASE_URL: url(/^postgres(ql)?$/, 'postgres://'),
  DATABASE_SCHEMA: optional(z.string().regex(/^[a-z_][a-z0-9_]*$/, { error: 'must be a lower-case SQL identifier' })),
  DATABASE_PREPARED_STATEMENTS: flag,
  NATS_URL: optional(z.string().regex(/^(nats|tls|wss?):\/\/\S+$/, { error: 'must be a nats:// URL (comma-separated for a cluster)' })),
  BUS_NAMESPACE: optional(z.string().regex(/^[a-z0-9]*$/, { error: 'must be lower-case letters and digits' })),
  AUTH_JWT_SECRET: optional(z.string().min(32, { error: 'must be at least 32 characters' })),
  AUTH_JWKS_URL: url(/^https?$/, 'http(s)://'),
  AUTH_JWT_ISSUER: optional(z.string()),
  AUTH_JWT_AUDIENCE: optional(z.string()),
  AUTH_DEV_MODE: flag,
  NODE_ENV: optional(z.string()),
  LOG_LEVEL: optional(z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` })),
  OTEL_EXPORTER_OTLP_ENDPOINT: url(/^https?$/, 'http(s)://'),
  SHUTDOWN_GRACE_MS: milliseconds(),
  HOUSEKEEPING_INTERVAL_MS: milliseconds(),
});

/**
 * Reads and validates the service's configuration from `env` (default `process.env`).
 * Throws a {@link ConfigError} naming every missing or malformed variable, so a bad deploy
 * fails at start with one readable message rather than at the first request.
 */
export function loadConfig<E = {}>(definition: ConfigSource<E>, env: Env = process.env): ServiceConfig<E> {
  const problems: Array<{ variable: string; message: string }> = [];
  const parsed = platformEnv.safeParse(env);
  if (!parsed.success) problems.push(...parsed.error.issues.map((i) => toProblem(i, env)));

  let serviceEnv: E = {} as E;
  if (definition.env) {
    // Unset and empty mean the same for the service's own variables too: an empty value takes the default.
    const own = definition.env.safeParse(Object.fromEntries(Object.entries(env).filter(([, v]) => (v ?? '').trim() !== '')));
    if (own.success) serviceEnv = own.data;
    else problems.push(...own.error.issues.map((i) => toProblem(i, env)));
  }

  // Checks across variables look at presence only, so they report even when a value is malformed.
  const isSet = (name: string) => (env[name] ?? '').trim() !== '';
  const requires = new Set(definition.requires ?? []);
  if (requires.has('database') && !isSet('DATABASE_URL')) problems.push({ variable: 'DATABASE_URL', message: 'is required' });
  if (requires.has('nats') && !isSet('NATS_URL')) problems.push({ variable: 'NATS_URL', message: 'is required' });
  problems.push(...authProblems(env, isSet));

  if (problems.length > 0 || !parsed.success) throw new ConfigError(definition.name, problems);
  const v = parsed.data;
  return {
    serviceName: v.SERVICE_NAME ?? definition.name,
    host: v.HOST ?? '0.0.0.0',
    port: v.PORT ?? definition.defaultPorts.api,
    opsPort: v.OPS_PORT ?? definition.defaultPorts.ops,
    ...(v.DATABASE_URL ? { databaseUrl: v.DATABASE_URL } : {}),
    databaseSchema: v.DATABASE_SCHEMA ?? definition.name.replace(/[^a-z0-9]+/gi, '_').toLowerCase(),
    databasePreparedStatements: isSet('DATABASE_PREPARED_STATEMENTS') ? v.DATABASE_PREPARED_STATEMENTS : true,
    ...(v.NATS_URL ? { natsUrl: v.NATS_URL } : {}),
    busNamespace: v.BUS_NAMESPACE ?? '',
    auth: authFrom(v),
    logLevel: v.LOG_LEVEL ?? 'info',
    ...(v.OTEL_EXPORTER_OTLP_ENDPOINT ? { otlpEndpoint: v.OTEL_EXPORTER_OTLP_ENDPOINT } : {}),
    shutdownGraceMs: v.SHUTDOWN_GRACE_MS ?? 10_000,
    housekeepingIntervalMs: v.HOUSEKEEPING_INTERVAL_MS ?? 3_600_000,
    env: serviceEnv,
  };
}

function authProblems(env: Env, isSet: (name: string) => boolean): Array<{ variable: string; message: string }> {
  if (env.AUTH_DEV_MODE === '1' || env.AUTH_DEV_MODE === 'true') {
    if (isSet('AUTH_JWT_SECRET') || isSet('AUTH_JWKS_URL')) {
      return [{ variable: 'AUTH_DEV_MODE', message: 'cannot be combined with AUTH_JWT_SECRET or AUTH_JWKS_URL' }];
    }
    if (env.NODE_ENV === 'production') return [{ variable: 'AUTH_DEV_MODE', message: 'is refused when NODE_ENV=production' }];
    return [];
  }
  if (isSet('AUTH_JWT_SECRET') && isSet('AUTH_JWKS_URL')) {
    return [{ variable: 'AUTH_JWT_SECRET', message: 'set either AUTH_JWT_SECRET or AUTH_JWKS_URL, not both' }];
  }
  if (!isSet('AUTH_JWT_SECRET') && !isSet('AUTH_JWKS_URL')) {
    return [{ variable: 'AUTH_JWT_SECRET', message: 'is required (or AUTH_JWKS_URL, or AUTH_DEV_MODE=1 for local development)' }];
  }
  return [];
}

function authFrom(v: z.infer<typeof platformEnv>): AuthConfig {
  const claims = { ...(v.AUTH_JWT_ISSUER ? { issuer: v.AUTH_JWT_ISSUER } : {}), ...(v.AUTH_JWT_AUDIENCE ? { audience: v.AUTH_JWT_AUDIENCE } : {}) };
  if (v.AUTH_DEV_MODE) return { mode: 'dev' };
  if (v.AUTH_JWT_SECRET) return { mode: 'secret', secret: v.AUTH_JWT_SECRET, ...claims };
  if (v.AUTH_JWKS_URL) return { mode: 'jwks', jwksUrl: v.AUTH_JWKS_URL, ...claims };
  throw new Error('unreachable: authProblems accepted a configuration without a verifier');
}

function toProblem(issue: z.core.$ZodIssue, env: Env): { variable: string; message: string } {
  const variable = issue.path.length > 0 ? issue.path.map(String).join('.') : '(environment)';
  const raw = env[String(issue.path[0])];
  const message = raw === undefined || raw.trim() === '' ? 'is required' : issue.message;
  return { variable, message };
}
