import type { ProviderCredentials } from '../providers/provider.js';
import type { SecretBox } from '../secrets.js';
import type { Db, Tx } from './schema.js';

export const apiKeyPurpose = (provider: string) => `provider:${provider}:api_key`;
export const providerWebhookSecretPurpose = (provider: string) => `provider:${provider}:webhook_secret`;

export async function saveProviderCredentials(tx: Tx, secrets: SecretBox, tenantId: string, provider: string, credentials: ProviderCredentials, at: Date): Promise<void> {
  const row = {
    tenant_id: tenantId,
    provider,
    api_key_enc: secrets.encrypt(credentials.apiKey, { tenantId, purpose: apiKeyPurpose(provider) }),
    webhook_secret_enc: secrets.encrypt(credentials.webhookSecret, { tenantId, purpose: providerWebhookSecretPurpose(provider) }),
    update_time: at,
  };
  await tx
    .insertInto('payment_providers')
    .values(row)
    .onConflict((oc) => oc.columns(['tenant_id', 'provider']).doUpdateSet({ api_key_enc: row.api_key_enc, webhook_secret_enc: row.webhook_secret_enc, update_time: at }))
    .execute();
}

/** The tenant's decrypted credentials for a processor, or undefined when not configured. */
export async function providerCredentials(db: Db | Tx, secrets: SecretBox, tenantId: string, provider: string): Promise<ProviderCredentials | undefined> {
  const row = await db.selectFrom('payment_providers').selectAll().where('tenant_id', '=', tenantId).where('provider', '=', provider).executeTakeFirst();
  if (!row) return undefined;
  return {
    apiKey: secrets.decrypt(row.api_key_enc, { tenantId, purpose: apiKeyPurpose(provider) }),
    webhookSecret: secrets.decrypt(row.webhook_secret_enc, { tenantId, purpose: providerWebhookSecretPurpose(provider) }),
  };
}
