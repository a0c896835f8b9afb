export {
  STREAMS,
  STREAM_KEYS,
  streamKeyOf,
  streamName,
  withNamespace,
  withoutNamespace,
  eventSubject,
  subjectFor,
  eventType,
  deadLetterSubject,
  subjectMatches,
  assertToken,
  type StreamKey,
} from './names.js';
export { connectBus, type Bus, type ConnectBusOptions } from './connection.js';
export { declareStreams, deleteStreams, DEFAULT_DUPLICATE_WINDOW_MS, type DeclareStreamsOptions } from './streams.js';
export {
  CE,
  CONTENT_TYPE,
  PROTOBUF_CONTENT_TYPE,
  TRACEPARENT,
  TRACESTATE,
  eventHeaders,
  headerRecord,
  dataSchemaFor,
  typeNameOfDataSchema,
  type EventEnvelope,
} from './cloudevents.js';
export { traceHeaders, contextFromHeaders } from './trace.js';
export { publishEvent, publishEnvelope, type PublishEventInput, type PublishEnvelopeOptions } from './publish.js';
export {
  outboxMigration,
  outboxSeqNotUniqueMigration,
  outboxDeletedOnPublishMigration,
  outboxKeyedBySeqMigration,
  enqueue,
  enqueueMany,
  OUTBOX_CHANNEL,
  type EnqueueInput,
  type EventInput,
  type EnqueuedEvent,
  type EnqueueOptions,
  type OwnWrite,
  sqlWrite,
  type OutboxTable,
  type OutboxTables,
} from './outbox.js';
export { ackRoutingPublisher, requestingPublisher, type AckRoutingPublisher, type StreamPublisher } from './stream-publisher.js';
export { startOutboxRelay, publishOutboxRow, type OutboxRow, type OutboxRelay, type OutboxRelayOptions, type OutboxRelayStats } from './relay.js';
export {
  inboxMigration,
  startConsumer,
  pruneInbox,
  RetryLater,
  defaultRetryDelayMs,
  DEADLETTER_HEADERS,
  type ConsumedEvent,
  type Deferral,
  type ConsumeOutcome,
  type ConsumerOptions,
  type RunningConsumer,
  type InboxTable,
  type InboxTables,
} from './consumer.js';
