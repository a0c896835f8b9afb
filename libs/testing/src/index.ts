export { testPostgres, createTestDatabase, type TestDatabase } from './postgres.js';
export { testNats, testNamespace } from './nats.js';
export { grpcJsClient, type GrpcJsClient } from './grpc.js';
export { readStream } from './streams.js';
export { countingStatements, type CountedDb } from './statements.js';
export { spentRowsLeftAfter } from './housekeeping.js';
export { promotedBy } from './promoted.js';
export { shareKeptOnTheirPages } from './pages.js';
