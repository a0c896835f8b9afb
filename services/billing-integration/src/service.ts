import type { ConsumeOutcome } from '@punchcard/bus';
import { BillingService } from '@punchcard/contracts/punchcard/billing/v1/billing_pb';
import { connectStores, defineService, DEV_JWT_SECRET, migrateDatabase, mintToken, pruneSpentRows, storeReadiness, type ServiceDefinition, type Stores } from '@punchcard/platform';
import { z } from 'zod';
import { billingServiceImpl } from './api/connect.js';
import { Code, ConnectError } from '@connectrpc/connect';
import { startBilling, type BillingApp } from './app.js';
import { ledgerClient } from './ledger-client.js';
import { testpayProcessor } from './providers/testpay.js';
import { keyBytes, REDACT_PATHS, SecretBox } from './secrets.js';
import { migrations } from './store/migrations.js';
import { resealSecrets } from './store/reseal.js';
import type { BillingTables } from './store/schema.js';

const optional = <T extends z.ZodType>(schema: T) => z.preprocess((v) => (typeof v === 'string' && v.trim() === '' ? undefined : v), schema.optional());

const secretsKey = () =>
  z
    .string({ error: 'is required: 32 random bytes, base64 or hex' })
    .refine((v) => keyBytes(v).length === 32, { error: 'must be 32 bytes, base64 or 64 hex characters' });

/** billing-integration's own environment. */
export const billingEnv = z.object({
  /** 32 bytes (base64 or 64 hex): the AES-256-GCM key for provider keys, connector tokens and webhook secrets. */
  BILLING_SECRETS_KEY: secretsKey(),
  /**
   * The key BILLING_SECRETS_KEY replaced, while rotating: secrets it sealed still open, and each
   * housekeeping round seals them again with BILLING_SECRETS_KEY (deploy/README, "Rotate secrets").
   */
  BILLING_SECRETS_KEY_PREVIOUS: optional(secretsKey()),
  /** The entitlement ledger's API: Purchase, and GetEntitlement, QuoteUpgrade and Upgrade for upgrade checkouts. */
  LEDGER_URL: z.url({ protocol: /^https?$/, error: 'must be an http(s):// URL' }).default('http://127.0.0.1:7102'),
  /** HS256 secret for the system tokens billing mints for the ledger; default AUTH_JWT_SECRET (or the dev secret in dev mode). */
  SYSTEM_TOKEN_SECRET: optional(z.string().min(32, { error: 'must be at least 32 characters' })),
  /** Port processors post webhooks to (POST /webhooks/<provider>/<tenant_id>). */
  WEBHOOK_PORT: z.coerce.number().int().min(0).max(65535).default(7305),
  /** Base URL of the test card processor's API; unset = the adapter is not offered. */
  TESTPAY_URL: optional(z.url({ protocol: /^https?$/ })),
  XERO_BASE_URL: optional(z.url({ protocol: /^https?$/ })),
  QBO_BASE_URL: optional(z.url({ protocol: /^https?$/ })),
  /** Directory the csv/json connectors write into. */
  BILLING_EXPORT_DIR: optional(z.string()),
  /** Allow http:// webhook subscriptions to loopback (local development). */
  WEBHOOKS_ALLOW_INSECURE_LOOPBACK: optional(z.enum(['1', '0', 'true', 'false'])).transform((v) => v === '1' || v === 'true'),
  /** Worker sweep interval (resumes due fulfilments, payouts, syncs, webhook retries). */
  BILLING_POLL_MS: z.coerce.number().int().min(50).default(5000),
});
export type BillingEnv = z.infer<typeof billingEnv>;

export interface BillingState extends Stores<BillingTables> {
  secrets: SecretBox;
  /** Set once the start hook ran. */
  app?: BillingApp;
}

export interface BillingServiceOptions {
  /** The service clock; tests inject one. */
  now?: () => Date;
  /** Workers run on their own (default); false = only when a test calls runOnce. */
  autoRun?: boolean;
  onOutcome?: (o: ConsumeOutcome & { durable: string }) => void;
}

/**
 * billing-integration: BillingService, the processor webhook listener, the purchase saga, refund
 * payouts, accounting connectors and outbound webhooks.
 */
export function billingService(options: BillingServiceOptions = {}): ServiceDefinition<BillingState, BillingEnv> {
  return defineService<BillingState, BillingEnv>({
    name: 'billing-integration',
    defaultPorts: { api: 7105, ops: 7205 },
    requires: ['database', 'nats'],
    env: billingEnv,

    async setup(ctx) {
      return { ...(await connectStores<BillingTables>(ctx)), secrets: SecretBox.fromEnv(ctx.config.env.BILLING_SECRETS_KEY, ctx.config.env.BILLING_SECRETS_KEY_PREVIOUS) };
    },

    register(router, ctx) {
      // The handlers belong to the app, started once the API listens; no RPC is served before readiness.
      router.service(
        BillingService,
        billingServiceImpl(() => {
          if (!ctx.state.app) throw new ConnectError('billing-integration is starting', Code.Unavailable);
          return ctx.state.app.handlers;
        }),
      );
    },

    readiness: (ctx) => storeReadiness(ctx.state),

    async start(ctx) {
      const env = ctx.config.env;
      const auth = ctx.config.auth;
      const tokenSecret = env.SYSTEM_TOKEN_SECRET ?? (auth.mode === 'secret' ? auth.secret : auth.mode === 'dev' ? DEV_JWT_SECRET : undefined);
      if (!tokenSecret) throw new Error('SYSTEM_TOKEN_SECRET is required with AUTH_JWKS_URL: billing mints system tokens for the ledger');
      const logger = ctx.logger.child({ component: 'billing' }, { redact: { paths: REDACT_PATHS, censor: '[redacted]' } });
      const ledger = ledgerClient({
        baseUrl: env.LEDGER_URL,
        mintSystemToken: (tenantId) => mintToken({ tenantId, roles: ['system'], subject: 'billing-integration', expiresInSeconds: 300 }, tokenSecret),
      });
      const app = await startBilling({
        db: ctx.state.database.db,
        pool: ctx.state.database.pool,
        js: ctx.state.bus.js,
        nc: ctx.state.bus.nc,
        namespace: ctx.config.busNamespace,
        logger,
        secrets: ctx.state.secrets,
        ledger,
        processors: env.TESTPAY_URL ? [testpayProcessor({ baseUrl: env.TESTPAY_URL })] : [],
        connectors: {
          ...(env.XERO_BASE_URL ? { xeroBaseUrl: env.XERO_BASE_URL } : {}),
          ...(env.QBO_BASE_URL ? { qboBaseUrl: env.QBO_BASE_URL } : {}),
          ...(env.BILLING_EXPORT_DIR ? { exportDir: env.BILLING_EXPORT_DIR } : {}),
        },
        webhookListener: { host: ctx.config.host, port: env.WEBHOOK_PORT },
        allowInsecureWebhookUrls: env.WEBHOOKS_ALLOW_INSECURE_LOOPBACK,
        pollIntervalMs: env.BILLING_POLL_MS,
        ...(options.now ? { now: options.now } : {}),
        ...(options.autoRun !== undefined ? { autoRun: options.autoRun } : {}),
        ...(options.onOutcome ? { onOutcome: options.onOutcome } : {}),
      });
      ctx.state.app = app;
      logger.info({ webhook_url: app.webhookUrl }, 'billing started');
      return () => app.stop();
    },

    async housekeep(ctx) {
      const { database, secrets } = ctx.state;
      if (secrets.rotating) {
        const { resealed, unreadable, done } = await resealSecrets(database.db, secrets);
        if (unreadable > 0) ctx.logger.warn({ unreadable }, 'stored secrets that neither BILLING_SECRETS_KEY nor BILLING_SECRETS_KEY_PREVIOUS opens: configure them again');
        ctx.logger.info(
          { resealed },
          done
            ? 'every stored secret is sealed with BILLING_SECRETS_KEY: once every pod runs with it, remove BILLING_SECRETS_KEY_PREVIOUS'
            : 'secrets are still being sealed with BILLING_SECRETS_KEY_PREVIOUS (pods with the old key?); the next round seals them again',
        );
      }
      return pruneSpentRows(database.db, ['inbox', 'idempotencyKeys']);
    },

    migrate: (ctx) => migrateDatabase(ctx, migrations),
  });
}
