import { Histogram, type Registry } from 'prom-client';

/** How a grouped transaction of consumes ended: committed, or failed and applied one at a time instead. */
export type GroupOutcome = 'committed' | 'failed';

/** The ledger's own series on the platform's /metrics: the size of each grouped transaction of Consume RPCs. */
export function consumeGroupMetrics(registry: Registry): (size: number, outcome: GroupOutcome) => void {
  const sizes = new Histogram({
    name: 'punchcard_ledger_consume_group_size',
    help: 'Consume RPCs per grouped transaction, by outcome (committed; failed: applied one at a time instead)',
    labelNames: ['outcome'] as const,
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
    registers: [registry],
  });
  return (size, outcome) => sizes.observe({ outcome }, size);
}
