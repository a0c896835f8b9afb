import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { RefundMethod } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import type { Money } from '@punchcard/contracts/punchcard/common/v1/common_pb';
import {
  LedgerEntrySchema,
  RefundQuoteSchema,
  UpgradeQuoteSchema,
  type RefundQuote as RefundQuotePb,
  type SessionValue as SessionValuePb,
  type UpgradeQuote as UpgradeQuotePb,
} from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import type { EntryDetail, RefundMethod as Method, RefundQuote, SessionValue, UpgradeQuote } from '../domain/types.js';

function money(currencyCode: string, amountMinor: bigint) {
  return { currencyCode, amountMinor };
}

function amount(m: Money | undefined): bigint {
  return m?.amountMinor ?? 0n;
}

function sessions(list: readonly SessionValue[]) {
  return list.map((s) => ({ bonus: s.bonus, valueMinor: s.value }));
}

function sessionsFrom(list: readonly SessionValuePb[]): SessionValue[] {
  return list.map((s) => ({ bonus: s.bonus, value: s.valueMinor }));
}

export function refundMethodFromProto(m: RefundMethod): Method {
  switch (m) {
    case RefundMethod.PRO_RATA:
      return 'PRO_RATA';
    case RefundMethod.USED_AT_STANDALONE_PRICE:
      return 'USED_AT_STANDALONE_PRICE';
    case RefundMethod.NON_REFUNDABLE:
      return 'NON_REFUNDABLE';
    default:
      return 'UNSPECIFIED';
  }
}

export function upgradeQuoteToProto(q: UpgradeQuote): UpgradeQuotePb {
  const c = q.currency;
  return create(UpgradeQuoteSchema, {
    entitlementId: q.entitlementId,
    fromDefinitionId: q.fromDefinitionId,
    fromDefinitionVersion: q.fromDefinitionVersion,
    toDefinitionId: q.toDefinitionId,
    toDefinitionVersion: q.toDefinitionVersion,
    remainingSessions: sessions(q.remainingSessions),
    credit: money(c, q.credit),
    newPrice: money(c, q.newPrice),
    amountDue: money(c, q.amountDue),
    newPaidSessions: q.newPaidSessions,
    newBonusSessions: q.newBonusSessions,
  });
}

export function upgradeQuoteFromProto(q: UpgradeQuotePb): UpgradeQuote {
  return {
    entitlementId: q.entitlementId,
    fromDefinitionId: q.fromDefinitionId,
    fromDefinitionVersion: q.fromDefinitionVersion,
    toDefinitionId: q.toDefinitionId,
    toDefinitionVersion: q.toDefinitionVersion,
    currency: q.credit?.currencyCode ?? q.newPrice?.currencyCode ?? '',
    remainingSessions: sessionsFrom(q.remainingSessions),
    credit: amount(q.credit),
    newPrice: amount(q.newPrice),
    amountDue: amount(q.amountDue),
    newPaidSessions: q.newPaidSessions,
    newBonusSessions: q.newBonusSessions,
  };
}

export function refundQuoteToProto(q: RefundQuote): RefundQuotePb {
  const c = q.currency;
  return create(RefundQuoteSchema, {
    entitlementId: q.entitlementId,
    method: RefundMethod[q.method],
    refundable: q.refundable,
    reason: q.reason,
    unusedSessions: q.unusedSessions,
    usedSessions: q.usedSessions,
    contractValue: money(c, q.contractValue),
    unusedValue: money(c, q.unusedValue),
    usedAtStandalonePrice: money(c, q.usedAtStandalonePrice),
    gross: money(c, q.gross),
    adminFee: money(c, q.adminFee),
    amount: money(c, q.amount),
    ...(q.windowEndTime ? { windowEndTime: timestampFromDate(q.windowEndTime) } : {}),
    unused: sessions(q.unused),
  });
}

export function refundQuoteFromProto(q: RefundQuotePb): RefundQuote {
  return {
    entitlementId: q.entitlementId,
    method: refundMethodFromProto(q.method),
    refundable: q.refundable,
    reason: q.reason,
    currency: q.amount?.currencyCode ?? '',
    unusedSessions: q.unusedSessions,
    usedSessions: q.usedSessions,
    contractValue: amount(q.contractValue),
    unusedValue: amount(q.unusedValue),
    usedAtStandalonePrice: amount(q.usedAtStandalonePrice),
    gross: amount(q.gross),
    adminFee: amount(q.adminFee),
    amount: amount(q.amount),
    windowEndTime: q.windowEndTime ? timestampDate(q.windowEndTime) : null,
    unused: sessionsFrom(q.unused),
  };
}

export function encodeRefundQuote(q: RefundQuote): Uint8Array {
  return toBinary(RefundQuoteSchema, refundQuoteToProto(q));
}

export function decodeRefundQuote(bytes: Uint8Array): RefundQuote {
  return refundQuoteFromProto(fromBinary(RefundQuoteSchema, bytes));
}

/** The LedgerEntry fields that carry an entry's detail. */
export function detailFields(d: EntryDetail, currency: string) {
  switch (d.kind) {
    case 'transfer':
      return {
        transfer: {
          fromEntitlementId: d.fromEntitlementId,
          toEntitlementId: d.toEntitlementId,
          fromMemberId: d.fromMemberId,
          toMemberId: d.toMemberId,
          paidSessions: d.paid,
          bonusSessions: d.bonus,
          sessions: sessions(d.sessions),
          value: money(currency, d.value),
          undoesTransferId: d.undoesTransferId ?? '',
        },
      };
    case 'top_up':
      return {
        topUp: {
          sessions: d.sessions,
          pricePerSession: money(currency, d.pricePerSession),
          amountPaid: money(currency, d.amountPaid),
          extendExpiryDays: d.extendExpiryDays,
          paymentReference: d.paymentReference,
        },
      };
    case 'upgrade':
      return { upgrade: upgradeQuoteToProto(d.quote) };
    case 'refund':
      return { refund: refundQuoteToProto(d.quote) };
  }
}

/** Stored form of an entry's detail: a LedgerEntry holding only its detail fields. */
export function encodeDetail(d: EntryDetail, currency: string): Uint8Array {
  return toBinary(LedgerEntrySchema, create(LedgerEntrySchema, detailFields(d, currency)));
}

export function decodeDetail(bytes: Uint8Array): EntryDetail | undefined {
  const e = fromBinary(LedgerEntrySchema, bytes);
  if (e.transfer) {
    const t = e.transfer;
    return {
      kind: 'transfer',
      fromEntitlementId: t.fromEntitlementId,
      toEntitlementId: t.toEntitlementId,
      fromMemberId: t.fromMemberId,
      toMemberId: t.toMemberId,
      paid: t.paidSessions,
      bonus: t.bonusSessions,
      sessions: sessionsFrom(t.sessions),
      value: amount(t.value),
      ...(t.undoesTransferId ? { undoesTransferId: t.undoesTransferId } : {}),
    };
  }
  if (e.topUp) {
    const t = e.topUp;
    return {
      kind: 'top_up',
      sessions: t.sessions,
      pricePerSession: amount(t.pricePerSession),
      amountPaid: amount(t.amountPaid),
      extendExpiryDays: t.extendExpiryDays,
      paymentReference: t.paymentReference,
    };
  }
  if (e.upgrade) return { kind: 'upgrade', quote: upgradeQuoteFromProto(e.upgrade) };
  if (e.refund) return { kind: 'refund', quote: refundQuoteFromProto(e.refund) };
  return undefined;
}
