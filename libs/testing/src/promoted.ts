import v8 from 'node:v8';
import vm from 'node:vm';

type Gc = (options?: { type: 'minor' | 'major' }) => void;

let gc: Gc | undefined;

/** V8's `gc()`, exposed at run time so no test needs `--expose-gc` on its command line. */
function collector(): Gc {
  if (!gc) {
    v8.setFlagsFromString('--expose-gc');
    gc = vm.runInNewContext('gc') as Gc;
  }
  return gc;
}

const oldSpaceUsed = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'old_space')!.space_used_size;

/**
 * Bytes the old generation grew by over `run` and two scavenges after it, from a full collection
 * before: what `run` allocated that outlived two scavenges (V8 promotes what survives a second one),
 * though nothing may refer to it any more. A long-lived structure that keeps dead objects reachable
 * from the old generation shows here long before it shows as a leak.
 */
export function promotedBy(run: () => void): number {
  const collect = collector();
  collect();
  const before = oldSpaceUsed();
  run();
  collect({ type: 'minor' });
  collect({ type: 'minor' });
  return oldSpaceUsed() - before;
}
