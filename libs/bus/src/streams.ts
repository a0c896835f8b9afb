import {
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type JetStreamManager,
  type StreamConfig,
  type StreamInfo,
} from '@nats-io/jetstream';
import { nanos } from '@nats-io/nats-core';
import { STREAM_KEYS, STREAMS, streamName, withNamespace, type StreamKey } from './names.js';

export interface DeclareStreamsOptions {
  /** '' in production; a `testNamespace()` in tests. */
  namespace: string;
  /** Which streams; default all of them. */
  streams?: readonly StreamKey[];
  /** How long JetStream remembers a `Nats-Msg-Id` to drop a republished duplicate; default 2 minutes. */
  duplicateWindowMs?: number;
  /** Default 1 (a single server); 3 for a clustered JetStream. */
  replicas?: number;
}

export const DEFAULT_DUPLICATE_WINDOW_MS = 120_000;

/**
 * Creates the streams, or updates subjects, duplicate window and replicas of ones that exist, so every
 * service can run it at start. Uses only nats-server 2.9 stream features.
 */
export async function declareStreams(jsm: JetStreamManager, options: DeclareStreamsOptions): Promise<StreamInfo[]> {
  const wanted = options.streams ?? STREAM_KEYS;
  const infos: StreamInfo[] = [];
  for (const key of wanted) {
    const config: Partial<StreamConfig> & { name: string } = {
      name: streamName(options.namespace, key),
      subjects: [withNamespace(options.namespace, STREAMS[key])],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      duplicate_window: nanos(options.duplicateWindowMs ?? DEFAULT_DUPLICATE_WINDOW_MS),
      num_replicas: options.replicas ?? 1,
    };
    infos.push(await declareStream(jsm, config));
  }
  return infos;
}

async function declareStream(jsm: JetStreamManager, config: Partial<StreamConfig> & { name: string }): Promise<StreamInfo> {
  const existing = await streamInfo(jsm, config.name);
  if (!existing) {
    try {
      return await jsm.streams.add(config);
    } catch (err) {
      // Another service created it between our look and our add: fall through to the update.
      if (!(await streamInfo(jsm, config.name))) throw err;
    }
  } else if (
    existing.config.duplicate_window === config.duplicate_window &&
    existing.config.num_replicas === config.num_replicas &&
    sameSubjects(existing.config.subjects, config.subjects)
  ) {
    return existing;
  }
  return jsm.streams.update(config.name, {
    subjects: config.subjects,
    duplicate_window: config.duplicate_window,
    num_replicas: config.num_replicas,
  });
}

async function streamInfo(jsm: JetStreamManager, name: string): Promise<StreamInfo | undefined> {
  try {
    return await jsm.streams.info(name);
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) return undefined;
    throw err;
  }
}

function sameSubjects(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  const left = [...(a ?? [])].sort();
  const right = [...(b ?? [])].sort();
  return left.length === right.length && left.every((s, i) => s === right[i]);
}

/** Deletes the streams of a namespace (tests clean up their own). */
export async function deleteStreams(jsm: JetStreamManager, namespace: string): Promise<void> {
  if (!namespace) throw new Error('refusing to delete the production (empty-namespace) streams');
  for (const key of STREAM_KEYS) {
    const name = streamName(namespace, key);
    if (await streamInfo(jsm, name)) await jsm.streams.delete(name);
  }
}
