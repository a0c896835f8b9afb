import { fromBinary } from '@bufbuild/protobuf';
import { JournalEntrySchema } from '@punchcard/contracts/punchcard/revenue/v1/revenue_pb';
import { inTransaction } from '@punchcard/db';
import type { Selectable } from 'kysely';
import { nextAttemptAt, SYNC_BACKOFF } from '../domain/backoff.js';
import { InvalidField } from '../domain/errors.js';
import { UnmappedAccounts } from '../domain/journal.js';
import type { BillingContext } from '../context.js';
import { DeliveryError, isConnectorName } from '../connectors/connector.js';
import { journalFromProto } from '../convert.js';
import { syncFailed } from '../events/builders.js';
import { connectorSettings } from '../store/connectors.js';
import type { JournalSyncsTable } from '../store/schema.js';
import { drainDue } from './scheduler.js';

type SyncRow = Selectable<JournalSyncsTable>;
export type SyncOutcome = { delivered: true; externalId: string } | { delivered: false; error: string; gaveUp: boolean };

/**
 * Pushes due journal entries to their connectors. The `journal_syncs` row is the local delivered
 * record (one per entry and connector): once delivered it is never sent again; while pending it is
 * leased to one worker per attempt; the connector's own idempotency key (the journal entry id)
 * covers an attempt whose outcome we never learnt. Returns how many it tried.
 */
export function syncDue(ctx: BillingContext, limit = 50): Promise<number> {
  return drainDue(limit, () => claim(ctx), (row) => deliverOne(ctx, row));
}

async function claim(ctx: BillingContext, only?: { tenantId: string; journalEntryId: string; connector: string }): Promise<SyncRow | undefined> {
  const now = ctx.now();
  return inTransaction(ctx.db, async (tx) => {
    let q = tx.selectFrom('journal_syncs').selectAll().where('status', '=', 'pending');
    q = only
      ? q.where('tenant_id', '=', only.tenantId).where('journal_entry_id', '=', only.journalEntryId).where('connector', '=', only.connector)
      : q.where('next_attempt_at', '<=', now).orderBy('next_attempt_at');
    const row = await q.limit(1).forUpdate().skipLocked().executeTakeFirst();
    if (!row) return undefined;
    return tx
      .updateTable('journal_syncs')
      .set({ next_attempt_at: new Date(now.getTime() + ctx.limits.leaseMs), attempts: row.attempts + 1, last_attempt_at: now })
      .where('tenant_id', '=', row.tenant_id)
      .where('journal_entry_id', '=', row.journal_entry_id)
      .where('connector', '=', row.connector)
      .returningAll()
      .executeTakeFirstOrThrow();
  });
}

/**
 * RetrySync: makes a pending or given-up sync due now and tries it at once. Undefined when there is
 * no such sync; a delivered one reports delivered without sending again.
 */
export async function retrySync(ctx: BillingContext, key: { tenantId: string; journalEntryId: string; connector: string }): Promise<SyncOutcome | undefined> {
  const current = await ctx.db
    .selectFrom('journal_syncs')
    .selectAll()
    .where('tenant_id', '=', key.tenantId)
    .where('journal_entry_id', '=', key.journalEntryId)
    .where('connector', '=', key.connector)
    .executeTakeFirst();
  if (!current) return undefined;
  if (current.status === 'delivered') return { delivered: true, externalId: current.external_id };
  await ctx.db
    .updateTable('journal_syncs')
    .set({ status: 'pending', next_attempt_at: ctx.now() })
    .where('tenant_id', '=', key.tenantId)
    .where('journal_entry_id', '=', key.journalEntryId)
    .where('connector', '=', key.connector)
    .where('status', '<>', 'delivered')
    .execute();
  const row = await claim(ctx, key);
  if (!row) return { delivered: false, error: 'another worker is delivering it right now', gaveUp: false };
  return deliverOne(ctx, row);
}

async function deliverOne(ctx: BillingContext, row: SyncRow): Promise<SyncOutcome> {
  const log = ctx.logger.child({ tenant_id: row.tenant_id, journal_entry_id: row.journal_entry_id, connector: row.connector });
  let result: { externalId: string } | { error: string; retryable: boolean };
  try {
    const connector = isConnectorName(row.connector) ? ctx.connectors.get(row.connector) : undefined;
    if (!connector) throw new DeliveryError(`connector ${row.connector} is not available in this deployment`, false);
    const settings = await connectorSettings(ctx.db, ctx.secrets, row.tenant_id, row.connector);
    if (!settings) throw new DeliveryError(`connector ${row.connector} is not configured`, false);
    const stored = await ctx.db.selectFrom('journal_entries').select('entry').where('tenant_id', '=', row.tenant_id).where('journal_entry_id', '=', row.journal_entry_id).executeTakeFirstOrThrow();
    const journal = journalFromProto(fromBinary(JournalEntrySchema, stored.entry));
    result = await connector.deliver(journal, settings);
  } catch (err) {
    const retryable = err instanceof DeliveryError ? err.retryable : !(err instanceof UnmappedAccounts || err instanceof InvalidField);
    result = { error: `${row.connector}: ${(err as Error).message}`.slice(0, 1000), retryable };
  }
  const now = ctx.now();
  return inTransaction(ctx.db, async (tx): Promise<SyncOutcome> => {
    const base = tx.updateTable('journal_syncs').where('tenant_id', '=', row.tenant_id).where('journal_entry_id', '=', row.journal_entry_id).where('connector', '=', row.connector).where('status', '=', 'pending');
    if ('externalId' in result) {
      await base.set({ status: 'delivered', external_id: result.externalId, delivered_at: now, next_attempt_at: null, last_error: '' }).execute();
      log.info({ external_id: result.externalId, attempt: row.attempts }, 'journal entry delivered');
      return { delivered: true, externalId: result.externalId };
    }
    if (result.retryable && row.attempts < ctx.limits.syncMaxAttempts) {
      const at = nextAttemptAt(now, SYNC_BACKOFF, row.attempts, ctx.random());
      await base.set({ last_error: result.error, next_attempt_at: at }).execute();
      log.warn({ err: result.error, attempt: row.attempts, next_attempt_at: at }, 'journal sync failed; will retry');
      return { delivered: false, error: result.error, gaveUp: false };
    }
    const updated = await base.set({ status: 'failed', last_error: result.error, next_attempt_at: null }).executeTakeFirst();
    if (updated.numUpdatedRows > 0n) {
      await syncFailed(tx, { tenantId: row.tenant_id, journalEntryId: row.journal_entry_id, connector: row.connector, error: result.error }, now);
    }
    log.error({ err: result.error, attempt: row.attempts }, 'journal sync gave up; billing.sync_failed published');
    return { delivered: false, error: result.error, gaveUp: true };
  });
}
