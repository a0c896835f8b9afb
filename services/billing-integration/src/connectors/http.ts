import { classifyHttpFailure } from '../domain/backoff.js';
import { DeliveryError } from './connector.js';

/** POSTs/PUTs JSON and maps failures to retryable or permanent DeliveryErrors. */
export async function sendJson(
  doFetch: typeof fetch,
  target: string,
  init: { method: 'POST' | 'PUT'; headers: Record<string, string>; body: string; timeoutMs: number; what: string },
): Promise<Record<string, unknown>> {
  let res: Response;
  try {
    res = await doFetch(target, {
      method: init.method,
      headers: { 'content-type': 'application/json', accept: 'application/json', ...init.headers },
      body: init.body,
      signal: AbortSignal.timeout(init.timeoutMs),
    });
  } catch (err) {
    throw new DeliveryError(`${init.what}: ${(err as Error).message}`, true);
  }
  const text = await res.text();
  if (!res.ok) {
    throw new DeliveryError(`${init.what} answered ${res.status}: ${text.slice(0, 300)}`, classifyHttpFailure(res.status) === 'retryable', res.status);
  }
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new DeliveryError(`${init.what} answered ${res.status} with a body that is not JSON`, true, res.status);
  }
}
