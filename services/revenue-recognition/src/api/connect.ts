import type { HandlerContext, ServiceImpl } from '@connectrpc/connect';
import { RevenueService } from '@punchcard/contracts/punchcard/revenue/v1/revenue_pb';
import { callerOf } from '@punchcard/platform';
import type { RevenueHandlers } from './handlers.js';

/** The handlers as a Connect service: the caller comes from the verified token, never the request. */
export function revenueServiceImpl(handlers: RevenueHandlers): ServiceImpl<typeof RevenueService> {
  const impl: Record<string, (req: unknown, ctx: HandlerContext) => Promise<unknown>> = {};
  for (const method of RevenueService.methods) {
    const handler = handlers[method.localName as keyof RevenueHandlers] as (caller: ReturnType<typeof callerOf>, req: unknown) => Promise<unknown>;
    impl[method.localName] = (req, ctx) => handler(callerOf(ctx), req);
  }
  return impl as unknown as ServiceImpl<typeof RevenueService>;
}
