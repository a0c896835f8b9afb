import { startOutboxRelay, type ConsumeOutcome, type OutboxRelay, type RunningConsumer, type StreamKey } from '@punchcard/bus';
import type { Bus } from '@punchcard/bus';
type JetStreamClient = Bus['js'];
import type pg from 'pg';
import type { Logger } from 'pino';
import { billingHandlers, type BillingHandlers } from './api/handlers.js';
import type { AccountingConnector, ConnectorName } from './connectors/connector.js';
import { fileConnector } from './connectors/file.js';
import { qboConnector } from './connectors/qbo.js';
import { xeroConnector } from './connectors/xero.js';
import { DEFAULT_LIMITS, type BillingContext } from './context.js';
import { startConsumers } from './events/consumers.js';
import type { LedgerClient } from './ledger-client.js';
import type { CardProcessor } from './providers/provider.js';
import { startWebhookListener } from './providers/webhook-endpoint.js';
import type { SecretBox } from './secrets.js';
import type { Db } from './store/schema.js';
import { fulfilDue } from './workers/fulfilment.js';
import { payoutDue } from './workers/payouts.js';
import { startLoop, type Loop } from './workers/scheduler.js';
import { syncDue } from './workers/syncs.js';
import { deliverWebhooksDue } from './workers/webhooks.js';

export interface BillingOptions {
  db: Db;
  pool: pg.Pool;
  js: JetStreamClient;
  nc: Bus['nc'];
  namespace: string;
  logger: Logger;
  secrets: SecretBox;
  ledger: LedgerClient;
  processors?: readonly CardProcessor[];
  connectors?: { xeroBaseUrl?: string; qboBaseUrl?: string; exportDir?: string; fetch?: typeof fetch };
  now?: () => Date;
  random?: () => number;
  /** false: workers run only when the caller calls `runOnce` (tests drive time). */
  autoRun?: boolean;
  pollIntervalMs?: number;
  /** Where processors post webhooks; `false` for none. */
  webhookListener?: { host: string; port: number } | false;
  webhookFetch?: typeof fetch;
  allowInsecureWebhookUrls?: boolean;
  webhookStreams?: readonly StreamKey[];
  limits?: Partial<BillingContext['limits']>;
  onOutcome?: (o: ConsumeOutcome & { durable: string }) => void;
  /** Publish the outbox from this process (default true). */
  relay?: boolean;
}

export interface BillingApp {
  ctx: BillingContext;
  handlers: BillingHandlers;
  workers: Record<'fulfilment' | 'payouts' | 'syncs' | 'webhooks', Loop>;
  relay: OutboxRelay | undefined;
  webhookUrl: string | undefined;
  stop(): Promise<void>;
}

/** Builds the billing service's parts (handlers, consumers, workers, webhook listener) on shared resources. */
export async function startBilling(options: BillingOptions): Promise<BillingApp> {
  const autoRun = options.autoRun ?? true;
  const loops: Partial<BillingApp['workers']> = {};
  const connectors = new Map<ConnectorName, AccountingConnector>([
    ['xero', xeroConnector({ ...(options.connectors?.xeroBaseUrl ? { baseUrl: options.connectors.xeroBaseUrl } : {}), ...(options.connectors?.fetch ? { fetch: options.connectors.fetch } : {}) })],
    ['qbo', qboConnector({ ...(options.connectors?.qboBaseUrl ? { baseUrl: options.connectors.qboBaseUrl } : {}), ...(options.connectors?.fetch ? { fetch: options.connectors.fetch } : {}) })],
    ['csv', fileConnector('csv', { directory: options.connectors?.exportDir })],
    ['json', fileConnector('json', { directory: options.connectors?.exportDir })],
  ]);
  const ctx: BillingContext = {
    db: options.db,
    secrets: options.secrets,
    now: options.now ?? (() => new Date()),
    random: options.random ?? Math.random,
    logger: options.logger,
    processors: new Map((options.processors ?? []).map((p) => [p.name, p])),
    connectors,
    ledger: options.ledger,
    webhookFetch: options.webhookFetch ?? fetch,
    allowInsecureWebhookUrls: options.allowInsecureWebhookUrls ?? false,
    kick: (worker) => loops[worker]?.kick(),
    limits: { ...DEFAULT_LIMITS, ...options.limits },
  };
  const loopOptions = { intervalMs: options.pollIntervalMs ?? 5_000, autoRun, logger: options.logger };
  loops.fulfilment = startLoop('fulfilment', () => fulfilDue(ctx), loopOptions);
  loops.payouts = startLoop('payouts', () => payoutDue(ctx), loopOptions);
  loops.syncs = startLoop('syncs', () => syncDue(ctx), loopOptions);
  loops.webhooks = startLoop('webhooks', () => deliverWebhooksDue(ctx), loopOptions);
  const workers = loops as BillingApp['workers'];

  const stops: Array<() => Promise<void>> = [() => Promise.all(Object.values(workers).map((l) => l.stop())).then(() => undefined)];
  const stopAll = async () => {
    for (const stop of stops.reverse()) await stop().catch((err: unknown) => options.logger.error({ err: (err as Error).message }, 'stop failed'));
  };
  try {
    const relay = options.relay === false ? undefined : startOutboxRelay({ pool: options.pool, nc: options.nc, namespace: options.namespace, source: '/punchcard/billing-integration', logger: options.logger });
    if (relay) stops.push(() => relay.stop());
    const consumers: RunningConsumer[] = await startConsumers(ctx, {
      js: options.js,
      namespace: options.namespace,
      ...(options.onOutcome ? { onOutcome: options.onOutcome } : {}),
      ...(options.webhookStreams ? { webhookStreams: options.webhookStreams } : {}),
    });
    stops.push(() => Promise.all(consumers.map((c) => c.stop())).then(() => undefined));
    const listener = options.webhookListener === false ? undefined : await startWebhookListener(ctx, options.webhookListener ?? { host: '0.0.0.0', port: 7305 });
    if (listener) stops.push(() => listener.close());
    return { ctx, handlers: billingHandlers(ctx), workers, relay, webhookUrl: listener?.url, stop: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
