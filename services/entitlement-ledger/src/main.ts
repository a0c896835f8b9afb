import { runService } from '@punchcard/platform';
import { ledgerService } from './service.js';

await runService(ledgerService());
