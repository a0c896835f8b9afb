import { timestampDate, type Timestamp } from '@bufbuild/protobuf/wkt';
import {
  ExpiryAnchor,
  ExpiryMode,
  type ExpiryPolicy as ExpiryPolicyPb,
  type ExpiryRule as ExpiryRulePb,
} from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import type { LedgerEntryRecorded } from '@punchcard/contracts/punchcard/events/v1/ledger_events_pb';
import { EntitlementStatus, EntryKind } from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import { isTimeZone } from '../domain/calendar.js';
import type { EntitlementStatus as Status, EntryKind as Kind, LedgerFact } from '../domain/entitlement.js';
import { NEVER_EXPIRES, type ExpiryAnchor as Anchor, type ExpiryPolicy, type ExpiryRule } from '../domain/policy.js';

/** A ledger event the scheduler cannot read; it is dead-lettered with this reason. */
export class MalformedLedgerEvent extends Error {
  override readonly name = 'MalformedLedgerEvent';
}

const date = (t: Timestamp | undefined): Date | undefined => (t ? timestampDate(t) : undefined);

const ANCHORS: Record<ExpiryAnchor, Anchor> = {
  [ExpiryAnchor.UNSPECIFIED]: 'NONE',
  [ExpiryAnchor.PURCHASE]: 'PURCHASE',
  [ExpiryAnchor.FIRST_USE]: 'FIRST_USE',
  [ExpiryAnchor.FIXED_DATE]: 'FIXED_DATE',
};

export function policyFromProto(p: ExpiryPolicyPb | undefined): ExpiryPolicy {
  if (!p) return NEVER_EXPIRES;
  const customRule = p.customRule ? ruleFromProto(p.customRule) : undefined;
  return {
    anchor: ANCHORS[p.anchor] ?? 'NONE',
    durationDays: p.durationDays,
    durationMonths: p.durationMonths,
    fixedDate: p.fixedDate,
    mode: p.mode === ExpiryMode.SOFT ? 'SOFT' : 'HARD',
    graceDays: p.graceDays,
    rollingExtensionDays: p.rollingExtensionDays,
    maxFreezeDays: p.maxFreezeDays,
    freezeExtendsExpiry: p.freezeExtendsExpiry,
    ...(customRule ? { customRule } : {}),
    reminderOffsetsDays: [...p.reminderOffsetsDays],
  };
}

/** A rule with no kind set decides nothing: undefined, so the anchor and duration apply. */
export function ruleFromProto(r: ExpiryRulePb): ExpiryRule | undefined {
  const k = r.kind;
  switch (k.case) {
    case 'daysAfterPurchase':
      return { kind: 'daysAfterPurchase', days: k.value };
    case 'monthsAfterPurchase':
      return { kind: 'monthsAfterPurchase', months: k.value };
    case 'daysAfterFirstUse':
      return { kind: 'daysAfterFirstUse', days: k.value };
    case 'daysAfterLastUse':
      return { kind: 'daysAfterLastUse', days: k.value };
    case 'fixedDate':
      return { kind: 'fixedDate', date: k.value };
    case 'whicheverLater':
    case 'whicheverEarlier':
      return { kind: k.case, rules: k.value.rules.map(ruleFromProto).filter((x: ExpiryRule | undefined): x is ExpiryRule => x !== undefined) };
    default:
      return undefined;
  }
}

/** Reads a `LedgerEntryRecorded` as a domain fact; `tenantId` is the event's (subject) tenant. */
export function ledgerFactFromEvent(tenantId: string, event: LedgerEntryRecorded): LedgerFact {
  const e = event.entitlement;
  const entry = event.entry;
  if (!e || !entry) throw new MalformedLedgerEvent('LedgerEntryRecorded needs both entitlement and entry');
  if (e.tenantId !== tenantId) throw new MalformedLedgerEvent(`entitlement.tenant_id ${e.tenantId} does not match the event's tenant ${tenantId}`);
  if (!e.entitlementId) throw new MalformedLedgerEvent('entitlement.entitlement_id is empty');
  const version = Number(e.version);
  if (!Number.isSafeInteger(version) || version < 1) throw new MalformedLedgerEvent(`entitlement.version must be a positive integer, got ${e.version}`);
  const purchaseTime = date(e.purchaseTime);
  if (!purchaseTime) throw new MalformedLedgerEvent('entitlement.purchase_time is unset');
  const status = EntitlementStatus[e.status] as Status | undefined;
  if (!status || e.status === EntitlementStatus.UNSPECIFIED) throw new MalformedLedgerEvent(`entitlement.status ${e.status} is not a known status`);
  const timeZone = e.terms?.timeZone ?? '';
  if (!isTimeZone(timeZone)) throw new MalformedLedgerEvent(`entitlement.terms.time_zone ${JSON.stringify(timeZone)} is not an IANA time zone`);
  const kind = (entry.kind === EntryKind.UNSPECIFIED ? 'OTHER' : (EntryKind[entry.kind] ?? 'OTHER')) as Kind;
  return {
    tenantId,
    entitlementId: e.entitlementId,
    memberId: e.memberId,
    version,
    status,
    remaining: e.remaining,
    policy: policyFromProto(e.terms?.terms?.expiry),
    timeZone,
    purchaseTime,
    activationTime: date(e.activationTime),
    expiryTime: date(e.expiryTime),
    graceEndTime: date(e.graceEndTime),
    frozenUntilTime: date(e.frozenUntilTime),
    frozenDays: e.frozenDays,
    lastUseTime: date(e.lastUseTime),
    entry: { kind, occurredTime: date(entry.occurredTime) ?? date(entry.recordTime) ?? purchaseTime, requestId: entry.requestId },
  };
}
