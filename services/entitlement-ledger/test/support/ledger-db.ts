import { create, toBinary } from '@bufbuild/protobuf';
import { createDb, ensureSchema, inTransaction, migrateToLatest, type Database } from '@punchcard/db';
import {
  DefinitionTermsSchema,
  ExpiryAnchor,
  ExpiryMode,
  Feature,
  PlanTier,
  type DefinitionTerms,
} from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import { createTestDatabase } from '@punchcard/testing';
import { sql, type Kysely } from 'kysely';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { migrations, SCHEMA, type LedgerDb } from '../../src/store/index.js';
import { insertDefinitionVersion, upsertBranch, upsertTenant } from '../../src/store/catalogue.js';

export interface LedgerTestDb extends Database<LedgerDb> {
  url: string;
  drop(): Promise<void>;
}

/** Rows of `table` (in the ledger's schema) this transaction has read so far, by any scan (how a plan's reach is seen). */
export async function rowsRead(tx: Kysely<LedgerDb>, table: string): Promise<number> {
  const { rows } = await sql<{ n: number }>`
    select coalesce(sum(seq_tup_read + idx_tup_fetch), 0)::int as n from pg_stat_xact_user_tables
    where schemaname = current_schema() and relname = ${table}`.execute(tx);
  return rows[0]!.n;
}

/** A fresh database with the ledger's schema migrated, for one test file. */
export async function ledgerTestDb(prefix: string, poolMax = 20): Promise<LedgerTestDb> {
  const t = await createTestDatabase(prefix);
  await ensureSchema(t.url, SCHEMA);
  const database = createDb<LedgerDb>({ url: t.url, schema: SCHEMA, poolMax });
  await migrateToLatest(database.db, SCHEMA, migrations);
  return {
    ...database,
    url: t.url,
    async drop() {
      await database.close();
      await t.drop();
    },
  };
}

export const ALL_FEATURES = Object.values(Feature).filter((f): f is Feature => typeof f === 'number' && f !== 0);
export const BASIC_FEATURES = [Feature.MANUAL_DEDUCTION, Feature.HARD_EXPIRY, Feature.PACKAGE_HISTORY];

type TermsInit = Exclude<MessageInitShape<typeof DefinitionTermsSchema>, DefinitionTerms>;

export function definitionTerms(overrides: TermsInit = {}): DefinitionTerms {
  return create(DefinitionTermsSchema, {
    code: 'PHYSIO10',
    name: '10 physio sessions',
    price: { currencyCode: 'SGD', amountMinor: 100000n },
    paidSessions: 10,
    bonusSessions: 0,
    serviceCodes: ['PHYSIO'],
    expiry: { anchor: ExpiryAnchor.PURCHASE, durationDays: 90, mode: ExpiryMode.HARD },
    ...overrides,
  } as TermsInit);
}

/** Seeds the read model directly (store-level tests; service tests publish catalogue events instead). */
export async function seedCatalogue(
  db: Database<LedgerDb>['db'],
  tenantId: string,
  opts: { features?: Feature[]; definitions?: Record<string, DefinitionTerms>; branches?: Record<string, string> } = {},
): Promise<void> {
  const at = new Date('2024-01-01T00:00:00Z');
  await inTransaction(db, async (tx) => {
    await upsertTenant(tx, { tenantId, planTier: PlanTier.ENTERPRISE, features: opts.features ?? ALL_FEATURES, defaultCurrency: 'SGD', changedAt: at });
    for (const [branchId, timeZone] of Object.entries(opts.branches ?? { b1: 'Asia/Singapore', b2: 'Asia/Singapore' })) {
      await upsertBranch(tx, { tenantId, branchId, timeZone, active: true, changedAt: at });
    }
    for (const [definitionId, terms] of Object.entries(opts.definitions ?? { d1: definitionTerms() })) {
      await insertDefinitionVersion(tx, {
        tenantId,
        definitionId,
        version: 1,
        code: terms.code,
        terms: toBinary(DefinitionTermsSchema, terms),
        publishedAt: at,
      });
    }
  });
}
