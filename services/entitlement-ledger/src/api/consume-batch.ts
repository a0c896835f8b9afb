import { context, ROOT_CONTEXT, SpanStatusCode, trace, type Context } from '@opentelemetry/api';
import { inTransaction } from '@punchcard/db';
import { ConsumeResponseSchema, LedgerService, type ConsumeRequest, type ConsumeResponse } from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import { ALONE, applyNamedConsumes, type NamedConsume } from '../operations/consume-batch.js';
import { checkConsume, requireUuid, type Caller } from '../operations/ledger.js';
import { encodedMessage } from '../proto/encoded.js';
import { onceEach, type KeyClaim } from '../store/idempotency.js';
import type { GroupOutcome } from '../metrics.js';
import { GroupCommit } from './group-commit.js';
import { consumeFields, idempotencyClaim, type LedgerApiDeps } from './handlers.js';

/** How Consume RPCs of named entitlements are grouped into transactions. */
export interface ConsumeBatching {
  /** Transactions of grouped consumes running at once, the later ones beside stalled ones only. */
  concurrency: number;
  /** How long a grouped transaction runs before the next may start beside it. */
  stalledAfterMs?: number;
  /** Consumes per transaction at most. */
  maxBatch: number;
  /** Called as each grouped transaction ends, with its size. */
  observe?: ((size: number, outcome: GroupOutcome) => void) | undefined;
}

interface Job {
  caller: Caller;
  request: ConsumeRequest;
  call: NamedConsume;
  claim: KeyClaim;
}

/** One consume in a transaction of its own: the handler's path for every other Consume. */
export type ConsumeAlone = (caller: Caller, request: ConsumeRequest) => Promise<ConsumeResponse>;

const tracer = () => trace.getTracer('@punchcard/entitlement-ledger');

/**
 * Consume RPCs of a named entitlement without a visit, grouped (see GroupCommit): the consumes that
 * wait while `concurrency` transactions run go together in the next, one per entitlement and key.
 * Each answers exactly as it would alone (same checks, entry, event, idempotency under the same
 * method and request digest, same refusal); a consume by a member other than the holder, and every
 * consume of a transaction that fails, runs alone instead.
 */
export function consumeGroupCommit(deps: LedgerApiDeps, batching: ConsumeBatching, alone: ConsumeAlone) {
  const group = new GroupCommit<Job, ConsumeResponse>({
    concurrency: batching.concurrency,
    maxBatch: batching.maxBatch,
    stalledAfterMs: batching.stalledAfterMs ?? 0,
    groupOf: (job) => job.caller.tenantId,
    conflictsOf: (job) => [`entitlement ${job.call.entitlementId}`, `key ${job.claim.key}`],
    run: (jobs) => runBatch(jobs),
  });

  async function runBatch(jobs: readonly Job[]): Promise<PromiseSettledResult<ConsumeResponse>[]> {
    const tenantId = jobs[0]!.caller.tenantId;
    const span = tracer().startSpan(
      'ledger consume batch',
      { attributes: { 'tenant.id': tenantId, 'punchcard.batch.size': jobs.length }, links: jobs.flatMap((j) => spanLink(j.call.trace)) },
      ROOT_CONTEXT,
    );
    let outcomes;
    try {
      outcomes = await context.with(trace.setSpan(ROOT_CONTEXT, span), () =>
        inTransaction(deps.db, (tx) =>
          onceEach(
            tx,
            tenantId,
            jobs.map((j) => j.claim),
            (keys, answersWrite) =>
              applyNamedConsumes(
                tx,
                deps,
                tenantId,
                jobs.map((j) => j.call),
                { keys, answersWrite },
              ),
          ),
        ),
      );
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
      batching.observe?.(jobs.length, 'failed');
      deps.logger?.warn({ err, consumes: jobs.length }, 'grouped consumes failed; applying them one at a time');
      return Promise.allSettled(jobs.map((j) => runAlone(j)));
    } finally {
      span.end();
    }
    batching.observe?.(jobs.length, 'committed');
    return Promise.allSettled(
      outcomes.map(async (o, n) => {
        const job = jobs[n]!;
        if ('encoded' in o) return encodedMessage(ConsumeResponseSchema, o.encoded);
        if (o.refused === ALONE) return runAlone(job);
        throw o.refused;
      }),
    );
  }

  function runAlone(job: Job): Promise<ConsumeResponse> {
    return context.with(job.call.trace ?? ROOT_CONTEXT, () => alone(job.caller, job.request));
  }

  return {
    /** Whether `request` can go in a group: a named entitlement and no visit (a visit is claimed by a path of its own). */
    takes: (request: ConsumeRequest) => request.entitlementId !== '' && request.visitId === '',

    /** Checks the request as the consume alone would (throwing its errors), then waits for a transaction. */
    consume(caller: Caller, request: ConsumeRequest): Promise<ConsumeResponse> {
      const claim = idempotencyClaim('Consume', LedgerService.method.consume.input, request);
      const fields = consumeFields(request);
      const call: NamedConsume = {
        caller,
        requestId: claim.key,
        entitlementId: requireUuid('entitlement_id', request.entitlementId),
        request: fields,
        ...checkConsume(fields, deps.clock()),
        trace: context.active(),
      };
      return group.submit({ caller, request, call, claim });
    },
  };
}

function spanLink(ctx: Context | undefined) {
  const span = ctx && trace.getSpan(ctx);
  return span ? [{ context: span.spanContext() }] : [];
}
