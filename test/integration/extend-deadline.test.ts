import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { startFauxqs } from 'fauxqs';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { verifyChain } from '#core/audit';
import { deadlinesFor } from '#core/deadlines';
import type { Regulation, RequestRecord } from '#core/request';
import { handlerEnvironment, lambdaContext } from '../fixtures/lambda.ts';
import { createRequestsTable, credentials, dynamoDb, dynamoUnavailable, type DynamoEndpoint } from '../fixtures/servers.ts';

/**
 * `POST /v1/requests/{id}:extend` on DynamoDB Local and fauxqs: an operator extends a deadline
 * once, within the law's allowance, with a reason that stays out of the audit log; a second
 * extension, one the law does not allow, and one on a final request are refused with a 409 saying why.
 */
const ajv = new Ajv2020({ strict: false });
addFormats.default(ajv);
ajv.addSchema({ ...(parse(readFileSync('docs/openapi.yaml', 'utf8')) as object), $id: 'openapi' });

const unavailable = dynamoUnavailable();
if (unavailable) console.warn(`skipping the extension integration test: ${unavailable}`);

describe.skipIf(unavailable)('Function: act-on-request handler (:extend)', () => {
  let server: DynamoEndpoint;
  let fauxqs: Awaited<ReturnType<typeof startFauxqs>>;
  let s3: S3Client;
  let handler: (e: APIGatewayProxyEvent, c: unknown) => Promise<APIGatewayProxyResult>;
  let store: import('#functions/commons/request-store').RequestStore;
  let audit: typeof import('#functions/commons/audit-log');

  beforeAll(async () => {
    server = await dynamoDb();
    fauxqs = await startFauxqs({ port: 0, logger: false });
    handlerEnvironment({ AWS_ENDPOINT_URL_DYNAMODB: server.endpoint, AWS_ENDPOINT_URL_S3: `http://127.0.0.1:${String(fauxqs.port)}` });
    s3 = new S3Client({ endpoint: process.env['AWS_ENDPOINT_URL_S3'], region: 'us-east-1', credentials, forcePathStyle: true });
    await s3.send(new CreateBucketCommand({ Bucket: 'audit' }));
    await createRequestsTable(server.client);
    store = new (await import('#functions/commons/request-store')).RequestStore('requests');
    audit = await import('#functions/commons/audit-log');
    ({ handler } = (await import('#functions/act-on-request/handler')) as unknown as { handler: typeof handler });
  });
  afterAll(async () => {
    await fauxqs.stop();
    await server.stop();
  });

  async function request(regulation: Regulation): Promise<RequestRecord> {
    const receivedAt = new Date(Date.now() - 3 * 86_400_000);
    const record: RequestRecord = {
      requestId: randomUUID(),
      type: 'erasure',
      regulation,
      status: 'in_progress',
      receivedAt: receivedAt.toISOString(),
      ...deadlinesFor(regulation, 'erasure', receivedAt),
      pseudonyms: [],
      keyVersion: 'v1',
      bodyHash: 'x',
      sealedIdentities: 'x',
      wrappedDataKey: 'x',
    };
    await store.create(record);
    await new audit.AuditLog('requests', 'audit').append(record.requestId, { eventId: 'request.received', event: 'request.received', at: record.receivedAt, actor: 'test', status: 'received' });
    return record;
  }
  const extend = async (id: string, body: unknown) => {
    const response = await handler(
      { resource: '/v1/requests/{id}', pathParameters: { id }, body: JSON.stringify(body), headers: {}, requestContext: { identity: { userArn: 'arn:aws:sts::1:assumed-role/OperatorRole/jo' } } } as unknown as APIGatewayProxyEvent,
      lambdaContext(),
    );
    return { status: response.statusCode, body: JSON.parse(response.body) as Record<string, unknown> };
  };

  it('extends a GDPR deadline to three months from receipt, once, and records it without the reason', async () => {
    const r = await request('gdpr');
    const reason = 'Complex request across 40 systems; the subject was told on 2026-11-29';
    const done = await extend(`${r.requestId}:extend`, { reason });
    expect(done.status).toBe(200);
    expect(ajv.getSchema('openapi#/components/schemas/Extended')!(done.body)).toBe(true);
    expect(done.body).toMatchObject({ requestId: r.requestId, dueAt: deadlinesFor('gdpr', 'erasure', new Date(r.receivedAt)).extendableTo, law: 'GDPR Art. 12(3)' });
    expect(await store.get(r.requestId)).toMatchObject({ dueAt: done.body['dueAt'], extendedAt: done.body['extendedAt'], extensionReason: reason });

    const chain = await audit.readAuditChain(s3, 'audit', r.requestId);
    expect(chain.at(-1)).toMatchObject({ event: 'request.extended', dueAt: done.body['dueAt'], actor: 'arn:aws:sts::1:assumed-role/OperatorRole/jo' });
    expect(JSON.stringify(chain)).not.toContain('Complex request');
    expect(verifyChain(r.requestId, chain)).toEqual([]);

    const again = await extend(`${r.requestId}:extend`, { reason: 'more' });
    expect(again).toMatchObject({ status: 409, body: { message: expect.stringMatching(/^the deadline was extended already/) as string } });
  });

  it('refuses what the law does not allow, a final request, bad input and unknown requests, saying why', async () => {
    const lgpd = await request('lgpd');
    expect(await extend(`${lgpd.requestId}:extend`, { reason: 'x' })).toMatchObject({ status: 409, body: { message: 'LGPD Art. 19 II allows no extension' } });
    const done = await request('ccpa');
    await store.transition(done.requestId, 'completed', { completedAt: new Date().toISOString() });
    expect(await extend(`${done.requestId}:extend`, { reason: 'x' })).toMatchObject({ status: 409, body: { message: expect.stringMatching(/is completed: there is no deadline left to extend$/) as string } });
    expect(await extend(`${lgpd.requestId}:extend`, { reason: '  ' })).toMatchObject({ status: 400, body: { issues: [{ path: 'reason' }] } });
    expect(await extend(`${lgpd.requestId}:extend`, { reason: 'x', dueAt: '2099-01-01' })).toMatchObject({ status: 400 });
    expect(await extend(`${lgpd.requestId}:destroy`, { reason: 'x' })).toMatchObject({ status: 400, body: { issues: [{ path: 'id', message: 'must be <request id>:extend' }] } });
    expect(await extend(`${randomUUID()}:extend`, { reason: 'x' })).toMatchObject({ status: 404 });
    expect((await store.get(lgpd.requestId))?.extendedAt).toBeUndefined();
  });
});
