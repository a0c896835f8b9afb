/**
 * A Map for entries that pass through it all the time (requests waiting for an answer): a fresh Map
 * every `renewEvery` deletions. Once a Map's hash table has reached the old generation (the Map sat
 * still through two scavenges), nearly every entry that passes through it afterwards outlives the
 * scavenges until a full collection, kept by the replaced tables of the Map's later growth and
 * rebuilding: 2,000 entries with 16 at a time, 3.4 MB promoted (test/transient-map.test.ts), which
 * for a long-lived Map with steady traffic meant everything its entries held (bench/JOURNAL.md,
 * 7 December from 16:48). A fresh Map starts young: renewed every 64 deletions, 0.15–0.4 MB.
 * Iteration is in insertion order, as a Map's.
 */
export class TransientMap<K, V> {
  private map = new Map<K, V>();
  private deletions = 0;

  constructor(private readonly renewEvery = 256) {
    if (!(Number.isSafeInteger(renewEvery) && renewEvery >= 1)) throw new Error(`renewEvery must be a positive integer, got ${renewEvery}`);
  }

  get size(): number {
    return this.map.size;
  }

  get(key: K): V | undefined {
    return this.map.get(key);
  }

  set(key: K, value: V): this {
    this.map.set(key, value);
    return this;
  }

  delete(key: K): boolean {
    const deleted = this.map.delete(key);
    if (deleted && ++this.deletions % this.renewEvery === 0) this.map = new Map(this.map);
    return deleted;
  }

  clear(): void {
    this.map = new Map();
  }

  values(): MapIterator<V> {
    return this.map.values();
  }

  [Symbol.iterator](): MapIterator<[K, V]> {
    return this.map.entries();
  }
}
