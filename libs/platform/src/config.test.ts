import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ConfigError, loadConfig, type ConfigSource } from './config.js';

const ledger: ConfigSource<{}> = { name: 'entitlement-ledger', defaultPorts: { api: 7102, ops: 7202 }, requires: ['database', 'nats'] };
const base = { DATABASE_URL: 'postgres://ledger@db:5432/punchcard', NATS_URL: 'nats://nats:4222', AUTH_JWT_SECRET: 's'.repeat(32) };

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.map((p) => `${p.variable}: ${p.message}`);
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('reads an empty service variable as unset, so it takes its default', () => {
    const withPort: ConfigSource<{ WEBHOOK_PORT: number }> = { ...ledger, env: z.object({ WEBHOOK_PORT: z.coerce.number().int().default(7305) }) };
    expect(loadConfig(withPort, { ...base, WEBHOOK_PORT: '' }).env.WEBHOOK_PORT).toBe(7305);
    expect(loadConfig(withPort, { ...base, WEBHOOK_PORT: '9000' }).env.WEBHOOK_PORT).toBe(9000);
  });

  it('fills defaults from the definition', () => {
    const config = loadConfig(ledger, base);
    expect(config).toMatchObject({
      serviceName: 'entitlement-ledger',
      host: '0.0.0.0',
      port: 7102,
      opsPort: 7202,
      databaseSchema: 'entitlement_ledger',
      databasePreparedStatements: true,
      busNamespace: '',
      auth: { mode: 'secret', secret: 's'.repeat(32) },
      logLevel: 'info',
      shutdownGraceMs: 10_000,
      housekeepingIntervalMs: 3_600_000,
    });
    expect(config.otlpEndpoint).toBeUndefined();
  });

  it('reads every platform variable', () => {
    const config = loadConfig(ledger, {
      ...base,
      SERVICE_NAME: 'ledger-eu',
      PORT: '9000',
      OPS_PORT: '0',
      DATABASE_SCHEMA: 'ledger_eu',
      DATABASE_PREPARED_STATEMENTS: '0',
      BUS_NAMESPACE: 'staging',
      LOG_LEVEL: 'debug',
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
      SHUTDOWN_GRACE_MS: '2500',
      HOUSEKEEPING_INTERVAL_MS: '0',
      AUTH_JWT_ISSUER: 'https://id.example',
    });
    expect(config).toMatchObject({
      serviceName: 'ledger-eu',
      port: 9000,
      opsPort: 0,
      databaseSchema: 'ledger_eu',
      databasePreparedStatements: false,
      busNamespace: 'staging',
      logLevel: 'debug',
      otlpEndpoint: 'http://collector:4318',
      shutdownGraceMs: 2500,
      housekeepingIntervalMs: 0,
      auth: { mode: 'secret', issuer: 'https://id.example' },
    });
  });

  it('names every missing or malformed variable at once', () => {
    expect(problemsOf(() => loadConfig(ledger, { PORT: '80a', LOG_LEVEL: 'loud', AUTH_JWT_SECRET: 'short', SHUTDOWN_GRACE_MS: '-1', HOUSEKEEPING_INTERVAL_MS: 'hourly' }))).toEqual([
      'PORT: must be a port number (0-65535)',
      'AUTH_JWT_SECRET: must be at least 32 characters',
      'LOG_LEVEL: must be one of fatal, error, warn, info, debug, trace, silent',
      'SHUTDOWN_GRACE_MS: must not be negative',
      'HOUSEKEEPING_INTERVAL_MS: must be a number of milliseconds',
      'DATABASE_URL: is required',
      'NATS_URL: is required',
    ]);
    expect(problemsOf(() => loadConfig(ledger, { ...base, DATABASE_URL: 'mysql://db/x', NATS_URL: 'localhost:4222' }))).toEqual([
      'DATABASE_URL: must be a postgres:// URL',
      'NATS_URL: must be a nats:// URL (comma-separated for a cluster)',
    ]);
  });

  it('treats empty values as unset', () => {
    expect(problemsOf(() => loadConfig(ledger, { ...base, DATABASE_URL: '', PORT: '' }))).toEqual(['DATABASE_URL: is required']);
  });

  it('needs exactly one way to verify tokens', () => {
    const { AUTH_JWT_SECRET: _, ...noAuth } = base;
    expect(problemsOf(() => loadConfig(ledger, noAuth))).toEqual([
      'AUTH_JWT_SECRET: is required (or AUTH_JWKS_URL, or AUTH_DEV_MODE=1 for local development)',
    ]);
    expect(loadConfig(ledger, { ...noAuth, AUTH_JWKS_URL: 'https://id.example/jwks.json' }).auth).toEqual({
      mode: 'jwks',
      jwksUrl: 'https://id.example/jwks.json',
    });
    expect(problemsOf(() => loadConfig(ledger, { ...base, AUTH_JWKS_URL: 'https://id.example/jwks.json' }))).toEqual([
      'AUTH_JWT_SECRET: set either AUTH_JWT_SECRET or AUTH_JWKS_URL, not both',
    ]);
    expect(loadConfig(ledger, { ...noAuth, AUTH_DEV_MODE: '1' }).auth).toEqual({ mode: 'dev' });
    expect(problemsOf(() => loadConfig(ledger, { ...base, AUTH_DEV_MODE: '1' }))).toEqual([
      'AUTH_DEV_MODE: cannot be combined with AUTH_JWT_SECRET or AUTH_JWKS_URL',
    ]);
    expect(problemsOf(() => loadConfig(ledger, { ...noAuth, AUTH_DEV_MODE: 'true', NODE_ENV: 'production' }))).toEqual([
      'AUTH_DEV_MODE: is refused when NODE_ENV=production',
    ]);
  });

  it('validates the service’s own variables with the platform’s', () => {
    const billing = { ...ledger, env: z.object({ WEBHOOK_SIGNING_KEY: z.string().min(16), PAYOUT_BATCH: z.coerce.number().int().default(50) }) };
    expect(loadConfig(billing, { ...base, WEBHOOK_SIGNING_KEY: 'k'.repeat(16) }).env).toEqual({ WEBHOOK_SIGNING_KEY: 'k'.repeat(16), PAYOUT_BATCH: 50 });
    expect(problemsOf(() => loadConfig(billing, { ...base, PORT: 'x' }))).toEqual([
      'PORT: must be a port number (0-65535)',
      'WEBHOOK_SIGNING_KEY: is required',
    ]);
  });
});
