import { SessionOrder } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import type { Terms } from './ledger-sim.js';

const sgd = (amountMinor: bigint) => ({ currencyCode: 'SGD', amountMinor });

/** Buy 3 Free 1 at 300.00: four sessions of 75.00; delivering costs 20.00 (25.00 at branch B). */
export function buy3free1(o: { breakageBps?: number; costBranch?: string } = {}): Terms {
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
  };
}

/** 100.00 over three sessions: 33.34 + 33.33 + 33.33; delivering costs 10.00. */
export function threeForHundred(o: { breakageBps?: number } = {}): Terms {
  return {
    code: 'P3',
    name: 'Three for a hundred',
    price: sgd(10000n),
    paidSessions: 3,
    bonusSessions: 0,
    serviceCodes: ['PHYSIO'],
    deliveryCostPerSession: sgd(1000n),
    expectedBreakageBps: o.breakageBps ?? 0,
    topUp: { enabled: true, pricePerSession: sgd(3500n) },
  };
}
