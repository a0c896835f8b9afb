export class AllocationError extends RangeError {
  override readonly name = 'AllocationError';
}

/**
 * Splits `total` minor units into parts proportional to `weights` (or into `weights` equal parts) by
 * the largest-remainder method: each part is its exact share rounded down, and the minor units left
 * over go one each to the parts with the largest remainders, earlier parts first on a tie. So the
 * parts always sum to `total`, each is within one minor unit of its exact share, a larger weight
 * never gets less, and growing one weight never shrinks its part (100.00 over 3 -> 33.34, 33.33, 33.33).
 *
 * A negative total is allocated as the mirror image of its absolute value. Zero weights get zero;
 * weights that are all zero can only share a zero total. Throws {@link AllocationError} for no
 * parts, negative weights, or a non-zero total over all-zero weights.
 */
export function allocate(total: bigint, weights: readonly bigint[] | number): bigint[] {
  const w = typeof weights === 'number' ? equalWeights(weights) : [...weights];
  if (w.length === 0) throw new AllocationError('allocate needs at least one weight');
  let sum = 0n;
  for (const [i, weight] of w.entries()) {
    if (weight < 0n) throw new AllocationError(`weight ${i} is negative (${weight})`);
    sum += weight;
  }
  if (sum === 0n) {
    if (total !== 0n) throw new AllocationError(`cannot allocate ${total} over weights that are all zero`);
    return w.map(() => 0n);
  }
  if (total < 0n) return allocate(-total, w).map((part) => -part);

  const parts = w.map((weight) => (total * weight) / sum);
  const remainders = w.map((weight) => (total * weight) % sum);
  let left = total - parts.reduce((a, b) => a + b, 0n);
  // Stable order: largest remainder first, then lowest index.
  const order = w.map((_, i) => i).sort((a, b) => {
    const ra = remainders[a]!;
    const rb = remainders[b]!;
    return ra === rb ? a - b : ra > rb ? -1 : 1;
  });
  for (const i of order) {
    if (left === 0n) break;
    parts[i]! += 1n;
    left -= 1n;
  }
  return parts;
}

function equalWeights(n: number): bigint[] {
  if (!Number.isSafeInteger(n) || n < 1) throw new AllocationError(`number of parts must be a positive integer, got ${n}`);
  return Array.from({ length: n }, () => 1n);
}

export type Rounding = 'half-up' | 'floor';

/**
 * `amount × numerator / denominator`, rounded to a whole minor unit:
 * - `'half-up'` (default): to the nearest, halves away from zero, so prorate(-x) = -prorate(x);
 * - `'floor'`: towards negative infinity (never more than the exact share).
 * `numerator` ≥ 0 and `denominator` > 0; a numerator above the denominator scales up.
 */
export function prorate(amount: bigint, numerator: bigint, denominator: bigint, rounding: Rounding = 'half-up'): bigint {
  if (denominator <= 0n) throw new RangeError(`denominator must be positive, got ${denominator}`);
  if (numerator < 0n) throw new RangeError(`numerator must not be negative, got ${numerator}`);
  const product = amount * numerator;
  switch (rounding) {
    case 'floor': {
      const q = product / denominator;
      return product % denominator !== 0n && product < 0n ? q - 1n : q;
    }
    case 'half-up': {
      const magnitude = product < 0n ? -product : product;
      const rounded = (2n * magnitude + denominator) / (2n * denominator);
      return product < 0n ? -rounded : rounded;
    }
    default:
      throw new RangeError(`unknown rounding ${String(rounding)}`);
  }
}
