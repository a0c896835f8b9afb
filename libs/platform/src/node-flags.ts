/**
 * V8 flags every service process runs with: on its image's command line (deploy/docker/Dockerfile),
 * under `pnpm start` and in the benchmarks. They go on the command line, not in NODE_OPTIONS, which
 * Node allows to carry only a few V8 flags.
 *
 * A 64 MiB semi-space instead of Node 20's 16 MiB. The event consumers hold a batch's events, rows and
 * statement parameters for as long as its transaction runs, which at 16 MiB spans several scavenges:
 * the scavenger copied most of each batch once within the young generation and again into the old
 * one, and the old generation then needed a full collection to free it. With scavenges four times as
 * far apart most of a batch dies young. Measured on the expiry sweep (bench/JOURNAL.md): 9–20 % less CPU
 * per expiry in the scheduler, revenue and the ledger; the cost is up to about 100 MiB more resident
 * memory per process under that load.
 *
 * No allocation-site pretenuring. V8 allocates straight into the old generation the objects of an
 * allocation site whose objects mostly survived a scavenge. A request's objects survive one only when
 * it is in flight, but once some are allocated old, the young objects they point to survive every
 * scavenge until a full collection, which makes more sites look long-lived: a loop that promoted each
 * request's objects whole. Measured (bench/JOURNAL.md, 7 December from 03:11): a connect-node server
 * with the platform loaded and a method that does nothing, 11.4 KB promoted per request and
 * scavenges of 21 ms at the median, against 2.6 KB and 7 ms without; the ledger at 500 consumes/s,
 * 125 MB promoted in 12 s and scavenges of 20 ms against 63 MB and 11 ms.
 */
export const serviceNodeFlags: readonly string[] = ['--max-semi-space-size=64', '--no-allocation-site-pretenuring'];
