import { randomUUID } from 'node:crypto';
import { startHttp, type Recorded } from './http-server.js';

const DATE = /^\d{4}-\d{2}-\d{2}$/;

function fail(message: string): never {
  throw new Error(message);
}

/** Decimal JSON number -> integer cents, rejecting more than two decimals (both APIs take 2-decimal amounts). */
function cents(raw: string, what: string): bigint {
  if (!/^-?\d+(\.\d{1,2})?$/.test(raw)) fail(`${what} is not a decimal with at most 2 places: ${raw}`);
  const [whole, frac = ''] = raw.replace('-', '').split('.');
  const v = BigInt(whole!) * 100n + BigInt(frac.padEnd(2, '0'));
  return raw.startsWith('-') ? -v : v;
}

/**
 * A fake Xero Accounting API: PUT /api.xro/2.0/ManualJournals, checking the documented request
 * format (bearer token, xero-tenant-id, Idempotency-Key; ManualJournals[1] with Narration, Date,
 * Status, JournalLines with AccountCode and non-zero LineAmount summing to zero). Like Xero, a repeated
 * Idempotency-Key answers with the journal it already created. `failNext` answers 500s.
 */
export async function startFakeXero(expect: { token: string; tenantId: string }) {
  const journals = new Map<string, { id: string; body: Record<string, unknown> }>();
  const state = { failNext: 0, failAfterApplyNext: 0 };
  const http = await startHttp((req: Recorded) => {
    if (req.method !== 'PUT' || req.path !== '/api.xro/2.0/ManualJournals') return { status: 404, body: { Message: 'not found' } };
    if (req.headers.authorization !== `Bearer ${expect.token}`) return { status: 401, body: { Title: 'Unauthorized' } };
    if (req.headers['xero-tenant-id'] !== expect.tenantId) return { status: 403, body: { Title: 'Forbidden' } };
    if (state.failNext > 0) {
      state.failNext--;
      return { status: 500, body: { Title: 'An error occurred' } };
    }
    const key = req.headers['idempotency-key'] ?? fail('Idempotency-Key header missing');
    if (!req.headers['content-type']?.startsWith('application/json')) fail('content-type must be application/json');
    const body = JSON.parse(req.body) as { ManualJournals?: Array<Record<string, unknown>> };
    const mj = body.ManualJournals;
    if (!Array.isArray(mj) || mj.length !== 1) fail('ManualJournals must hold one journal');
    const j = mj[0]!;
    if (typeof j.Narration !== 'string' || !j.Narration) fail('Narration required');
    if (typeof j.Date !== 'string' || !DATE.test(j.Date)) fail('Date must be YYYY-MM-DD');
    if (j.Status !== 'POSTED' && j.Status !== 'DRAFT') fail('Status must be POSTED or DRAFT');
    const lines = j.JournalLines as Array<Record<string, unknown>>;
    if (!Array.isArray(lines) || lines.length < 2) fail('JournalLines needs at least two lines');
    const raws = [...req.body.matchAll(/"LineAmount":(-?[\d.]+)/g)].map((m) => m[1]!);
    let sum = 0n;
    for (const [i, l] of lines.entries()) {
      if (typeof l.AccountCode !== 'string' || !l.AccountCode) fail(`JournalLines[${i}].AccountCode required`);
      if (typeof l.LineAmount !== 'number' || l.LineAmount === 0) fail(`JournalLines[${i}].LineAmount must be a non-zero number`);
      sum += cents(raws[i]!, `JournalLines[${i}].LineAmount`);
    }
    if (sum !== 0n) fail(`JournalLines must sum to zero (debits positive, credits negative), got ${sum}`);
    let stored = journals.get(key);
    if (!stored) {
      stored = { id: randomUUID(), body: j };
      journals.set(key, stored);
    }
    if (state.failAfterApplyNext > 0) {
      state.failAfterApplyNext--;
      return { status: 503, body: { Title: 'Service Unavailable' } };
    }
    return { status: 200, body: { Status: 'OK', ManualJournals: [{ ...j, ManualJournalID: stored.id }] } };
  });
  return { ...http, journals, state };
}

/**
 * A fake QuickBooks Online Accounting API: POST /v3/company/{realmId}/journalentry?requestid=..,
 * checking the documented format (bearer token, Line[] with DetailType JournalEntryLineDetail,
 * PostingType Debit/Credit, AccountRef.value, positive Amount; debits = credits = TotalAmt; DocNumber
 * at most 21 characters; TxnDate). A repeated requestid answers with the entry already created.
 */
export async function startFakeQbo(expect: { token: string; realmId: string }) {
  const entries = new Map<string, { id: string; body: Record<string, unknown> }>();
  const state = { failNext: 0 };
  const http = await startHttp((req: Recorded) => {
    if (req.method !== 'POST' || req.path !== `/v3/company/${expect.realmId}/journalentry`) return { status: 404, body: { Fault: { type: 'NotFound' } } };
    if (req.headers.authorization !== `Bearer ${expect.token}`) return { status: 401, body: { Fault: { type: 'AUTHENTICATION' } } };
    if (state.failNext > 0) {
      state.failNext--;
      return { status: 500, body: { Fault: { type: 'SystemFault' } } };
    }
    const requestId = req.query.get('requestid') ?? fail('requestid query parameter missing');
    if (!req.query.get('minorversion')) fail('minorversion query parameter missing');
    const body = JSON.parse(req.body) as Record<string, unknown>;
    if (typeof body.DocNumber !== 'string' || body.DocNumber.length === 0 || body.DocNumber.length > 21) fail('DocNumber must be 1-21 characters');
    if (typeof body.TxnDate !== 'string' || !DATE.test(body.TxnDate)) fail('TxnDate must be YYYY-MM-DD');
    const lines = body.Line as Array<Record<string, unknown>>;
    if (!Array.isArray(lines) || lines.length < 2) fail('Line needs a debit and a credit');
    const amounts = [...req.body.matchAll(/"Amount":([\d.]+)/g)].map((m) => m[1]!);
    let debit = 0n;
    let credit = 0n;
    for (const [i, l] of lines.entries()) {
      if (l.DetailType !== 'JournalEntryLineDetail') fail(`Line[${i}].DetailType must be JournalEntryLineDetail`);
      const d = l.JournalEntryLineDetail as { PostingType?: string; AccountRef?: { value?: string } } | undefined;
      if (!d?.AccountRef?.value) fail(`Line[${i}].JournalEntryLineDetail.AccountRef.value required`);
      const amount = cents(amounts[i] ?? fail(`Line[${i}].Amount required`), `Line[${i}].Amount`);
      if (amount <= 0n) fail(`Line[${i}].Amount must be positive`);
      if (d.PostingType === 'Debit') debit += amount;
      else if (d.PostingType === 'Credit') credit += amount;
      else fail(`Line[${i}].JournalEntryLineDetail.PostingType must be Debit or Credit`);
    }
    if (debit !== credit) fail(`debits ${debit} must equal credits ${credit}`);
    const total = cents(/"TotalAmt":([\d.]+)/.exec(req.body)?.[1] ?? fail('TotalAmt required'), 'TotalAmt');
    if (total !== debit) fail(`TotalAmt ${total} must equal the debits ${debit}`);
    let stored = entries.get(requestId);
    if (!stored) {
      stored = { id: String(1000 + entries.size), body };
      entries.set(requestId, stored);
    }
    return { status: 200, body: { JournalEntry: { ...body, Id: stored.id, SyncToken: '0' }, time: new Date().toISOString() } };
  });
  return { ...http, entries, state };
}
