import { enqueue } from '@punchcard/bus';
import type { Branch, PackageDefinition, Tenant } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import {
  BranchChangedSchema,
  DefinitionPublishedSchema,
  DefinitionRetiredSchema,
  TenantChangedSchema,
} from '@punchcard/contracts/punchcard/events/v1/catalogue_events_pb';
import type { Db } from '../store/store.js';

/** The producer token: events go to the CATALOGUE stream as `punchcard.catalogue.<event>.<tenant>`. */
export const PRODUCER = 'catalogue';

export const EVENTS = {
  tenantChanged: 'tenant_changed',
  branchChanged: 'branch_changed',
  definitionPublished: 'definition_published',
  definitionRetired: 'definition_retired',
} as const;

/**
 * Each builder writes to the outbox in the caller's transaction. `revision` counts the aggregate's
 * events (1, 2, 3 …) so consumers can apply them in order and skip stale ones.
 */
export function tenantChanged(tx: Db, tenant: Tenant, revision: number, time: Date) {
  return enqueue(tx, {
    producer: PRODUCER,
    event: EVENTS.tenantChanged,
    tenantId: tenant.tenantId,
    aggregateId: tenant.tenantId,
    aggregateVersion: revision,
    schema: TenantChangedSchema,
    message: { tenant },
    time,
  });
}

export function branchChanged(tx: Db, branch: Branch, revision: number, time: Date) {
  return enqueue(tx, {
    producer: PRODUCER,
    event: EVENTS.branchChanged,
    tenantId: branch.tenantId,
    aggregateId: branch.branchId,
    aggregateVersion: revision,
    schema: BranchChangedSchema,
    message: { branch },
    time,
  });
}

export function definitionPublished(tx: Db, definition: PackageDefinition, revision: number, time: Date) {
  return enqueue(tx, {
    producer: PRODUCER,
    event: EVENTS.definitionPublished,
    tenantId: definition.tenantId,
    aggregateId: definition.definitionId,
    aggregateVersion: revision,
    schema: DefinitionPublishedSchema,
    message: { definition },
    time,
  });
}

export function definitionRetired(tx: Db, definition: PackageDefinition, revision: number, time: Date) {
  return enqueue(tx, {
    producer: PRODUCER,
    event: EVENTS.definitionRetired,
    tenantId: definition.tenantId,
    aggregateId: definition.definitionId,
    aggregateVersion: revision,
    schema: DefinitionRetiredSchema,
    message: { definition },
    time,
  });
}
