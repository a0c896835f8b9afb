import { randomUUID } from 'node:crypto';
import pg from 'pg';
import type { Outcome } from './load.js';

/** The ledger's schema: the raw transaction writes the very tables (indexes, triggers) the service writes. */
export const LEDGER_SCHEMA = 'entitlement_ledger';
export const CONSUME_METHOD = 'punchcard.ledger.v1.LedgerService/Consume';

/**
 * The ledger's consume, reduced to its writes, as few round trips as the ledger's own triggers allow:
 * the conditional decrement (invariant 1: one statement, no read-then-write), then the entry, the
 * idempotency record with its response, and the outbox row + NOTIFY in one statement (the entry
 * trigger must see the decremented row, so it cannot share the decrement's statement).
 * BEGIN / decrement / writes / COMMIT: four round trips, where the service takes about ten.
 */
export const DECREMENT_SQL = `
update entitlements
   set paid_remaining = paid_remaining - 1,
       status = case when paid_remaining - 1 + bonus_remaining = 0 then 'EXHAUSTED' else status end,
       last_use_time = $3, version = version + 1, updated_at = $3
 where tenant_id = $1 and entitlement_id = $2 and status = 'ACTIVE' and paid_remaining >= 1
returning version, remaining, member_id, expiry_time`;

export const WRITES_SQL = `
with e as (
  insert into entries (tenant_id, entry_id, entitlement_id, kind, sessions_delta, paid_delta, bonus_delta, branch_id,
                       actor_subject, actor_roles, reason, occurred_time, record_time, request_id, balance_after,
                       in_grace, member_id, entitlement_version, expiry_time)
  values ($1, $2, $3, 'CONSUME', -1, -1, 0, $4, 'bench-raw', '{staff}', 'bench', $5, $5, $6, $7, false, $8, $9, $10)
), k as (
  insert into idempotency_keys (tenant_id, key, method, request_hash, response)
  values ($1, $6, '${CONSUME_METHOD}', $11, $12)
), o as (
  insert into outbox (id, producer, event_type, subject, tenant_id, aggregate_id, aggregate_version, data_type, payload, headers, created_at)
  values ($2, 'ledger', 'punchcard.ledger.session_consumed', $13, $1, $14, $9, 'punchcard.events.v1.LedgerEntryRecorded', $12, '{}', $5)
)
select pg_notify('punchcard_outbox', current_schema())`;

export class RawConsumer {
  readonly pool: pg.Pool;

  constructor(
    url: string,
    poolMax: number,
    private readonly tenantId: string,
    /** Stands in for the protobuf the service stores twice (outbox payload, idempotent response): same size. */
    private readonly payload: Buffer,
  ) {
    this.pool = new pg.Pool({ connectionString: url, max: poolMax, options: `-c search_path=${LEDGER_SCHEMA}`, application_name: 'bench-raw' });
  }

  /**
   * Waits until the ledger's relay has published every outbox row (the service's and the baselines'),
   * so a step does not start with the previous step's events still being published in its time.
   */
  async outboxPublished(timeoutMs = 120_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { rows } = await this.pool.query<{ n: number }>('select count(*)::int as n from outbox');
      if (rows[0]!.n === 0) return;
      if (Date.now() > deadline) throw new Error(`the ledger's outbox still holds ${rows[0]!.n} unpublished events after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async consume(entitlementId: string): Promise<Outcome> {
    const client = await this.pool.connect();
    let open = false;
    try {
      await client.query('begin');
      open = true;
      const now = new Date();
      const { rows } = await client.query<{ version: string; remaining: number; member_id: string; expiry_time: Date | null }>({
        name: 'bench_decrement',
        text: DECREMENT_SQL,
        values: [this.tenantId, entitlementId, now],
      });
      const row = rows[0];
      if (!row) {
        await client.query('rollback');
        open = false;
        return 'RESOURCE_EXHAUSTED';
      }
      const entryId = randomUUID();
      const key = randomUUID();
      await client.query({
        name: 'bench_writes',
        text: WRITES_SQL,
        values: [
          this.tenantId,
          entryId,
          entitlementId,
          'b1',
          now,
          key,
          row.remaining,
          row.member_id,
          row.version,
          row.expiry_time,
          'raw',
          this.payload,
          `punchcard.ledger.session_consumed.${this.tenantId}`,
          entitlementId,
        ],
      });
      await client.query('commit');
      open = false;
      return 'ok';
    } catch (err) {
      if (open) await client.query('rollback').catch(() => undefined);
      return `error: ${(err as Error).message}`;
    } finally {
      client.release();
    }
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}
