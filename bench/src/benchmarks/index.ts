import { consumeThroughput } from './consume-throughput.js';
import { eventLag } from './event-lag.js';
import { expirySweep } from './expiry-sweep.js';
import { hotRow } from './hot-row.js';
import { report } from './report.js';
import type { Benchmark } from './types.js';

export const BENCHMARKS: Benchmark[] = [consumeThroughput, hotRow, eventLag, expirySweep, report];
