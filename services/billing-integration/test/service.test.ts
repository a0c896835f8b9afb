import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { BillingService, PaymentStatus } from '@punchcard/contracts/punchcard/billing/v1/billing_pb';
import { connectBus, deleteStreams } from '@punchcard/bus';
import { migrateSchema } from '@punchcard/db';
import { loadConfig, mintToken, startService, type RunningService } from '@punchcard/platform';
import { createTestDatabase, grpcJsClient, spentRowsLeftAfter, testNamespace, testNats, type GrpcJsClient, type TestDatabase } from '@punchcard/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SecretBox } from '../src/secrets.js';
import { billingService, type BillingState } from '../src/service.js';
import { providerCredentials } from '../src/store/providers.js';
import { migrations } from '../src/store/migrations.js';
import { SCHEMA } from '../src/store/schema.js';
import { startFakeLedger, type FakeLedger } from './support/fake-ledger.js';
import { startFakeTestpay, testpayWebhook } from './support/fake-testpay.js';
import { LEDGER_SECRET, newTenantId, TESTPAY_API_KEY, TESTPAY_WEBHOOK_SECRET } from './support/harness.js';

/** The service as it runs in production: startService (auth, Connect + gRPC, ops), real workers and loops. */
let database: TestDatabase;
let ledger: FakeLedger;
let testpay: Awaited<ReturnType<typeof startFakeTestpay>>;
let running: RunningService<BillingState>;
let client: GrpcJsClient<typeof BillingService>;
const logLines: string[] = [];
const secretsKey = randomBytes(32).toString('hex');
/** The environment `running` was started with. */
let env: Record<string, string>;

beforeAll(async () => {
  database = await createTestDatabase('billing_svc');
  await migrateSchema(database.url, SCHEMA, migrations);
  ledger = await startFakeLedger(LEDGER_SECRET);
  testpay = await startFakeTestpay(TESTPAY_API_KEY);
  env = {
    DATABASE_URL: database.url,
    DATABASE_SCHEMA: SCHEMA,
    NATS_URL: await testNats(),
    BUS_NAMESPACE: testNamespace('billsvc'),
    AUTH_JWT_SECRET: LEDGER_SECRET,
    HOST: '127.0.0.1',
    PORT: '0',
    OPS_PORT: '0',
    WEBHOOK_PORT: '0',
    LOG_LEVEL: 'debug',
    BILLING_SECRETS_KEY: secretsKey,
    LEDGER_URL: ledger.url,
    TESTPAY_URL: testpay.url,
    BILLING_POLL_MS: '200',
  };
  const definition = billingService();
  running = await startService(definition, loadConfig(definition, env), { logDestination: new Writable({ write: (c: Buffer, _e, done) => (logLines.push(c.toString()), done()) }) });
  client = grpcJsClient(BillingService, running.apiUrl);
});

afterAll(async () => {
  client?.close();
  await running?.stop();
  await ledger?.close();
  await testpay?.close();
  if (env) {
    // The service declared its streams in this namespace; they would outlive the run.
    const bus = await connectBus({ url: env.NATS_URL!, name: 'billing-service-test-cleanup' });
    await deleteStreams(bus.jsm, env.BUS_NAMESPACE!);
    await bus.close();
  }
  await database?.drop();
});

const token = (tenantId: string, roles: string[]) => mintToken({ tenantId, roles, subject: 'front-desk' }, LEDGER_SECRET);

describe('billing-integration over gRPC', () => {
  it('requires a bearer token', async () => {
    await expect(client.call('getPayment', { paymentId: '00000000-0000-0000-0000-000000000000' })).rejects.toMatchObject({ code: GrpcStatus.UNAUTHENTICATED });
  });

  it('takes a card checkout to an entitlement on its own: signed webhook, saga, system token to the ledger', async () => {
    const tenant = newTenantId();
    const adminToken = await token(tenant, ['admin']);
    await client.call('configurePaymentProvider', { idempotencyKey: 'p', provider: 'testpay', apiKey: TESTPAY_API_KEY, webhookSecret: TESTPAY_WEBHOOK_SECRET }, { token: adminToken });
    const staffToken = await token(tenant, ['staff']);
    const { payment } = await client.call(
      'createCheckout',
      { idempotencyKey: 'c1', memberId: 'm-1', definitionId: 'def-10pass', branchId: 'orchard', provider: 'testpay', amount: { currencyCode: 'SGD', amountMinor: 30000n } },
      { token: staffToken },
    );
    expect(payment!.checkoutUrl).toContain('testpay');
    const hook = testpayWebhook(TESTPAY_WEBHOOK_SECRET, { id: 'evt-1', type: 'checkout.captured', checkoutId: payment!.providerReference, paymentId: payment!.paymentId, amount: 30000n, currency: 'SGD' }, new Date());
    const url = `${running.state.app!.webhookUrl}/webhooks/testpay/${tenant}`;
    for (let i = 0; i < 3; i++) expect((await fetch(url, { method: 'POST', headers: hook.headers, body: hook.body })).status).toBe(200);

    await expect
      .poll(async () => (await client.call('getPayment', { paymentId: payment!.paymentId }, { token: staffToken })).payment!.status, { timeout: 10_000 })
      .toBe(PaymentStatus.FULFILLED);
    const calls = ledger.calls.filter((c) => c.request.idempotencyKey === payment!.paymentId);
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ tenantId: tenant, roles: ['system'] });

    await expect(client.call('getPayment', { paymentId: payment!.paymentId }, { token: await token(newTenantId(), ['staff']) })).rejects.toMatchObject({ code: GrpcStatus.NOT_FOUND });
    await expect(client.call('createCheckout', { idempotencyKey: 'x', memberId: '', definitionId: 'd', branchId: 'b', provider: 'manual' }, { token: staffToken })).rejects.toMatchObject({
      code: GrpcStatus.INVALID_ARGUMENT,
      details: expect.stringContaining('member_id'),
    });

    // The service's logger redacts secret-named fields even when code logs them by mistake.
    running.state.app!.ctx.logger.warn({ apiKey: TESTPAY_API_KEY, provider: { webhook_secret: TESTPAY_WEBHOOK_SECRET } }, 'careless');
    await expect.poll(() => logLines.join('').includes('careless')).toBe(true);
    const text = logLines.join('');
    expect(text).toContain('[redacted]');
    expect(text).toContain('payment fulfilled');
    for (const secret of [TESTPAY_API_KEY, TESTPAY_WEBHOOK_SECRET, secretsKey]) expect(text).not.toContain(secret);
  });

  it('refuses to start without BILLING_SECRETS_KEY, naming it', () => {
    expect(() => loadConfig(billingService(), { AUTH_DEV_MODE: '1', DATABASE_URL: database.url, NATS_URL: 'nats://127.0.0.1:4222' })).toThrow(/BILLING_SECRETS_KEY/);
  });

  it('names a key that is not 32 bytes, the previous one too', () => {
    const base = { AUTH_DEV_MODE: '1', DATABASE_URL: database.url, NATS_URL: 'nats://127.0.0.1:4222' };
    const short = randomBytes(16).toString('base64');
    expect(() => loadConfig(billingService(), { ...base, BILLING_SECRETS_KEY: short })).toThrow(/BILLING_SECRETS_KEY: must be 32 bytes, base64 or 64 hex characters/);
    expect(() => loadConfig(billingService(), { ...base, BILLING_SECRETS_KEY: secretsKey, BILLING_SECRETS_KEY_PREVIOUS: short })).toThrow(
      /BILLING_SECRETS_KEY_PREVIOUS: must be 32 bytes, base64 or 64 hex characters/,
    );
    expect(loadConfig(billingService(), { ...base, BILLING_SECRETS_KEY: secretsKey, BILLING_SECRETS_KEY_PREVIOUS: randomBytes(32).toString('base64') }).env.BILLING_SECRETS_KEY_PREVIOUS).toBeDefined();
  });
});

describe('housekeeping', () => {
  it('deletes applied event ids and idempotency keys past their retention, and keeps fresh ones', async () => {
    const left = await spentRowsLeftAfter(running.state.database.db, () => running.housekeep());
    expect(left).toEqual({ inbox: ['fresh'], idempotency_keys: ['fresh'] });
  });
});

describe('a BILLING_SECRETS_KEY rotation', () => {
  it('a pod started with a new key and the old one as BILLING_SECRETS_KEY_PREVIOUS seals the stored secrets again in its housekeeping, and says when the old key can go', async () => {
    const tenant = newTenantId();
    await client.call('configurePaymentProvider', { idempotencyKey: 'p', provider: 'testpay', apiKey: TESTPAY_API_KEY, webhookSecret: TESTPAY_WEBHOOK_SECRET }, { token: await token(tenant, ['admin']) });
    const newKey = randomBytes(32).toString('base64');
    const lines: string[] = [];
    const definition = billingService();
    const rotated = await startService(definition, loadConfig(definition, { ...env, BILLING_SECRETS_KEY: newKey, BILLING_SECRETS_KEY_PREVIOUS: secretsKey, HOUSEKEEPING_INTERVAL_MS: '0' }), {
      logDestination: new Writable({ write: (c: Buffer, _e, done) => (lines.push(c.toString()), done()) }),
    });
    try {
      await rotated.housekeep();
      const db = rotated.state.database.db;
      expect(await providerCredentials(db, SecretBox.fromEnv(newKey), tenant, 'testpay')).toEqual({ apiKey: TESTPAY_API_KEY, webhookSecret: TESTPAY_WEBHOOK_SECRET });
      await expect(providerCredentials(db, SecretBox.fromEnv(secretsKey), tenant, 'testpay')).rejects.toThrow(/cannot be decrypted/);
      const said = lines.map((l) => JSON.parse(l) as { msg: string; resealed?: number }).find((l) => l.msg.startsWith('every stored secret is sealed with BILLING_SECRETS_KEY'));
      expect(said?.resealed).toBeGreaterThanOrEqual(2);
    } finally {
      await rotated.stop();
    }
  });
});
