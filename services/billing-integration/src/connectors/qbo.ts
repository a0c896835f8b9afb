import { buildQboJournalEntry } from '../domain/qbo.js';
import type { Journal } from '../domain/journal.js';
import { DeliveryError, type AccountingConnector, type ConnectorSettings } from './connector.js';
import { sendJson } from './http.js';

export const QBO_DEFAULT_BASE_URL = 'https://quickbooks.api.intuit.com';
export const QBO_MINOR_VERSION = '75';

/**
 * QuickBooks Online Accounting API: POST {base}/v3/company/{realmId}/journalentry with the tenant's
 * OAuth access token. `requestid` = the journal entry id makes QuickBooks answer a retried request
 * with the first result; DocNumber carries the id too (see qboDocNumber).
 */
export function qboConnector(options: { baseUrl?: string; fetch?: typeof fetch; timeoutMs?: number } = {}): AccountingConnector {
  const base = (options.baseUrl ?? QBO_DEFAULT_BASE_URL).replace(/\/$/, '');
  const doFetch = options.fetch ?? fetch;
  return {
    name: 'qbo',
    async deliver(journal: Journal, settings: ConnectorSettings) {
      if (!settings.accessToken) throw new DeliveryError('qbo: no access token configured', false);
      if (!/^\d+$/.test(settings.externalTenantId)) throw new DeliveryError('qbo: external_tenant_id must be the numeric realm id', false);
      const { body } = buildQboJournalEntry(journal, settings.accountCodes);
      const url = new URL(`${base}/v3/company/${settings.externalTenantId}/journalentry`);
      url.searchParams.set('minorversion', QBO_MINOR_VERSION);
      url.searchParams.set('requestid', journal.journalEntryId);
      const out = await sendJson(doFetch, url.toString(), {
        method: 'POST',
        headers: { authorization: `Bearer ${settings.accessToken}` },
        body,
        timeoutMs: options.timeoutMs ?? 15_000,
        what: 'qbo journalentry',
      });
      const id = (out.JournalEntry as Record<string, unknown> | undefined)?.Id;
      if (typeof id !== 'string') throw new DeliveryError('qbo journalentry response lacks JournalEntry.Id', true);
      return { externalId: id };
    },
  };
}
