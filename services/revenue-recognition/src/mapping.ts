import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { MoneySchema } from '@punchcard/contracts/punchcard/common/v1/common_pb';
import { EntitlementStatus as ProtoStatus } from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import {
  Account as ProtoAccount,
  ContractSchema,
  DeferredMovement as ProtoMovement,
  JournalEntrySchema,
  type Contract as ContractMessage,
  type JournalEntry as JournalEntryMessage,
} from '@punchcard/contracts/punchcard/revenue/v1/revenue_pb';
import { deferredBalance, type Contract } from './domain/contract.js';
import type { Account, EntitlementStatus, JournalLine, Movement } from './domain/types.js';
import type { PostedEntry } from './store/journal.js';

/** protobuf ↔ domain vocabulary, shared by the API handlers and the event builders. */

export function money(currency: string, amountMinor: bigint): MessageInitShape<typeof MoneySchema> {
  return { currencyCode: currency, amountMinor };
}

export function accountToProto(account: Account): ProtoAccount {
  return ProtoAccount[account];
}


export function movementToProto(movement: Movement | null): ProtoMovement {
  return movement ? ProtoMovement[movement] : ProtoMovement.UNSPECIFIED;
}

/** The ledger's status enum as revenue's vocabulary; UNSPECIFIED keeps what was known. */
export function statusFromProto(status: ProtoStatus, fallback: EntitlementStatus): EntitlementStatus {
  if (status === ProtoStatus.UNSPECIFIED) return fallback;
  const name = ProtoStatus[status] as EntitlementStatus | undefined;
  return name ?? fallback;
}

function lineToProto(currency: string, l: JournalLine) {
  return {
    account: accountToProto(l.account),
    branchId: l.branchId,
    debit: money(currency, l.debit),
    credit: money(currency, l.credit),
    counterpartyBranchId: l.counterpartyBranchId,
    movement: movementToProto(l.movement),
    sessions: l.sessions,
    deliveryCost: money(currency, l.deliveryCost),
  };
}

export function journalEntryToProto(e: PostedEntry): JournalEntryMessage {
  return create(JournalEntrySchema, {
    tenantId: e.tenantId,
    journalEntryId: e.journalEntryId,
    cause: e.cause,
    sourceId: e.sourceId,
    entitlementId: e.entitlementId,
    definitionId: e.definitionId,
    postedTime: timestampFromDate(e.postedAt),
    accountingDate: e.accountingDate,
    lines: e.lines.map((l) => lineToProto(e.currency, l)),
    description: e.description,
  });
}

export function contractToProto(c: Contract): ContractMessage {
  return create(ContractSchema, {
    tenantId: c.tenantId,
    entitlementId: c.entitlementId,
    definitionId: c.definitionId,
    // Everything the contract was sold for: the purchase and any top-ups or carried-in value.
    price: money(c.currency, c.lines.reduce((sum, l) => sum + l.amount, 0n)),
    sessions: c.sessions.map((s) => ({
      sessionNumber: s.number,
      bonus: s.bonus,
      value: money(c.currency, s.value),
      consumedByEntryId: s.consumedBy?.entryId ?? '',
      earningBranchId: s.consumedBy?.earningBranchId ?? '',
      removed: s.removed,
    })),
    deferredBalance: money(c.currency, deferredBalance(c)),
    recognised: money(c.currency, c.packageRecognised),
    breakageRecognised: money(c.currency, c.breakageRecognised),
    liabilityBranchId: c.liabilityBranchId,
    expectedBreakageBps: c.breakageBps,
  });
}
