import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import {
  ConnectorConfigSchema,
  PaymentSchema,
  PaymentStatus,
  RefundPayoutRecordSchema,
  RefundPayoutStatus,
  SyncFailureSchema,
  type ConnectorConfig,
  type Payment,
  type RefundPayoutRecord,
  type SyncFailure,
} from '@punchcard/contracts/punchcard/billing/v1/billing_pb';
import { Account, type JournalEntry } from '@punchcard/contracts/punchcard/revenue/v1/revenue_pb';
import { InvalidField } from './domain/errors.js';
import { isOurAccount, type Journal } from './domain/journal.js';
import type { ConnectorsTable, JournalSyncsTable, PaymentsTable, RefundPayoutPartsTable, RefundPayoutsTable } from './store/schema.js';
import type { Selectable } from 'kysely';

const ts = (d: Date | null | undefined) => (d ? timestampFromDate(d) : undefined);

const PAYMENT_STATUS: Record<Selectable<PaymentsTable>['status'], PaymentStatus> = {
  pending: PaymentStatus.PENDING,
  captured: PaymentStatus.CAPTURED,
  failed: PaymentStatus.FAILED,
  fulfilled: PaymentStatus.FULFILLED,
};

export function paymentToProto(p: Selectable<PaymentsTable>): Payment {
  return create(PaymentSchema, {
    tenantId: p.tenant_id,
    paymentId: p.payment_id,
    provider: p.provider,
    providerReference: p.provider_reference,
    status: PAYMENT_STATUS[p.status],
    amount: { currencyCode: p.currency, amountMinor: BigInt(p.amount_minor) },
    memberId: p.member_id,
    definitionId: p.definition_id,
    branchId: p.branch_id,
    entitlementId: p.entitlement_id,
    createTime: ts(p.create_time),
    captureTime: ts(p.capture_time),
    failureReason: p.failure_reason,
    checkoutUrl: p.checkout_url,
    fulfilmentError: p.fulfilment_error,
    fulfilmentAttempts: p.fulfilment_attempts,
    fulfilTime: ts(p.fulfil_time),
    ...(p.kind === 'upgrade' ? { upgrade: { entitlementId: p.upgrade_entitlement_id, targetDefinitionId: p.definition_id } } : {}),
  });
}

const PAYOUT_STATUS: Record<Selectable<RefundPayoutPartsTable>['status'], RefundPayoutStatus> = {
  queued: RefundPayoutStatus.QUEUED,
  pending: RefundPayoutStatus.PENDING,
  paid: RefundPayoutStatus.PAID,
  failed: RefundPayoutStatus.FAILED,
  awaiting_manual: RefundPayoutStatus.AWAITING_MANUAL,
};

/** A refund payout with its parts (in payout order). */
export function payoutToProto(r: Selectable<RefundPayoutsTable>, parts: readonly Selectable<RefundPayoutPartsTable>[]): RefundPayoutRecord {
  return create(RefundPayoutRecordSchema, {
    tenantId: r.tenant_id,
    refundId: r.refund_id,
    entitlementId: r.entitlement_id,
    paymentId: r.payment_id,
    provider: r.provider,
    amount: { currencyCode: r.currency, amountMinor: BigInt(r.amount_minor) },
    status: PAYOUT_STATUS[r.status],
    providerReference: r.provider_reference,
    failureReason: r.failure_reason,
    attempts: r.attempts,
    nextAttemptTime: r.status === 'pending' ? ts(r.next_attempt_at) : undefined,
    paidTime: ts(r.paid_time),
    parts: parts.map((p) => ({
      paymentId: p.payment_id,
      provider: p.provider,
      amount: { currencyCode: p.currency, amountMinor: BigInt(p.amount_minor) },
      status: PAYOUT_STATUS[p.status],
      providerReference: p.provider_reference,
      failureReason: p.failure_reason,
      attempts: p.attempts,
    })),
  });
}

export function connectorToProto(c: Selectable<ConnectorsTable>): ConnectorConfig {
  return create(ConnectorConfigSchema, {
    connector: c.connector,
    enabled: c.enabled,
    accountCodes: c.account_codes,
    externalTenantId: c.external_tenant_id,
    updateTime: ts(c.update_time),
    hasAccessToken: c.access_token_enc !== null,
  });
}

export function syncFailureToProto(s: Selectable<JournalSyncsTable>): SyncFailure {
  return create(SyncFailureSchema, {
    journalEntryId: s.journal_entry_id,
    connector: s.connector,
    attempts: s.attempts,
    lastError: s.last_error,
    lastAttemptTime: ts(s.last_attempt_at),
    gaveUp: s.status === 'failed',
    nextAttemptTime: s.status === 'pending' ? ts(s.next_attempt_at) : undefined,
  });
}

/** A posted journal entry in domain terms; rejects what no connector should receive. */
export function journalFromProto(entry: JournalEntry): Journal {
  const currencies = new Set<string>();
  const lines = entry.lines.map((l, i) => {
    const account = Account[l.account] ? `ACCOUNT_${Account[l.account]}` : '';
    if (!isOurAccount(account)) throw new InvalidField(`entry.lines[${i}].account`, `unknown account ${l.account}`);
    const debit = l.debit?.amountMinor ?? 0n;
    const credit = l.credit?.amountMinor ?? 0n;
    if (debit !== 0n && l.debit) currencies.add(l.debit.currencyCode);
    if (credit !== 0n && l.credit) currencies.add(l.credit.currencyCode);
    return { account, branchId: l.branchId, debitMinor: debit, creditMinor: credit, counterpartyBranchId: l.counterpartyBranchId };
  });
  if (currencies.size !== 1) throw new InvalidField('entry.lines', `a journal entry must use exactly one currency, found ${[...currencies].join(', ') || 'none'}`);
  if (!/^\d{4}-\d{2}-\d{2}$/.test(entry.accountingDate)) throw new InvalidField('entry.accounting_date', 'must be YYYY-MM-DD');
  return {
    tenantId: entry.tenantId,
    journalEntryId: entry.journalEntryId,
    cause: entry.cause,
    sourceId: entry.sourceId,
    entitlementId: entry.entitlementId,
    definitionId: entry.definitionId,
    accountingDate: entry.accountingDate,
    description: entry.description,
    currency: [...currencies][0]!,
    lines,
  };
}
