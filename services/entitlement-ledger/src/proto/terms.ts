import {
  ExpiryAnchor,
  ExpiryMode,
  Feature,
  SessionOrder,
  type DefinitionTerms,
} from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import type { ExpiryAnchor as Anchor, Terms } from '../domain/types.js';

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
