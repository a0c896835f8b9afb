import type { HandlerContext, ServiceImpl } from '@connectrpc/connect';
import { BillingService } from '@punchcard/contracts/punchcard/billing/v1/billing_pb';
import { callerOf } from '@punchcard/platform';
import { toConnectError } from './errors.js';
import type { BillingHandlers, Caller } from './handlers.js';

/**
 * The handlers as a Connect service: the caller comes from the verified token, never the request.
 * `handlers` is read per call: the routes are registered before the service's workers exist.
 */
export function billingServiceImpl(handlers: () => BillingHandlers): ServiceImpl<typeof BillingService> {
  const impl: Record<string, (req: unknown, ctx: HandlerContext) => Promise<unknown>> = {};
  for (const method of BillingService.methods) {
    impl[method.localName] = async (req, ctx) => {
      const handler = handlers()[method.localName as keyof BillingHandlers] as (caller: Caller, req: unknown) => Promise<unknown>;
      try {
        return await handler(callerOf(ctx), req);
      } catch (err) {
        throw toConnectError(err);
      }
    };
  }
  return impl as unknown as ServiceImpl<typeof BillingService>;
}
