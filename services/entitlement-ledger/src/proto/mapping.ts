import { create, fromBinary } from '@bufbuild/protobuf';
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { timestampFromDate, timestampDate, type Timestamp } from '@bufbuild/protobuf/wkt';
import { DefinitionTermsSchema } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import {
  EntitlementSchema,
  EntitlementStatus,
  EntitlementTermsSchema,
  EntryKind,
  HouseholdKind,
  HouseholdSchema,
  LedgerEntrySchema,
  RefundSchema,
  RefundState,
  VisitSchema,
  VisitState,
  type Entitlement,
  type EntitlementTerms,
  type Household,
  type LedgerEntry,
  type Refund,
  type Visit,
} from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import type { EntryKind as Kind, Status } from '../domain/types.js';
import type { EntitlementRecord, EntryRecord } from '../store/entitlements.js';
import type { HouseholdRecord } from '../store/households.js';
import type { RefundRecord } from '../store/refunds.js';
import type { HouseholdKind as Hk, RefundState as Rs } from '../store/schema.js';
import type { VisitRecord } from '../store/visits.js';
import { detailFields, refundQuoteToProto } from './detail.js';

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
  return entitlementWith(e, create(EntitlementTermsSchema, { ...termsHeader(e), terms: fromBinary(DefinitionTermsSchema, e.termsBytes) }));
}

/**
 * For a message that is only encoded: the stored DefinitionTerms bytes ride as they are (an unknown
 * field, written verbatim) instead of being decoded and encoded again, the largest part of the work.
 * Decoded, it is the same message as `entitlementToProto`'s; encoded, its terms come last.
 */
export function entitlementToProtoStoredTerms(e: EntitlementRecord): Entitlement {
  const terms = create(EntitlementTermsSchema, termsHeader(e));
  terms.$unknown = [{ no: EntitlementTermsSchema.field.terms.number, wireType: WireType.LengthDelimited, data: new BinaryWriter().bytes(e.termsBytes).finish() }];
  return entitlementWith(e, terms);
}

function termsHeader(e: EntitlementRecord) {
  return { definitionId: e.definitionId, definitionVersion: e.definitionVersion, timeZone: e.timeZone };
}

function entitlementWith(e: EntitlementRecord, terms: EntitlementTerms): Entitlement {
  return create(EntitlementSchema, {
    tenantId: e.tenantId,
    entitlementId: e.entitlementId,
    memberId: e.memberId,
    terms,
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
    householdId: e.householdId ?? '',
    transferCount: e.transferCount,
    originEntitlementId: e.originEntitlementId ?? '',
    pendingRefundId: e.pendingRefundId ?? '',
  });
}

/** The answer of a movement RPC: the entitlement after it, and the entry it wrote (unset when nothing changed). */
export function movementToProto(r: { entitlement: EntitlementRecord; entry?: EntryRecord | undefined }): { entitlement: Entitlement; entry?: LedgerEntry } {
  return { entitlement: entitlementToProto(r.entitlement), ...(r.entry ? { entry: entryToProto(r.entry) } : {}) };
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
    counterpartEntitlementId: e.counterpartEntitlementId ?? '',
    counterpartEntryId: e.counterpartEntryId ?? '',
    ...(e.amountMinor !== undefined ? { amount: { currencyCode: e.currency ?? '', amountMinor: e.amountMinor } } : {}),
    refundId: e.refundId ?? '',
    ...(e.detail ? detailFields(e.detail, e.currency ?? '') : {}),
  });
}

export function householdKindFromProto(k: HouseholdKind): Hk {
  return k === HouseholdKind.FAMILY ? 'FAMILY' : k === HouseholdKind.MEMBER_GROUP ? 'MEMBER_GROUP' : 'HOUSEHOLD';
}

export function householdToProto(h: HouseholdRecord): Household {
  return create(HouseholdSchema, {
    tenantId: h.tenantId,
    householdId: h.householdId,
    name: h.name,
    kind: HouseholdKind[h.kind],
    ownerMemberId: h.ownerMemberId,
    members: h.members.map((m) => ({ memberId: m.memberId, addTime: ts(m.addedAt) })),
    version: BigInt(h.version),
    createTime: ts(h.createdAt),
    updateTime: ts(h.updatedAt),
  });
}

export function refundStateFromProto(s: RefundState): Rs | undefined {
  const name = RefundState[s];
  return name === undefined || name === 'UNSPECIFIED' ? undefined : (name as Rs);
}

export function refundToProto(r: RefundRecord): Refund {
  return create(RefundSchema, {
    tenantId: r.tenantId,
    refundId: r.refundId,
    entitlementId: r.entitlementId,
    memberId: r.memberId,
    state: RefundState[r.state],
    quote: refundQuoteToProto(r.quote),
    reason: r.reason,
    requestedBy: { subject: r.requestedBy.subject, roles: [...r.requestedBy.roles] },
    requestTime: ts(r.requestTime),
    ...(r.decidedBy ? { decidedBy: { subject: r.decidedBy.subject, roles: [...r.decidedBy.roles] } } : {}),
    decisionNote: r.decisionNote,
    decideTime: ts(r.decideTime),
    settleTime: ts(r.settleTime),
    providerReference: r.providerReference,
    failureReason: r.failureReason,
    refundEntryId: r.refundEntryId ?? '',
    version: BigInt(r.version),
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
