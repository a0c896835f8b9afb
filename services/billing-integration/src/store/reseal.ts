import { sql } from 'kysely';
import type { SecretBox } from '../secrets.js';
import { accessTokenPurpose } from './connectors.js';
import { apiKeyPurpose, providerWebhookSecretPurpose } from './providers.js';
import type { Db } from './schema.js';
import { webhookSecretPurpose } from './webhooks.js';

/** Every sealed column: its table, the column naming the row beside tenant_id, and what the value was sealed for. */
const SEALED_COLUMNS = [
  { table: 'payment_providers', id: 'provider', column: 'api_key_enc', purpose: apiKeyPurpose },
  { table: 'payment_providers', id: 'provider', column: 'webhook_secret_enc', purpose: providerWebhookSecretPurpose },
  { table: 'connectors', id: 'connector', column: 'access_token_enc', purpose: accessTokenPurpose },
  { table: 'webhook_subscriptions', id: 'subscription_id', column: 'secret_enc', purpose: webhookSecretPurpose },
] as const;

export interface Resealed {
  /** Secrets sealed with a previous key and now with the current one. */
  resealed: number;
  /** Secrets neither key opens (sealed with another key, or damaged): left as they are. */
  unreadable: number;
  /** A last walk found none sealed with a previous key. */
  done: boolean;
}

/**
 * Seals again with the current key every stored secret a previous key sealed (a key rotation's
 * second step), walking them until a walk finds none (pods still running with only the old key may
 * seal new ones meanwhile; at most three walks). Nothing to do without a previous key.
 */
export async function resealSecrets(db: Db, secrets: SecretBox): Promise<Resealed> {
  let resealed = 0;
  let unreadable = 0;
  for (let walk = 0; walk < 3 && secrets.rotating; walk++) {
    const w = await resealWalk(db, secrets);
    unreadable = w.unreadable;
    if (w.resealed === 0) return { resealed, unreadable, done: true };
    resealed += w.resealed;
  }
  return { resealed, unreadable, done: !secrets.rotating };
}

/** One walk: each value is replaced only if it is still the one read (one configured again meanwhile is already sealed anew). */
async function resealWalk(db: Db, secrets: SecretBox): Promise<{ resealed: number; unreadable: number }> {
  let resealed = 0;
  let unreadable = 0;
  for (const { table, id, column, purpose } of SEALED_COLUMNS) {
    const rows = await sql<{ tenant_id: string; id: string; sealed: Uint8Array }>`
      select tenant_id, ${sql.ref(id)} as id, ${sql.ref(column)} as sealed from ${sql.table(table)} where ${sql.ref(column)} is not null`.execute(db);
    for (const row of rows.rows) {
      let again: Buffer | undefined;
      try {
        again = secrets.reseal(row.sealed, { tenantId: row.tenant_id, purpose: purpose(row.id) });
      } catch {
        unreadable += 1;
        continue;
      }
      if (!again) continue;
      const updated = await sql`
        update ${sql.table(table)} set ${sql.ref(column)} = ${again}
        where tenant_id = ${row.tenant_id} and ${sql.ref(id)} = ${row.id} and ${sql.ref(column)} = ${row.sealed}`.execute(db);
      resealed += Number(updated.numAffectedRows ?? 0n);
    }
  }
  return { resealed, unreadable };
}
