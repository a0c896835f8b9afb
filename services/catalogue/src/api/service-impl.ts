import type { HandlerContext, ServiceImpl } from '@connectrpc/connect';
import type { CatalogueService } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import { callerOf, type Caller } from '@punchcard/platform';
import { toConnectError } from './errors.js';
import { catalogueHandlers, type HandlerDeps } from './handlers.js';

/** The Connect implementation: the caller comes from the verified token, domain errors become statuses. */
export function catalogueServiceImpl(deps: HandlerDeps): ServiceImpl<typeof CatalogueService> {
  const h = catalogueHandlers(deps);
  const wrap =
    <R, O>(fn: (caller: Caller, req: R) => Promise<O>) =>
    async (req: R, ctx: HandlerContext): Promise<O> => {
      try {
        return await fn(callerOf(ctx), req);
      } catch (err) {
        throw toConnectError(err);
      }
    };
  return {
    createTenant: wrap(h.createTenant),
    getTenant: wrap(h.getTenant),
    updateTenant: wrap(h.updateTenant),
    createBranch: wrap(h.createBranch),
    updateBranch: wrap(h.updateBranch),
    getBranch: wrap(h.getBranch),
    listBranches: wrap(h.listBranches),
    createDefinition: wrap(h.createDefinition),
    updateDefinition: wrap(h.updateDefinition),
    getDefinition: wrap(h.getDefinition),
    listDefinitions: wrap(h.listDefinitions),
    publishDefinition: wrap(h.publishDefinition),
    retireDefinition: wrap(h.retireDefinition),
  };
}
