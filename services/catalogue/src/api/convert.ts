import { create, fromJson, toJson, type JsonObject } from '@bufbuild/protobuf';
import { MoneySchema, type Money as ProtoMoney } from '@punchcard/contracts/punchcard/common/v1/common_pb';
import {
  BranchSchema,
  DefinitionStatus,
  DefinitionTermsSchema,
  EarningRule,
  ExpiryAnchor,
  ExpiryMode,
  ExpiryRuleSchema,
  Feature,
  PackageDefinitionSchema,
  PlanTier,
  RefundMethod,
  SessionOrder,
  TenantSchema,
  TransferScope,
  type Branch,
  type DefinitionTerms,
  type ExpiryRule as ProtoExpiryRule,
  type PackageDefinition,
  type Tenant,
} from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { ValidationFailed } from '../domain/errors.js';
import type { EarningRule as DomainEarningRule } from '../domain/tenant.js';
import { tenantFeatures } from '../domain/tenant.js';
import type { ExpiryRule, Money, NormalizedTerms, Terms } from '../domain/terms.js';
import type { PlanTier as DomainPlanTier } from '../domain/tiers.js';
import type { DefinitionStatus as DomainStatus } from '../domain/versioning.js';
import type { BranchRecord, TenantRecord, VersionRecord } from '../store/store.js';

/** A protobuf-es enum object: value -> name and name -> value. */
type ProtoEnum = Record<string, string | number>;

/**
 * The name of a protobuf enum value (without its prefix, as protobuf-es generates them);
 * a number the enum does not know is an InvalidArgument on `field`.
 */
export function enumName<N extends string>(e: ProtoEnum, value: number, field: string): N {
  const name = e[value];
  if (typeof name !== 'string') throw new ValidationFailed([{ field, reason: `unknown value ${value}` }]);
  return name as N;
}

export function enumValue<V extends number>(e: ProtoEnum, name: string): V {
  const value = e[name];
  if (typeof value !== 'number') throw new Error(`enum has no value ${name}`);
  return value as V;
}

const moneyIn = (m: ProtoMoney | undefined): Money | undefined => m && { currencyCode: m.currencyCode, amountMinor: m.amountMinor };
const moneyOut = (m: Money | undefined) => m && create(MoneySchema, { currencyCode: m.currencyCode, amountMinor: m.amountMinor });

function ruleIn(r: ProtoExpiryRule, field: string): ExpiryRule {
  const k = r.kind;
  switch (k.case) {
    case 'whicheverLater':
    case 'whicheverEarlier': {
      const list = k.case === 'whicheverLater' ? 'whichever_later' : 'whichever_earlier';
      return { case: k.case, value: k.value.rules.map((x, i) => ruleIn(x, `${field}.${list}.rules[${i}]`)) };
    }
    case undefined:
      return { case: undefined };
    default:
      return { case: k.case, value: k.value } as ExpiryRule;
  }
}

function ruleOut(r: ExpiryRule): ProtoExpiryRule {
  switch (r.case) {
    case 'whicheverLater':
    case 'whicheverEarlier':
      return create(ExpiryRuleSchema, { kind: { case: r.case, value: { rules: r.value.map(ruleOut) } } });
    case undefined:
      return create(ExpiryRuleSchema);
    default:
      return create(ExpiryRuleSchema, { kind: r } as never);
  }
}

/** Request terms as domain data; unknown enum numbers are InvalidArgument naming their field. */
export function termsFromProto(t: DefinitionTerms | undefined, field = 'terms'): Terms {
  if (!t) throw new ValidationFailed([{ field, reason: 'required' }]);
  const e = t.expiry;
  return {
    code: t.code,
    name: t.name,
    description: t.description,
    price: moneyIn(t.price),
    paidSessions: t.paidSessions,
    bonusSessions: t.bonusSessions,
    serviceCodes: [...t.serviceCodes],
    standalonePricePerSession: moneyIn(t.standalonePricePerSession),
    deliveryCostPerSession: moneyIn(t.deliveryCostPerSession),
    deliveryCostByBranch: t.deliveryCostByBranch.map((d) => ({ branchId: d.branchId, costPerSession: moneyIn(d.costPerSession) })),
    expiry: e && {
      anchor: enumName(ExpiryAnchor, e.anchor, `${field}.expiry.anchor`),
      durationDays: e.durationDays,
      durationMonths: e.durationMonths,
      fixedDate: e.fixedDate,
      mode: enumName(ExpiryMode, e.mode, `${field}.expiry.mode`),
      graceDays: e.graceDays,
      rollingExtensionDays: e.rollingExtensionDays,
      maxFreezeDays: e.maxFreezeDays,
      freezeExtendsExpiry: e.freezeExtendsExpiry,
      customRule: e.customRule && ruleIn(e.customRule, `${field}.expiry.custom_rule`),
      reminderOffsetsDays: [...e.reminderOffsetsDays],
    },
    transfer: t.transfer && {
      scope: enumName(TransferScope, t.transfer.scope, `${field}.transfer.scope`),
      maxTransfers: t.transfer.maxTransfers,
      undoWindowHours: t.transfer.undoWindowHours,
    },
    sharing: t.sharing && {
      householdPool: t.sharing.householdPool,
      maxMembers: t.sharing.maxMembers,
      perMemberSessionCap: t.sharing.perMemberSessionCap,
    },
    branches: t.branches && { allBranches: t.branches.allBranches, branchIds: [...t.branches.branchIds] },
    refund: t.refund && {
      method: enumName(RefundMethod, t.refund.method, `${field}.refund.method`),
      adminFee: moneyIn(t.refund.adminFee),
      refundWindowDays: t.refund.refundWindowDays,
    },
    upgrade: t.upgrade && { targetDefinitionIds: [...t.upgrade.targetDefinitionIds] },
    topUp: t.topUp && {
      enabled: t.topUp.enabled,
      pricePerSession: moneyIn(t.topUp.pricePerSession),
      extendExpiryDays: t.topUp.extendExpiryDays,
    },
    expectedBreakageBps: t.expectedBreakageBps,
    redemptionPriority: t.redemptionPriority,
    sessionOrder: enumName(SessionOrder, t.sessionOrder, `${field}.session_order`),
  };
}

export function termsToProto(t: NormalizedTerms): DefinitionTerms {
  const e = t.expiry;
  return create(DefinitionTermsSchema, {
    code: t.code,
    name: t.name,
    description: t.description,
    price: moneyOut(t.price),
    paidSessions: t.paidSessions,
    bonusSessions: t.bonusSessions,
    serviceCodes: t.serviceCodes,
    standalonePricePerSession: moneyOut(t.standalonePricePerSession),
    deliveryCostPerSession: moneyOut(t.deliveryCostPerSession),
    deliveryCostByBranch: t.deliveryCostByBranch.map((d) => ({ branchId: d.branchId, costPerSession: moneyOut(d.costPerSession) })),
    expiry: e && {
      anchor: enumValue(ExpiryAnchor, e.anchor),
      durationDays: e.durationDays,
      durationMonths: e.durationMonths,
      fixedDate: e.fixedDate,
      mode: enumValue(ExpiryMode, e.mode),
      graceDays: e.graceDays,
      rollingExtensionDays: e.rollingExtensionDays,
      maxFreezeDays: e.maxFreezeDays,
      freezeExtendsExpiry: e.freezeExtendsExpiry,
      customRule: e.customRule && ruleOut(e.customRule),
      reminderOffsetsDays: e.reminderOffsetsDays,
    },
    transfer: { ...t.transfer, scope: enumValue(TransferScope, t.transfer.scope) },
    sharing: t.sharing,
    branches: t.branches,
    refund: { method: enumValue(RefundMethod, t.refund.method), adminFee: moneyOut(t.refund.adminFee), refundWindowDays: t.refund.refundWindowDays },
    upgrade: t.upgrade,
    topUp: { enabled: t.topUp.enabled, pricePerSession: moneyOut(t.topUp.pricePerSession), extendExpiryDays: t.topUp.extendExpiryDays },
    expectedBreakageBps: t.expectedBreakageBps,
    redemptionPriority: t.redemptionPriority,
    sessionOrder: enumValue(SessionOrder, t.sessionOrder),
  });
}

/** Stored terms (protobuf JSON, so fields added to the proto later read back as their defaults). */
export function termsToJson(t: NormalizedTerms): JsonObject {
  return toJson(DefinitionTermsSchema, termsToProto(t)) as JsonObject;
}

export function termsFromJson(json: object): DefinitionTerms {
  return fromJson(DefinitionTermsSchema, json as JsonObject);
}

/** Stored terms as domain data; they were normalized before they were stored. */
export function storedTerms(json: object): NormalizedTerms {
  return termsFromProto(termsFromJson(json)) as NormalizedTerms;
}

export function tenantToProto(t: TenantRecord): Tenant {
  const planTier = t.planTier as DomainPlanTier;
  return create(TenantSchema, {
    tenantId: t.tenantId,
    name: t.name,
    planTier: enumValue(PlanTier, planTier),
    defaultCurrency: t.defaultCurrency,
    features: tenantFeatures({ planTier }).map((f) => enumValue<Feature>(Feature, f)),
    earningRule: enumValue(EarningRule, t.earningRule as DomainEarningRule),
    createTime: timestampFromDate(t.createTime),
    updateTime: timestampFromDate(t.updateTime),
  });
}

export function branchToProto(b: BranchRecord): Branch {
  return create(BranchSchema, {
    tenantId: b.tenantId,
    branchId: b.branchId,
    code: b.code,
    name: b.name,
    timeZone: b.timeZone,
    active: b.active,
    createTime: timestampFromDate(b.createTime),
    updateTime: timestampFromDate(b.updateTime),
  });
}

export function definitionToProto(v: VersionRecord): PackageDefinition {
  return create(PackageDefinitionSchema, {
    tenantId: v.tenantId,
    definitionId: v.definitionId,
    version: v.version,
    status: enumValue(DefinitionStatus, v.status as DomainStatus),
    terms: termsFromJson(v.terms),
    createTime: timestampFromDate(v.createTime),
    publishTime: v.publishTime ? timestampFromDate(v.publishTime) : undefined,
    retireTime: v.retireTime ? timestampFromDate(v.retireTime) : undefined,
  });
}
