import type { ConnectorSettings } from '../connectors/connector.js';
import type { SecretBox } from '../secrets.js';
import type { Db, Tx } from './schema.js';

export const accessTokenPurpose = (connector: string) => `connector:${connector}:access_token`;

/** A tenant's connector settings with the access token decrypted, or undefined when not configured. */
export async function connectorSettings(db: Db | Tx, secrets: SecretBox, tenantId: string, connector: string): Promise<(ConnectorSettings & { enabled: boolean }) | undefined> {
  const row = await db.selectFrom('connectors').selectAll().where('tenant_id', '=', tenantId).where('connector', '=', connector).executeTakeFirst();
  if (!row) return undefined;
  return {
    tenantId,
    enabled: row.enabled,
    accountCodes: row.account_codes,
    externalTenantId: row.external_tenant_id,
    accessToken: row.access_token_enc ? secrets.decrypt(row.access_token_enc, { tenantId, purpose: accessTokenPurpose(connector) }) : '',
  };
}

/** Whether the tenant's plan includes accounting integration (from catalogue.tenant_changed). */
export async function hasAccountingFeature(db: Db | Tx, tenantId: string): Promise<boolean | undefined> {
  const row = await db.selectFrom('tenants').select('features').where('tenant_id', '=', tenantId).executeTakeFirst();
  return row ? row.features.includes('FEATURE_ACCOUNTING_INTEGRATION') : undefined;
}
