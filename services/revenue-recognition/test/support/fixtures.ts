import { RefundMethod, SessionOrder } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import type { Terms } from './ledger-sim.js';

const sgd = (amountMinor: bigint) => ({ currencyCode: 'SGD', amountMinor });

export interface RefundTerms {
  method: RefundMethod;
  adminFee?: bigint;
}

const refundPolicy = (r: RefundTerms | undefined): Pick<Terms, 'refund'> =>
  r ? { refund: { method: r.method, adminFee: sgd(r.adminFee ?? 0n) } } : {};

/** Buy 3 Free 1 at 300.00: four sessions of 75.00 (standalone 90.00); delivering costs 20.00 (25.00 at branch B). */
export function buy3free1(o: { breakageBps?: number; costBranch?: string; refund?: RefundTerms } = {}): Terms {
  return {
    code: 'B3F1',
    name: 'Buy 3 Free 1',
    price: sgd(30000n),
    paidSessions: 3,
    bonusSessions: 1,
    serviceCodes: ['CHIRO_ADJUST'],
    standalonePricePerSession: sgd(9000n),
    deliveryCostPerSession: sgd(2000n),
    deliveryCostByBranch: o.costBranch ? [{ branchId: o.costBranch, costPerSession: sgd(2500n) }] : [],
    expectedBreakageBps: o.breakageBps ?? 0,
    sessionOrder: SessionOrder.PAID_FIRST,
    topUp: { enabled: true, pricePerSession: sgd(3000n) },
    upgrade: { targetDefinitionIds: ['def-TEN'] },
    ...refundPolicy(o.refund),
  };
}

/** 100.00 over three sessions: 33.34 + 33.33 + 33.33; delivering costs 10.00. */
export function threeForHundred(o: { breakageBps?: number; refund?: RefundTerms; standalone?: bigint } = {}): Terms {
  return {
    code: 'P3',
    name: 'Three for a hundred',
    price: sgd(10000n),
    paidSessions: 3,
    bonusSessions: 0,
    serviceCodes: ['PHYSIO'],
    ...(o.standalone ? { standalonePricePerSession: sgd(o.standalone) } : {}),
    deliveryCostPerSession: sgd(1000n),
    expectedBreakageBps: o.breakageBps ?? 0,
    topUp: { enabled: true, pricePerSession: sgd(3500n) },
    upgrade: { targetDefinitionIds: ['def-TEN'] },
    ...refundPolicy(o.refund),
  };
}

/** The upgrade target: ten sessions for 800.00 (80.00 each); delivering costs 15.00. */
export function tenPack(): Terms {
  return {
    code: 'TEN',
    name: 'Ten-session pass',
    price: sgd(80000n),
    paidSessions: 10,
    bonusSessions: 0,
    serviceCodes: ['CHIRO_ADJUST', 'PHYSIO'],
    deliveryCostPerSession: sgd(1500n),
  };
}
