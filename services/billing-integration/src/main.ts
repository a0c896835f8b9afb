import { runService } from '@punchcard/platform';
import { billingService } from './service.js';

await runService(billingService());
