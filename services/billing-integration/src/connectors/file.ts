import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { journalsToCsv, journalsToJson } from '../domain/export.js';
import { checkBalanced, type Journal } from '../domain/journal.js';
import { DeliveryError, type AccountingConnector } from './connector.js';

/**
 * File export for accounting systems without a connector: one file per journal entry,
 * `<dir>/<tenant>/<accounting date>_<journal entry id>.csv|json`, written to a temporary name and
 * renamed, so a reader never sees half a file and a retry rewrites the same file.
 */
export function fileConnector(format: 'csv' | 'json', options: { directory: string | undefined }): AccountingConnector {
  return {
    name: format,
    async deliver(journal: Journal) {
      if (!options.directory) throw new DeliveryError(`${format} export: BILLING_EXPORT_DIR is not set`, false);
      checkBalanced(journal);
      if (!/^[A-Za-z0-9_-]+$/.test(journal.tenantId) || !/^[A-Za-z0-9_-]+$/.test(journal.journalEntryId)) {
        throw new DeliveryError(`${format} export: tenant or journal entry id is not a safe file name`, false);
      }
      const dir = join(options.directory, journal.tenantId);
      const name = `${journal.accountingDate}_${journal.journalEntryId}.${format}`;
      const content = format === 'csv' ? journalsToCsv([journal]) : journalsToJson([journal]);
      try {
        await mkdir(dir, { recursive: true });
        const tmp = join(dir, `.${name}.tmp`);
        await writeFile(tmp, content);
        await rename(tmp, join(dir, name));
      } catch (err) {
        throw new DeliveryError(`${format} export: ${(err as Error).message}`, true);
      }
      return { externalId: name };
    },
  };
}
