/** The local launcher's building blocks, for cross-service tests (test/e2e) that boot the real services. */
export { availableServices, migrateAll, REPO_ROOT, SERVICES, startStack } from './stack.js';
export type { RunningService, RunningStack, ServiceSpec, StackOptions, StackSecrets } from './stack.js';
export { lineFormatter, lines } from './logs.js';
