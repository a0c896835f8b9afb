import { randomUUID } from 'node:crypto';
import { createDb, ensureSchema, migrateToLatest } from '@punchcard/db';
import { createTestDatabase } from '@punchcard/testing';
import { expect, it } from 'vitest';
import { migrations } from '../src/store/migrations.js';
import { sourcePayments } from '../src/store/refunds.js';
import { SCHEMA, type BillingTables } from '../src/store/schema.js';

it('0005 makes each payout of before its refund’s only part, so it keeps counting against its payment and its state', async () => {
  const database = await createTestDatabase('billing_migr');
  await ensureSchema(database.url, SCHEMA);
  const { db, close } = createDb<BillingTables>({ url: database.url, schema: SCHEMA });
  try {
    const before = Object.fromEntries(Object.entries(migrations).filter(([name]) => name < '0005'));
    await migrateToLatest(db, SCHEMA, before);
    const at = new Date('2030-01-01T00:00:00Z');
    const paymentId = randomUUID();
    const entitlementId = randomUUID();
    // Written as 0004 left it: no kind column yet.
    await db
      .insertInto('payments')
      .values({
        tenant_id: 't',
        payment_id: paymentId,
        provider: 'testpay',
        provider_reference: 'co_1',
        status: 'fulfilled',
        currency: 'SGD',
        amount_minor: 30000n,
        member_id: 'm',
        definition_id: 'd',
        branch_id: 'b',
        entitlement_id: entitlementId,
        checkout_url: '',
        failure_reason: '',
        created_by: 'staff',
        create_time: at,
        capture_time: at,
        fulfil_time: at,
        next_attempt_at: null,
      } as never)
      .execute();
    const payout = { tenant_id: 't', entitlement_id: entitlementId, currency: 'SGD', provider_reference: '', paid_time: null, create_time: at };
    await db
      .insertInto('refund_payouts')
      .values([
        { ...payout, refund_id: 'in-flight', payment_id: paymentId, provider: 'testpay', amount_minor: 10000n, status: 'pending', failure_reason: '503', attempts: 2, next_attempt_at: at },
        { ...payout, refund_id: 'refused', payment_id: paymentId, provider: 'testpay', amount_minor: 5000n, status: 'failed', failure_reason: 'card closed', next_attempt_at: null },
        { ...payout, refund_id: 'unknown', payment_id: '', provider: '', amount_minor: 100n, status: 'failed', failure_reason: 'no billing payment', next_attempt_at: null },
      ])
      .execute();

    expect(await migrateToLatest(db, SCHEMA, migrations)).toEqual(Object.keys(migrations).filter((name) => name >= '0005'));
    const parts = await db.selectFrom('refund_payout_parts').selectAll().orderBy('refund_id').execute();
    expect(parts.map((p) => [p.refund_id, p.seq, p.payment_id, p.status, p.failure_reason, p.attempts, p.next_attempt_at?.toISOString() ?? null])).toEqual([
      ['in-flight', 0, paymentId, 'pending', '503', 2, at.toISOString()],
      ['refused', 0, paymentId, 'failed', 'card closed', 0, null],
    ]);
    expect((await db.selectFrom('payments').select(['kind', 'upgrade_entitlement_id']).executeTakeFirstOrThrow())).toEqual({ kind: 'purchase', upgrade_entitlement_id: '' });
    // The in-flight payout is promised out of the payment; the refused one gave nothing back.
    const sources = await db.transaction().execute((tx) => sourcePayments(tx, 't', entitlementId));
    expect(sources).toEqual([{ paymentId, provider: 'testpay', status: 'fulfilled', currency: 'SGD', amountMinor: 30000n, refundedMinor: 10000n }]);
  } finally {
    await close();
    await database.drop();
  }
});
