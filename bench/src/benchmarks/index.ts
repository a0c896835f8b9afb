import { consumeThroughput } from './consume-throughput.js';
import type { Benchmark } from './types.js';

export const BENCHMARKS: Benchmark[] = [consumeThroughput];
