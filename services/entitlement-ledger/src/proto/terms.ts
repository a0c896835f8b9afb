import {
  ExpiryAnchor,
  ExpiryMode,
  Feature,
  SessionOrder,
  TransferScope,
  type DefinitionTerms,
} from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import type { Money } from '@punchcard/contracts/punchcard/common/v1/common_pb';
import type { Policies } from '../domain/policies.js';
import type { ExpiryAnchor as Anchor, Terms } from '../domain/types.js';
import { refundMethodFromProto } from './detail.js';

/** The rules of a definition version the ledger applies, snapshotted onto each entitlement sold on it. */
export function rulesFromDefinition(t: DefinitionTerms): Terms {
  const x = t.expiry;
  const durationDays = x?.durationDays ?? 0;
  const durationMonths = x?.durationMonths ?? 0;
  let anchor: Anchor;
  switch (x?.anchor ?? ExpiryAnchor.UNSPECIFIED) {
    case ExpiryAnchor.PURCHASE:
      anchor = 'PURCHASE';
      break;
    case ExpiryAnchor.FIRST_USE:
      anchor = 'FIRST_USE';
      break;
    case ExpiryAnchor.FIXED_DATE:
      anchor = 'FIXED_DATE';
      break;
    default:
      // No anchor named: a duration runs from purchase; none means the package never expires.
      anchor = durationDays > 0 || durationMonths > 0 ? 'PURCHASE' : 'NONE';
  }
  return {
    serviceCodes: [...t.serviceCodes],
    allBranches: t.branches?.allBranches ?? false,
    branchIds: [...(t.branches?.branchIds ?? [])],
    redemptionPriority: t.redemptionPriority,
    sessionOrder: t.sessionOrder === SessionOrder.BONUS_FIRST ? 'BONUS_FIRST' : 'PAID_FIRST',
    expiry: {
      anchor,
      durationDays,
      durationMonths,
      fixedDate: x?.fixedDate ?? '',
      mode: x?.mode === ExpiryMode.SOFT ? 'SOFT' : 'HARD',
      graceDays: x?.graceDays ?? 0,
      rollingExtensionDays: x?.rollingExtensionDays ?? 0,
      maxFreezeDays: x?.maxFreezeDays ?? 0,
      freezeExtendsExpiry: x?.freezeExtendsExpiry ?? false,
      customRule: x?.customRule?.kind.case !== undefined,
    },
  };
}

/** Catalogue feature numbers to the names the domain checks ('AUTO_DEDUCTION', 'MULTI_BRANCH', …). */
export function featureNames(features: readonly number[]): Set<string> {
  const names = new Set<string>();
  for (const f of features) {
    const name = Feature[f];
    if (name !== undefined) names.add(name);
  }
  return names;
}

/** An amount in `currency`, or 0 when unset or in another currency (the catalogue prices a definition in one). */
function amountIn(currency: string, m: Money | undefined): bigint {
  return m && m.currencyCode === currency && m.amountMinor > 0n ? m.amountMinor : 0n;
}

/** The transfer, sharing, refund, upgrade and top-up policies of a definition, amounts in `currency`. */
export function policiesFromDefinition(t: DefinitionTerms, currency: string): Policies {
  const scope = t.transfer?.scope ?? TransferScope.UNSPECIFIED;
  return {
    currency,
    standalonePrice: amountIn(currency, t.standalonePricePerSession),
    transfer: {
      scope: scope === TransferScope.ANYONE ? 'ANYONE' : scope === TransferScope.HOUSEHOLD ? 'HOUSEHOLD' : 'NONE',
      maxTransfers: Math.max(0, t.transfer?.maxTransfers ?? 0),
      undoWindowHours: Math.max(0, t.transfer?.undoWindowHours ?? 0),
    },
    sharing: {
      householdPool: t.sharing?.householdPool ?? false,
      maxMembers: Math.max(0, t.sharing?.maxMembers ?? 0),
      perMemberSessionCap: Math.max(0, t.sharing?.perMemberSessionCap ?? 0),
    },
    refund: {
      method: refundMethodFromProto(t.refund?.method ?? 0),
      adminFee: amountIn(currency, t.refund?.adminFee),
      windowDays: Math.max(0, t.refund?.refundWindowDays ?? 0),
    },
    upgrade: { targetDefinitionIds: [...(t.upgrade?.targetDefinitionIds ?? [])] },
    topUp: {
      enabled: t.topUp?.enabled ?? false,
      pricePerSession: amountIn(currency, t.topUp?.pricePerSession),
      extendExpiryDays: Math.max(0, t.topUp?.extendExpiryDays ?? 0),
    },
  };
}
