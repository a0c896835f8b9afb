import { toBinary } from '@bufbuild/protobuf';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import type { ConsumedEvent } from '@punchcard/bus';
import { DefinitionStatus, DefinitionTermsSchema } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import {
  BranchChangedSchema,
  DefinitionPublishedSchema,
  DefinitionRetiredSchema,
  TenantChangedSchema,
  type BranchChanged,
  type DefinitionPublished,
  type DefinitionRetired,
  type TenantChanged,
} from '@punchcard/contracts/punchcard/events/v1/catalogue_events_pb';
import type { Kysely } from 'kysely';
import { insertDefinitionVersion, retireDefinition, upsertBranch, upsertTenant } from '../store/catalogue.js';
import type { LedgerDb } from '../store/schema.js';

type Tx = Kysely<LedgerDb>;

export const CATALOGUE_SCHEMAS = [DefinitionPublishedSchema, DefinitionRetiredSchema, TenantChangedSchema, BranchChangedSchema];

export const CATALOGUE_SUBJECTS = [
  'punchcard.catalogue.definition_published.*',
  'punchcard.catalogue.definition_retired.*',
  'punchcard.catalogue.tenant_changed.*',
  'punchcard.catalogue.branch_changed.*',
];

type CatalogueEvent = DefinitionPublished | DefinitionRetired | TenantChanged | BranchChanged;

/** A payload about another tenant than its subject is refused (tenants are sealed, events included). */
function sameTenant(event: ConsumedEvent<unknown>, tenantId: string | undefined): void {
  if (tenantId !== event.tenantId) {
    throw new Error(`${event.type} for tenant ${tenantId ?? '(none)'} arrived on tenant ${event.tenantId}'s subject`);
  }
}

/**
 * Keeps the ledger's read model of the catalogue: tenants (plan features), branches (time zones) and
 * the published definition versions whose terms purchases snapshot.
 */
export async function onCatalogueEvent(tx: Tx, event: ConsumedEvent<CatalogueEvent>): Promise<void> {
  const data = event.data;
  switch (data.$typeName) {
    case 'punchcard.events.v1.TenantChanged': {
      const t = data.tenant;
      sameTenant(event, t?.tenantId);
      await upsertTenant(tx, {
        tenantId: event.tenantId,
        planTier: t!.planTier,
        features: [...t!.features],
        defaultCurrency: t!.defaultCurrency,
        changedAt: t!.updateTime ? timestampDate(t!.updateTime) : event.time,
      });
      return;
    }
    case 'punchcard.events.v1.BranchChanged': {
      const b = data.branch;
      sameTenant(event, b?.tenantId);
      await upsertBranch(tx, {
        tenantId: event.tenantId,
        branchId: b!.branchId,
        timeZone: b!.timeZone,
        active: b!.active,
        changedAt: b!.updateTime ? timestampDate(b!.updateTime) : event.time,
      });
      return;
    }
    case 'punchcard.events.v1.DefinitionPublished': {
      const d = data.definition;
      sameTenant(event, d?.tenantId);
      if (d!.status === DefinitionStatus.RETIRED || !d!.terms) return;
      await insertDefinitionVersion(tx, {
        tenantId: event.tenantId,
        definitionId: d!.definitionId,
        version: d!.version,
        code: d!.terms.code,
        terms: toBinary(DefinitionTermsSchema, d!.terms),
        publishedAt: d!.publishTime ? timestampDate(d!.publishTime) : event.time,
      });
      return;
    }
    case 'punchcard.events.v1.DefinitionRetired': {
      const d = data.definition;
      sameTenant(event, d?.tenantId);
      await retireDefinition(tx, event.tenantId, d!.definitionId, d!.version);
      return;
    }
  }
}
