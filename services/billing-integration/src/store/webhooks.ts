import type { SecretBox } from '../secrets.js';
import type { Db, Tx } from './schema.js';

export const webhookSecretPurpose = (subscriptionId: string) => `webhook:${subscriptionId}:signing_secret`;

export async function subscriptionSecret(db: Db | Tx, secrets: SecretBox, tenantId: string, subscriptionId: string): Promise<string | undefined> {
  const row = await db.selectFrom('webhook_subscriptions').select('secret_enc').where('tenant_id', '=', tenantId).where('subscription_id', '=', subscriptionId).executeTakeFirst();
  return row ? secrets.decrypt(row.secret_enc, { tenantId, purpose: webhookSecretPurpose(subscriptionId) }) : undefined;
}
