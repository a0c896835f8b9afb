import type { Logger } from 'pino';
import type { AccountingConnector, ConnectorName } from './connectors/connector.js';
import type { LedgerClient } from './ledger-client.js';
import type { CardProcessor } from './providers/provider.js';
import type { SecretBox } from './secrets.js';
import type { Db } from './store/schema.js';

/** Everything handlers, consumers and workers share; built once by the app. */
export interface BillingContext {
  db: Db;
  secrets: SecretBox;
  /** The service clock; tests inject one they control. */
  now: () => Date;
  /** Jitter source for backoff; tests pass a constant. */
  random: () => number;
  logger: Logger;
  processors: ReadonlyMap<string, CardProcessor>;
  connectors: ReadonlyMap<ConnectorName, AccountingConnector>;
  ledger: LedgerClient;
  /** fetch for outbound webhooks (tests may wrap it). */
  webhookFetch: typeof fetch;
  /** Allow http:// subscription URLs on loopback (local development, tests). */
  allowInsecureWebhookUrls: boolean;
  /** Wakes a worker after a change it should act on; no-op when workers are driven by hand (tests). */
  kick: (worker: 'fulfilment' | 'payouts' | 'syncs' | 'webhooks') => void;
  limits: {
    /** Sync attempts before giving up and alerting (billing.sync_failed). */
    syncMaxAttempts: number;
    payoutMaxAttempts: number;
    webhookMaxAttempts: number;
    /** How long a claimed piece of work is leased to one worker before another may take it. */
    leaseMs: number;
  };
}

export const DEFAULT_LIMITS: BillingContext['limits'] = { syncMaxAttempts: 8, payoutMaxAttempts: 10, webhookMaxAttempts: 8, leaseMs: 60_000 };

export const PRODUCER = 'billing';
