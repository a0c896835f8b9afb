import { describe, expect, it } from 'vitest';
import { handledWithin, handlingShares, quantileBucket } from '../src/handling-time.js';

const exposition = (consumeOk: number[], other = 7) => {
  const bounds = ['0.005', '0.01', '0.025', '+Inf'];
  const lines = ['# HELP grpc_server_handling_seconds Time to handle an RPC', '# TYPE grpc_server_handling_seconds histogram'];
  bounds.forEach((le, i) => {
    lines.push(`grpc_server_handling_seconds_bucket{le="${le}",grpc_type="unary",grpc_service="punchcard.ledger.v1.LedgerService",grpc_method="Consume",grpc_code="OK"} ${consumeOk[i]}`);
    lines.push(`grpc_server_handling_seconds_bucket{le="${le}",grpc_type="unary",grpc_service="punchcard.ledger.v1.LedgerService",grpc_method="Consume",grpc_code="RESOURCE_EXHAUSTED"} ${other}`);
    lines.push(`grpc_server_handling_seconds_bucket{le="${le}",grpc_type="unary",grpc_service="punchcard.ledger.v1.LedgerService",grpc_method="Purchase",grpc_code="OK"} ${other}`);
  });
  lines.push(`grpc_server_handling_seconds_sum{grpc_method="Consume",grpc_code="OK"} 1.5`);
  return lines.join('\n');
};

describe("the ledger's own handling time", () => {
  it('reads the successful calls of one method, by bucket', () => {
    const counts = handledWithin(exposition([10, 40, 90, 100]), 'Consume');
    expect([...counts.entries()]).toEqual([
      [0.005, 10],
      [0.01, 40],
      [0.025, 90],
      [Infinity, 100],
    ]);
  });

  it('counts only the calls between two readings', () => {
    const before = handledWithin(exposition([10, 40, 90, 100]), 'Consume');
    const after = handledWithin(exposition([10, 60, 150, 200]), 'Consume');
    expect(handlingShares(before, after)).toEqual([
      { withinMs: 5, share: 0 },
      { withinMs: 10, share: 0.2 },
      { withinMs: 25, share: 0.6 },
    ]);
  });

  it('names the bucket a quantile falls in, past the last bound too', () => {
    const shares = [
      { withinMs: 5, share: 0.5 },
      { withinMs: 10, share: 0.98 },
      { withinMs: 25, share: 0.995 },
    ];
    expect(quantileBucket(shares, 0.5)).toEqual({ aboveMs: 0, withinMs: 5 });
    expect(quantileBucket(shares, 0.99)).toEqual({ aboveMs: 10, withinMs: 25 });
    expect(quantileBucket(shares, 0.999)).toEqual({ aboveMs: 25, withinMs: Infinity });
  });

  it('has no shares when no call was made between the readings', () => {
    const reading = handledWithin(exposition([1, 2, 3, 4]), 'Consume');
    expect(handlingShares(reading, reading)).toEqual([]);
  });
});
