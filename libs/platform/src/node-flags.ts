/**
 * V8 flags every service process runs with: in its image (`NODE_OPTIONS` in deploy/docker/Dockerfile),
 * under `pnpm start` and in the benchmarks.
 *
 * A 64 MiB semi-space instead of Node 20's 16 MiB. The event consumers hold a batch's events, rows and
 * statement parameters for as long as its transaction runs, which at 16 MiB spans several scavenges:
 * the scavenger copied most of each batch once within the young generation and again into the old
 * one, and the old generation then needed a full collection to free it. With scavenges four times as
 * far apart most of a batch dies young. Measured on the expiry sweep (bench/README.md): 9–20 % less CPU
 * per expiry in the scheduler, revenue and the ledger; the cost is up to about 100 MiB more resident
 * memory per process under that load.
 */
export const serviceNodeFlags: readonly string[] = ['--max-semi-space-size=64'];
