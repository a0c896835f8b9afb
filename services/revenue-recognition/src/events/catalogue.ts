import { toBinary } from '@bufbuild/protobuf';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import type { ConsumedEvent } from '@punchcard/bus';
import { DefinitionTermsSchema, EarningRule } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
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
import { RevenueRuleError } from '../domain/errors.js';
import { upsertBranch, upsertDefinition, upsertTenant } from '../store/catalogue.js';
import type { RevenueDb } from '../store/schema.js';

export const CATALOGUE_DURABLE = 'revenue_catalogue';
export const CATALOGUE_SCHEMAS = [DefinitionPublishedSchema, DefinitionRetiredSchema, TenantChangedSchema, BranchChangedSchema];
export const CATALOGUE_SUBJECTS = ['punchcard.catalogue.>'];

type CatalogueEvent = DefinitionPublished | DefinitionRetired | TenantChanged | BranchChanged;

function sameTenant(event: ConsumedEvent<unknown>, tenantId: string | undefined): void {
  if (tenantId !== event.tenantId) {
    throw new RevenueRuleError('tenant_id', `${event.type} for tenant ${tenantId ?? '(none)'} arrived on tenant ${event.tenantId}'s subject`);
  }
}

/** Keeps what revenue needs of the catalogue: earning rule and currency, branch time zones, definition terms. */
export async function onCatalogueEvent(tx: Kysely<RevenueDb>, event: ConsumedEvent<CatalogueEvent>): Promise<void> {
  const data = event.data;
  switch (data.$typeName) {
    case 'punchcard.events.v1.TenantChanged': {
      const t = data.tenant;
      sameTenant(event, t?.tenantId);
      await upsertTenant(tx, {
        tenantId: event.tenantId,
        currency: t!.defaultCurrency,
        earningRule: t!.earningRule === EarningRule.PURCHASING_BRANCH ? 'PURCHASING_BRANCH' : 'DELIVERING_BRANCH',
        updatedAt: t!.updateTime ? timestampDate(t!.updateTime) : event.time,
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
        updatedAt: b!.updateTime ? timestampDate(b!.updateTime) : event.time,
      });
      return;
    }
    case 'punchcard.events.v1.DefinitionPublished':
    case 'punchcard.events.v1.DefinitionRetired': {
      const d = data.definition;
      sameTenant(event, d?.tenantId);
      if (!d?.terms) throw new RevenueRuleError('definition.terms', `${event.type} ${event.id} carries no terms`);
      await upsertDefinition(tx, {
        tenantId: event.tenantId,
        definitionId: d.definitionId,
        version: d.version,
        code: d.terms.code,
        name: d.terms.name,
        terms: toBinary(DefinitionTermsSchema, d.terms),
      });
      return;
    }
  }
}
