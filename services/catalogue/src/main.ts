import { runService } from '@punchcard/platform';
import { catalogueService } from './service.js';

await runService(catalogueService());
