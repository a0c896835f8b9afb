import type { Journal } from '../domain/journal.js';

export const CONNECTORS = ['xero', 'qbo', 'csv', 'json'] as const;
export type ConnectorName = (typeof CONNECTORS)[number];

export function isConnectorName(name: string): name is ConnectorName {
  return (CONNECTORS as readonly string[]).includes(name);
}

/** A tenant's connector settings, with the access token decrypted only for the call. */
export interface ConnectorSettings {
  tenantId: string;
  accountCodes: Record<string, string>;
  externalTenantId: string;
  accessToken: string;
}

/** Thrown by a delivery; `retryable` says whether the same request may succeed later. */
export class DeliveryError extends Error {
  override readonly name = 'DeliveryError';
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly status?: number,
  ) {
    super(message);
  }
}

/**
 * Pushes one journal entry to an accounting system. Must be idempotent per journal entry id: a
 * retry after an unknown outcome (timeout, crash after the request) must not create a second entry.
 */
export interface AccountingConnector {
  readonly name: ConnectorName;
  deliver(journal: Journal, settings: ConnectorSettings): Promise<{ externalId: string }>;
}
