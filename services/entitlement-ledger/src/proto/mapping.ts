import { create, fromBinary } from '@bufbuild/protobuf';
import { timestampFromDate, timestampDate, type Timestamp } from '@bufbuild/protobuf/wkt';
import { DefinitionTermsSchema } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import {
  EntitlementSchema,
  EntitlementStatus,
  EntryKind,
  LedgerEntrySchema,
  VisitSchema,
  VisitState,
  type Entitlement,
  type LedgerEntry,
  type Visit,
} from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import type { EntryKind as Kind, Status } from '../domain/types.js';
import type { EntitlementRecord, EntryRecord } from '../store/entitlements.js';
import type { VisitRecord } from '../store/visits.js';

function ts(d: Date | null | undefined): Timestamp | undefined {
  return d ? timestampFromDate(d) : undefined;
}

export function dateOf(t: Timestamp | undefined): Date | undefined {
  return t ? timestampDate(t) : undefined;
}

export function statusToProto(s: Status): EntitlementStatus {
  return EntitlementStatus[s];
}

export function statusFromProto(s: EntitlementStatus): Status | undefined {
  const name = EntitlementStatus[s];
  return name === undefined || name === 'UNSPECIFIED' ? undefined : (name as Status);
}

export function kindToProto(k: Kind): EntryKind {
  return EntryKind[k];
}

export function entitlementToProto(e: EntitlementRecord): Entitlement {
  return create(EntitlementSchema, {
    tenantId: e.tenantId,
    entitlementId: e.entitlementId,
    memberId: e.memberId,
    terms: {
      definitionId: e.definitionId,
      definitionVersion: e.definitionVersion,
      terms: fromBinary(DefinitionTermsSchema, e.termsBytes),
      timeZone: e.timeZone,
    },
    purchaseBranchId: e.purchaseBranchId,
    status: statusToProto(e.status),
    paidSessions: e.paidSessions,
    bonusSessions: e.bonusSessions,
    paidRemaining: e.paidRemaining,
    bonusRemaining: e.bonusRemaining,
    remaining: e.paidRemaining + e.bonusRemaining,
    price: { currencyCode: e.priceCurrency, amountMinor: e.priceMinor },
    paymentReference: e.paymentReference,
    purchaseTime: ts(e.purchaseTime),
    activationTime: ts(e.activationTime),
    expiryTime: ts(e.expiryTime),
    graceEndTime: ts(e.graceEndTime),
    frozenUntilTime: ts(e.frozenUntilTime),
    frozenDays: e.frozenDays,
    lastUseTime: ts(e.lastUseTime),
    version: BigInt(e.version),
  });
}

export function entryToProto(e: EntryRecord): LedgerEntry {
  return create(LedgerEntrySchema, {
    tenantId: e.tenantId,
    entryId: e.entryId,
    entitlementId: e.entitlementId,
    kind: kindToProto(e.kind),
    sessionsDelta: e.sessionsDelta,
    paidDelta: e.paidDelta,
    bonusDelta: e.bonusDelta,
    branchId: e.branchId,
    actor: { subject: e.actor.subject, roles: [...e.actor.roles] },
    reason: e.reason,
    occurredTime: ts(e.occurredTime),
    recordTime: ts(e.recordTime),
    requestId: e.requestId,
    balanceAfter: e.balanceAfter,
    reversesEntryId: e.reversesEntryId ?? '',
    inGrace: e.inGrace,
    visitId: e.visitId ?? '',
    serviceCode: e.serviceCode ?? '',
    memberId: e.memberId,
    entitlementVersion: BigInt(e.entitlementVersion),
    expiryTime: ts(e.expiryTime),
  });
}

export function visitToProto(v: VisitRecord): Visit {
  return create(VisitSchema, {
    tenantId: v.tenantId,
    visitId: v.visitId,
    state: VisitState[v.state],
    memberId: v.memberId,
    serviceCode: v.serviceCode,
    branchId: v.branchId,
    occurredTime: ts(v.occurredTime),
    entitlementId: v.entitlementId ?? '',
    entryId: v.entryId ?? '',
    reversalEntryId: v.reversalEntryId ?? '',
    reason: v.reason,
    errorCode: v.errorCode,
    createTime: ts(v.createdAt),
    updateTime: ts(v.updatedAt),
  });
}

export function visitStateFromProto(s: VisitState): VisitRecord['state'] | undefined {
  const name = VisitState[s];
  return name === undefined || name === 'UNSPECIFIED' ? undefined : (name as VisitRecord['state']);
}
