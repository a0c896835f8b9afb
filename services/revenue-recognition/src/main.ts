import { runService } from '@punchcard/platform';
import { revenueService } from './service.js';

await runService(revenueService());
