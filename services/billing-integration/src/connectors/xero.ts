import { buildXeroManualJournal } from '../domain/xero.js';
import type { Journal } from '../domain/journal.js';
import { DeliveryError, type AccountingConnector, type ConnectorSettings } from './connector.js';
import { sendJson } from './http.js';

export const XERO_DEFAULT_BASE_URL = 'https://api.xero.com/api.xro/2.0';

/**
 * Xero Accounting API, Manual Journals: PUT {base}/ManualJournals with the tenant's OAuth access
 * token and `xero-tenant-id`. `Idempotency-Key` = the journal entry id, so Xero answers a retried
 * request with the journal it already created instead of posting a second one.
 */
export function xeroConnector(options: { baseUrl?: string; fetch?: typeof fetch; timeoutMs?: number } = {}): AccountingConnector {
  const base = (options.baseUrl ?? XERO_DEFAULT_BASE_URL).replace(/\/$/, '');
  const doFetch = options.fetch ?? fetch;
  return {
    name: 'xero',
    async deliver(journal: Journal, settings: ConnectorSettings) {
      if (!settings.accessToken) throw new DeliveryError('xero: no access token configured', false);
      if (!settings.externalTenantId) throw new DeliveryError('xero: no Xero tenant id (external_tenant_id) configured', false);
      const { body } = buildXeroManualJournal(journal, settings.accountCodes);
      const out = await sendJson(doFetch, `${base}/ManualJournals`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${settings.accessToken}`, 'xero-tenant-id': settings.externalTenantId, 'idempotency-key': journal.journalEntryId },
        body,
        timeoutMs: options.timeoutMs ?? 15_000,
        what: 'xero ManualJournals',
      });
      const created = (out.ManualJournals as Array<Record<string, unknown>> | undefined)?.[0];
      const id = created?.ManualJournalID;
      if (typeof id !== 'string') throw new DeliveryError('xero ManualJournals response lacks ManualJournalID', true);
      return { externalId: id };
    },
  };
}
