import { randomBytes, randomUUID } from 'node:crypto';
import { createDb, ensureSchema, migrateToLatest, type Database } from '@punchcard/db';
import { createTestDatabase, type TestDatabase } from '@punchcard/testing';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SecretBox } from '../src/secrets.js';
import { accessTokenPurpose, connectorSettings } from '../src/store/connectors.js';
import { migrations } from '../src/store/migrations.js';
import { providerCredentials, saveProviderCredentials } from '../src/store/providers.js';
import { resealSecrets } from '../src/store/reseal.js';
import { SCHEMA, type BillingTables } from '../src/store/schema.js';
import { subscriptionSecret, webhookSecretPurpose } from '../src/store/webhooks.js';

const at = new Date('2030-01-01T00:00:00Z');

describe('resealSecrets (a BILLING_SECRETS_KEY rotation)', () => {
  let database: TestDatabase;
  let handle: Database<BillingTables>;

  beforeAll(async () => {
    database = await createTestDatabase('billing_reseal');
    await ensureSchema(database.url, SCHEMA);
    handle = createDb<BillingTables>({ url: database.url, schema: SCHEMA });
    await migrateToLatest(handle.db, SCHEMA, migrations);
  });
  beforeEach(async () => {
    for (const table of ['payment_providers', 'connectors', 'webhook_subscriptions'] as const) await handle.db.deleteFrom(table).execute();
  });
  afterAll(async () => {
    await handle?.close();
    await database?.drop();
  });

  it('seals every stored secret again with the new key, so the old one can go, and leaves fresh ones alone', async () => {
    const { db } = handle;
    const oldKey = randomBytes(32);
    const newKey = randomBytes(32);
    const before = new SecretBox(oldKey);
    const tenantId = `t-${randomUUID()}`;
    const subscriptionId = randomUUID();
    await db.transaction().execute((tx) => saveProviderCredentials(tx, before, tenantId, 'testpay', { apiKey: 'sk_1', webhookSecret: 'whsec_1' }, at));
    await db
      .insertInto('connectors')
      .values([
        { tenant_id: tenantId, connector: 'xero', enabled: true, account_codes: JSON.stringify({}), external_tenant_id: 'x', access_token_enc: before.encrypt('xero_token', { tenantId, purpose: accessTokenPurpose('xero') }), update_time: at },
        // A connector without a token has nothing to reseal.
        { tenant_id: tenantId, connector: 'csv', enabled: true, account_codes: JSON.stringify({}), external_tenant_id: '', access_token_enc: null, update_time: at },
      ])
      .execute();
    await db
      .insertInto('webhook_subscriptions')
      .values({ tenant_id: tenantId, subscription_id: subscriptionId, url: 'https://example.test/hook', event_types: [], active: true, secret_enc: before.encrypt('sign_1', { tenantId, purpose: webhookSecretPurpose(subscriptionId) }), create_time: at })
      .execute();

    const rotating = new SecretBox(newKey, [oldKey]);
    expect(await resealSecrets(db, rotating)).toEqual({ resealed: 4, unreadable: 0, done: true });
    expect(await resealSecrets(db, rotating)).toEqual({ resealed: 0, unreadable: 0, done: true });

    const after = new SecretBox(newKey);
    expect(await providerCredentials(db, after, tenantId, 'testpay')).toEqual({ apiKey: 'sk_1', webhookSecret: 'whsec_1' });
    expect((await connectorSettings(db, after, tenantId, 'xero'))?.accessToken).toBe('xero_token');
    expect((await connectorSettings(db, after, tenantId, 'csv'))?.accessToken).toBe('');
    expect(await subscriptionSecret(db, after, tenantId, subscriptionId)).toBe('sign_1');
    // Without a previous key there is nothing to walk.
    expect(await resealSecrets(db, after)).toEqual({ resealed: 0, unreadable: 0, done: true });
  });

  it('leaves a secret neither key opens as it is, counts it, and reseals the rest', async () => {
    const { db } = handle;
    const oldKey = randomBytes(32);
    const tenantId = `t-${randomUUID()}`;
    await db.transaction().execute((tx) => saveProviderCredentials(tx, new SecretBox(oldKey), tenantId, 'testpay', { apiKey: 'sk_1', webhookSecret: 'whsec_1' }, at));
    const stranger = new SecretBox(randomBytes(32)).encrypt('lost', { tenantId, purpose: accessTokenPurpose('xero') });
    await db
      .insertInto('connectors')
      .values({ tenant_id: tenantId, connector: 'xero', enabled: true, account_codes: JSON.stringify({}), external_tenant_id: 'x', access_token_enc: stranger, update_time: at })
      .execute();

    const newKey = randomBytes(32);
    const result = await resealSecrets(db, new SecretBox(newKey, [oldKey]));
    expect(result).toEqual({ resealed: 2, unreadable: 1, done: true });
    expect(await providerCredentials(db, new SecretBox(newKey), tenantId, 'testpay')).toEqual({ apiKey: 'sk_1', webhookSecret: 'whsec_1' });
    const row = await db.selectFrom('connectors').select('access_token_enc').where('tenant_id', '=', tenantId).where('connector', '=', 'xero').executeTakeFirstOrThrow();
    expect(Buffer.from(row.access_token_enc!).equals(stranger)).toBe(true);
  });
});
