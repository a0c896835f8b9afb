/**
 * What a sweep's CPU per expiry means for the 1M target on this machine. The sweep is bound by CPU
 * (the machine stays busy throughout), so 1M expiries take at least the CPU they need spread over
 * every core: what a measured time has beyond that floor was lost to waiting (revenue finishing
 * alone, say), not to work. And the other way round, the CPU per expiry that fits the target with
 * every core busy: how far the work itself is from it.
 */
export function cpuBoundOf(
  msPerExpiry: number,
  cores: number,
  expiries = 1_000_000,
  targetSeconds = 300,
): { cores: number; floorSeconds: number; budgetMsPerExpiry: number } {
  if (!(cores > 0)) throw new Error(`cores must be positive, got ${cores}`);
  return {
    cores,
    floorSeconds: Math.round((msPerExpiry * expiries) / 1000 / cores),
    budgetMsPerExpiry: Math.round(((targetSeconds * 1000 * cores) / expiries) * 1000) / 1000,
  };
}
