import { Validator } from '@seriousme/openapi-schema-validator';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { deadlinesFor } from '#core/deadlines';
import type { Regulation, RequestRecord, RequestStatus, RequestType } from '#core/request';
import { handlerEnvironment, lambdaContext } from '../fixtures/lambda.ts';
import { createRequestsTable, dynamoDb, dynamoUnavailable, type DynamoEndpoint } from '../fixtures/servers.ts';

/**
 * The API's contract, docs/openapi.yaml: a valid OpenAPI 3.1 document, and what the handlers answer
 * on DynamoDB Local matches its schemas. Listing goes through the ByMonth and Open indexes, never a
 * scan: filters, months, pagination, the overdue most overdue first.
 */
const document = parse(readFileSync('docs/openapi.yaml', 'utf8')) as { components: { schemas: Record<string, unknown> } };
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats.default(ajv);
ajv.addSchema({ ...document, $id: 'openapi' });
const matches = (schema: string, body: unknown) => {
  const validate = ajv.getSchema(`openapi#/components/schemas/${schema}`)!;
  return validate(body) ? [] : validate.errors;
};

const unavailable = dynamoUnavailable();
if (unavailable) console.warn(`skipping the API contract test: ${unavailable}`);

describe('The OpenAPI document', () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    const result = await new Validator().validate(document);
    expect(JSON.stringify(result.errors ?? [])).toBe('[]');
    expect(result.valid).toBe(true);
  });
});

describe.skipIf(unavailable)('Functions: get-request, lookup-subject and report-requests handlers, against the OpenAPI document', () => {
  let server: DynamoEndpoint;
  type Handler = (e: APIGatewayProxyEvent, c: unknown) => Promise<APIGatewayProxyResult>;
  let handler: Handler;
  let lookup: Handler;
  let report: Handler;
  let store: import('#functions/commons/request-store').RequestStore;
  const commands: string[] = [];
  const now = Date.now();
  const day = 86_400_000;

  beforeAll(async () => {
    server = await dynamoDb();
    handlerEnvironment({ AWS_ENDPOINT_URL_DYNAMODB: server.endpoint });
    await createRequestsTable(server.client);
    const { dynamo } = await import('#functions/commons/clients');
    dynamo.middlewareStack.add((next, context) => (args) => (commands.push(context.commandName ?? ''), next(args)), { step: 'initialize' });
    store = new (await import('#functions/commons/request-store')).RequestStore('requests');
    ({ handler } = (await import('#functions/get-request/handler')) as unknown as { handler: Handler });
    ({ handler: lookup } = (await import('#functions/lookup-subject/handler')) as unknown as { handler: Handler });
    ({ handler: report } = (await import('#functions/report-requests/handler')) as unknown as { handler: Handler });
    // Thirty requests over 60 days (two or three months); every fifth still open and past its deadline.
    for (let i = 0; i < 30; i += 1) await create(i);
  });
  afterAll(async () => {
    await server.stop();
  });

  const ids: string[] = [];
  async function create(i: number): Promise<void> {
    const receivedAt = new Date(now - i * 2 * day - 1000);
    const regulation: Regulation = (['gdpr', 'ccpa', 'vcdpa', 'lgpd'] as const)[i % 4]!;
    const type: RequestType = i % 3 === 0 ? 'opt_out' : 'erasure';
    const overdue = i % 5 === 4;
    const record: RequestRecord = {
      requestId: randomUUID(),
      type,
      regulation,
      status: 'received',
      receivedAt: receivedAt.toISOString(),
      ...deadlinesFor(regulation, type, receivedAt),
      ...(overdue && { dueAt: new Date(now - i * 1000).toISOString() }),
      pseudonyms: [],
      keyVersion: 'v1',
      bodyHash: 'x',
      sealedIdentities: 'x',
      wrappedDataKey: 'x',
    };
    await store.create(record);
    ids.push(record.requestId);
    if (!overdue) {
      await store.transition(record.requestId, 'in_progress');
      // Every sixth found nothing anywhere.
      if (i % 2 === 0) await store.transition(record.requestId, 'completed', { completedAt: new Date(receivedAt.getTime() + day).toISOString(), ...(i % 6 === 0 && { nothingFound: true }) });
    }
  }

  const get = async (resource: string, query: Record<string, string> = {}, id?: string) => {
    const response = await handler(
      { resource, pathParameters: id ? { id } : null, queryStringParameters: Object.keys(query).length ? query : null, headers: {}, requestContext: { identity: {} } } as unknown as APIGatewayProxyEvent,
      lambdaContext(),
    );
    return { status: response.statusCode, body: JSON.parse(response.body) as Record<string, unknown> };
  };
  const list = async (query: Record<string, string> = {}) => {
    const { status, body } = await get('/v1/requests', query);
    expect(status).toBe(200);
    expect(matches('RequestList', body)).toEqual([]);
    return body as { requests: { requestId: string; status: RequestStatus; receivedAt: string; dueAt: string; overdue: boolean; regulation: string; type: string }[]; cursor?: string };
  };

  it('lists every request once, newest first, across months and pages, without a scan', async () => {
    commands.length = 0;
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await list({ limit: '7', ...(cursor && { cursor }) });
      seen.push(...page.requests.map((r) => r.requestId));
      expect(page.requests.map((r) => r.receivedAt)).toEqual(page.requests.map((r) => r.receivedAt).sort().reverse());
      cursor = page.cursor;
      pages += 1;
    } while (cursor && pages < 20);
    expect(seen).toEqual(ids);
    expect(new Set(commands)).toEqual(new Set(['QueryCommand']));
  });

  it('filters by status, type, regulation, time of receipt and overdue', async () => {
    const all = (await list({ limit: '100' })).requests;
    expect(all).toHaveLength(30);
    const completed = await list({ status: 'completed', limit: '100' });
    expect(completed.requests.map((r) => r.requestId).sort()).toEqual(all.filter((r) => r.status === 'completed').map((r) => r.requestId).sort());
    expect(completed.requests.length).toBeGreaterThan(5);
    const ccpaOptOuts = await list({ regulation: 'ccpa', type: 'opt_out', limit: '100' });
    expect(ccpaOptOuts.requests.length).toBeGreaterThan(0);
    expect(ccpaOptOuts.requests.every((r) => r.regulation === 'ccpa' && r.type === 'opt_out')).toBe(true);
    const since = new Date(now - 10 * day).toISOString();
    expect((await list({ since, limit: '100' })).requests.map((r) => r.requestId)).toEqual(all.filter((r) => r.receivedAt >= since).map((r) => r.requestId));

    // Six were made overdue; requests still in progress past their law's deadline (LGPD's 15 days) are too.
    const overdue = await list({ overdue: 'true', limit: '100' });
    const late = all.filter((r) => r.overdue);
    expect(late.length).toBeGreaterThan(6);
    expect(overdue.requests.map((r) => r.requestId).sort()).toEqual(late.map((r) => r.requestId).sort());
    expect(overdue.requests.every((r) => r.overdue && r.status !== 'completed')).toBe(true);
    expect(overdue.requests.map((r) => r.dueAt)).toEqual(overdue.requests.map((r) => r.dueAt).sort()); // most overdue first
    const onTime = await list({ overdue: 'false', limit: '100' });
    expect(onTime.requests).toHaveLength(30 - late.length);
    expect(onTime.requests.some((r) => r.overdue)).toBe(false);
  });

  it('answers bad filters with a 400 naming each field, and an unknown cursor too', async () => {
    const refused = await get('/v1/requests', { status: 'done', overdue: 'yes', limit: '500', since: 'yesterday' });
    expect(refused.status).toBe(400);
    expect(matches('ValidationError', refused.body)).toEqual([]);
    expect((refused.body['issues'] as { path: string }[]).map((i) => i.path).sort()).toEqual(['limit', 'overdue', 'since', 'status']);
    const badCursor = await get('/v1/requests', { cursor: 'bm90IGEgY3Vyc29y' });
    expect(badCursor.status).toBe(400);
    expect(badCursor.body['issues']).toEqual([{ path: 'cursor', message: 'is not a cursor this API gave' }]);
  });

  it('describes one request as the document says, overdue and per-system detail included', async () => {
    const overdueId = (await list({ overdue: 'true', limit: '1' })).requests[0]!.requestId;
    const one = await get('/v1/requests/{id}', {}, overdueId);
    expect(one.status).toBe(200);
    expect(matches('Request', one.body)).toEqual([]);
    expect(one.body).toMatchObject({ requestId: overdueId, overdue: true, systems: [] });
    await store.putTaskIfAbsent({ requestId: overdueId, system: 'crm', action: 'delete', connector: 'http', status: 'failed', attempts: 3, errorName: 'ConnectorPermanentError', errorMessage: 'crm: 403', updatedAt: new Date().toISOString() });
    const withTask = await get('/v1/requests/{id}', {}, overdueId);
    expect(matches('Request', withTask.body)).toEqual([]);
    expect(withTask.body['systems']).toEqual([{ system: 'crm', action: 'delete', status: 'failed', affected: null, attempts: 3, updatedAt: expect.any(String) as string, error: { name: 'ConnectorPermanentError', message: 'crm: 403' } }]);
    const missing = await get('/v1/requests/{id}', {}, randomUUID());
    expect(missing.status).toBe(404);
    expect(matches('Error', missing.body)).toEqual([]);
  });

  const call = async (fn: Handler, resource: string, init: { query?: Record<string, string>; body?: unknown }) => {
    const response = await fn(
      { resource, pathParameters: null, queryStringParameters: init.query ?? null, body: init.body === undefined ? null : JSON.stringify(init.body), headers: {}, requestContext: { identity: {} } } as unknown as APIGatewayProxyEvent,
      lambdaContext(),
    );
    return { status: response.statusCode, headers: response.headers ?? {}, text: response.body };
  };

  it('finds every request of a subject by any of its identities, through the pseudonym, naming none', async () => {
    const { LocalKeyService } = await import('#functions/commons/keys');
    const { normalizeIdentities, pseudonymize } = await import('#core/identity');
    const key = await LocalKeyService.fromFile(process.env['LOCAL_KEY_FILE']!).pseudonymKey();
    const of = (identities: { type: string; value: string }[]) => normalizeIdentities(identities).map((i) => pseudonymize(i, key));
    // Two requests of one subject, one by email and one by phone; another subject's.
    const [first, second, other] = ids.slice(-3) as [string, string, string];
    const receivedAt = new Date(now).toISOString();
    await store.indexSubject({ requestId: first, type: 'erasure', receivedAt, pseudonyms: of([{ type: 'email', value: 'ada@example.com' }]) });
    await store.indexSubject({ requestId: second, type: 'opt_out', receivedAt: new Date(now + 1000).toISOString(), pseudonyms: of([{ type: 'phone', value: '+44 20 7946 0001' }]) });
    await store.indexSubject({ requestId: other, type: 'erasure', receivedAt, pseudonyms: of([{ type: 'email', value: 'grace@example.com' }]) });

    const found = await call(lookup, '/v1/subjects:lookup', { body: { identities: [{ type: 'email', value: ' ADA@example.com' }, { type: 'phone', value: '+442079460001' }] } });
    expect(found.status).toBe(200);
    const body = JSON.parse(found.text) as { requests: { requestId: string }[] };
    expect(matches('RequestList', body)).toEqual([]);
    expect(body.requests.map((r) => r.requestId)).toEqual([first, second]);
    // The identities as given or normalized (not bare "ada" or "7946": a random request id's hex holds those about 1 time in 60).
    expect(found.text).not.toMatch(/ada@|2079460001|7946 0001|pseudonym/i);
    expect(JSON.parse((await call(lookup, '/v1/subjects:lookup', { body: { identities: [{ type: 'email', value: 'nobody@example.com' }] } })).text)).toEqual({ requests: [] });
    const refused = await call(lookup, '/v1/subjects:lookup', { body: { identities: [] } });
    expect(refused.status).toBe(400);
    expect(JSON.parse(refused.text)).toMatchObject({ issues: [{ path: 'identities' }] });
  });

  it('summarizes a period: counts, overdue, median and p95 time to completion, volume per day', async () => {
    const since = new Date(now - 61 * day).toISOString();
    const answer = await call(report, '/v1/reports/summary', { query: { since } });
    expect(answer.status).toBe(200);
    const summary = JSON.parse(answer.text) as { total: number; nothingFound: number; byStatus: Record<string, number>; byRegulation: Record<string, number>; overdue: number; completionSeconds: { count: number; median: number; p95: number }; daily: { received: number }[] };
    expect(matches('Summary', summary)).toEqual([]);
    const all = (await list({ limit: '100' })).requests;
    expect(summary.total).toBe(30);
    expect(summary.byStatus['completed']).toBe(all.filter((r) => r.status === 'completed').length);
    expect(summary.byRegulation).toEqual({ gdpr: 8, ccpa: 8, vcdpa: 7, lgpd: 7 });
    expect(summary.overdue).toBe(all.filter((r) => r.overdue).length);
    // Every completed request here took one day.
    expect(summary.completionSeconds).toEqual({ count: summary.byStatus['completed'], median: 86_400, p95: 86_400 });
    expect(summary.daily.reduce((n, d) => n + d.received, 0)).toBe(30);
    // Completed with nothing found: counted through the NothingFound index, the same requests the export marks.
    const exported = JSON.parse((await call(report, '/v1/reports/export', { query: { since } })).text) as { requests: { nothingFound: boolean | null }[] };
    const nothing = exported.requests.filter((r) => r.nothingFound === true).length;
    expect(nothing).toBeGreaterThan(0);
    expect(summary.nothingFound).toBe(nothing);
    // A period that leaves out the oldest of them counts fewer.
    const recent = JSON.parse((await call(report, '/v1/reports/summary', { query: { since: new Date(now - 10 * day).toISOString() } })).text) as { nothingFound: number };
    expect(recent.nothingFound).toBeLessThan(nothing);
    // The default period is the last 30 days.
    expect((JSON.parse((await call(report, '/v1/reports/summary', {})).text) as { total: number }).total).toBe(all.filter((r) => r.receivedAt >= new Date(Date.now() - 30 * day).toISOString()).length);
    const bad = await call(report, '/v1/reports/summary', { query: { since: 'last week', format: 'csv' } });
    expect(bad.status).toBe(400);
    expect((JSON.parse(bad.text) as { issues: { path: string }[] }).issues.map((i) => i.path).sort()).toEqual(['since']);
  });

  it('exports a period as CSV and as JSON, one row per request, as an attachment', async () => {
    const since = new Date(now - 61 * day).toISOString();
    const csv = await call(report, '/v1/reports/export', { query: { since, format: 'csv' } });
    expect(csv.status).toBe(200);
    expect(csv.headers).toMatchObject({ 'content-type': 'text/csv; charset=utf-8', 'content-disposition': expect.stringMatching(/^attachment; filename="lethe-requests-.*\.csv"$/) as string });
    const lines = csv.text.trimEnd().split('\r\n');
    expect(lines[0]).toBe('requestId,type,regulation,status,receivedAt,dueAt,extendedAt,completedAt,overdue,nothingFound');
    expect(lines.slice(1).map((l) => l.split(',')[0]).sort()).toEqual([...ids].sort());
    const json = await call(report, '/v1/reports/export', { query: { since } });
    const exported = JSON.parse(json.text) as { requests: { requestId: string }[] };
    expect(matches('Export', exported)).toEqual([]);
    expect(exported.requests.map((r) => r.requestId).sort()).toEqual([...ids].sort());
    // Oldest first, by receipt.
    expect(exported.requests.map((r) => r.requestId)).toEqual([...ids].reverse());
    // Those completed with nothing found say so; every other request says it did not.
    const nothing = (exported.requests as { requestId: string; nothingFound: boolean }[]).filter((r) => r.nothingFound).map((r) => r.requestId);
    expect(nothing.sort()).toEqual(ids.filter((_, i) => i % 6 === 0 && i % 5 !== 4).sort());
    expect(lines.slice(1).filter((l) => l.endsWith(',true')).map((l) => l.split(',')[0]).sort()).toEqual(nothing);
  });
});
