import { runService } from '@punchcard/platform';
import { expirySchedulerService } from './service.js';

await runService(expirySchedulerService());
