import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { SFNClient, StopExecutionCommand } from '@aws-sdk/client-sfn';
import { CreateQueueCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
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
import type { Regulation, RequestRecord, TaskRecord, TaskStatus } from '#core/request';
import { handlerEnvironment, lambdaContext } from '../fixtures/lambda.ts';
import { createRequestsTable, credentials, dynamoDb, dynamoUnavailable, type DynamoEndpoint } from '../fixtures/servers.ts';

/**
 * `POST /v1/requests/{id}:extend|cancel|retry` on DynamoDB Local and fauxqs (S3 and SQS; only
 * Step Functions mocked): an operator extends a deadline once, within the law's allowance;
 * cancels a request not yet final (tasks not started are cancelled, the execution stopped, what
 * was done is said); retries the failed tasks of a failed request (they alone are reopened, in a
 * new round, and the request goes back through the intake buffer). Reasons stay out of the audit
 * log; what is not allowed is a 409 saying why.
 */
const ajv = new Ajv2020({ strict: false });
addFormats.default(ajv);
ajv.addSchema({ ...(parse(readFileSync('docs/openapi.yaml', 'utf8')) as object), $id: 'openapi' });

const unavailable = dynamoUnavailable();
if (unavailable) console.warn(`skipping the extension integration test: ${unavailable}`);

describe.skipIf(unavailable)('Function: act-on-request handler (:extend, :cancel, :retry)', () => {
  const sfn = mockClient(SFNClient);
  let sqs: SQSClient;
  let intakeQueueUrl: string;
  let server: DynamoEndpoint;
  let fauxqs: Awaited<ReturnType<typeof startFauxqs>>;
  let s3: S3Client;
  let handler: (e: APIGatewayProxyEvent, c: unknown) => Promise<APIGatewayProxyResult>;
  let store: import('#functions/commons/request-store').RequestStore;
  let audit: typeof import('#functions/commons/audit-log');

  beforeAll(async () => {
    server = await dynamoDb();
    fauxqs = await startFauxqs({ port: 0, logger: false });
    const aws = `http://127.0.0.1:${String(fauxqs.port)}`;
    sqs = new SQSClient({ endpoint: aws, region: 'us-east-1', credentials });
    intakeQueueUrl = (await sqs.send(new CreateQueueCommand({ QueueName: 'intake' }))).QueueUrl!;
    handlerEnvironment({
      AWS_ENDPOINT_URL_DYNAMODB: server.endpoint,
      AWS_ENDPOINT_URL_S3: aws,
      AWS_ENDPOINT_URL_SQS: aws,
      STATE_MACHINE_ARN: 'arn:aws:states:us-east-1:000000000000:stateMachine:Saga',
      INTAKE_QUEUE_URL: intakeQueueUrl,
    });
    sfn.on(StopExecutionCommand).resolves({ stopDate: new Date() });
    s3 = new S3Client({ endpoint: process.env['AWS_ENDPOINT_URL_S3'], region: 'us-east-1', credentials, forcePathStyle: true });
    await s3.send(new CreateBucketCommand({ Bucket: 'audit' }));
    await createRequestsTable(server.client);
    store = new (await import('#functions/commons/request-store')).RequestStore('requests');
    audit = await import('#functions/commons/audit-log');
    ({ handler } = (await import('#functions/act-on-request/handler')) as unknown as { handler: typeof handler });
  });
  afterAll(async () => {
    sfn.restore();
    await fauxqs.stop();
    await server.stop();
  });

  async function request(regulation: Regulation, extra: Partial<RequestRecord> = {}): Promise<RequestRecord> {
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
      ...extra,
    };
    await store.create(record);
    await new audit.AuditLog('requests', 'audit').append(record.requestId, { eventId: 'request.received', event: 'request.received', at: record.receivedAt, actor: 'test', status: 'received' });
    return record;
  }
  const extend = async (id: string, body: unknown) => {
    const response = await handler(
      { resource: '/v1/requests/{id}', pathParameters: { id }, body: body === undefined ? null : JSON.stringify(body), headers: {}, requestContext: { identity: { userArn: 'arn:aws:sts::1:assumed-role/OperatorRole/jo' } } } as unknown as APIGatewayProxyEvent,
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
    expect(await extend(`${lgpd.requestId}:destroy`, { reason: 'x' })).toMatchObject({ status: 400, body: { issues: [{ path: 'id', message: 'must be <request id>:<extend|cancel|retry>' }] } });
    expect(await extend(`${randomUUID()}:extend`, { reason: 'x' })).toMatchObject({ status: 404 });
    expect((await store.get(lgpd.requestId))?.extendedAt).toBeUndefined();
  });

  const task = (requestId: string, system: string, status: TaskStatus, extra: Partial<TaskRecord> = {}) =>
    store.putTaskIfAbsent({ requestId, system, action: 'delete', connector: 'sql', status, attempts: status === 'pending' ? 0 : 1, updatedAt: new Date().toISOString(), ...extra });
  const received = async () => {
    const out = await sqs.send(new ReceiveMessageCommand({ QueueUrl: intakeQueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }));
    return (out.Messages ?? []).map((m) => JSON.parse(m.Body!) as unknown);
  };

  it('cancels a request in progress: tasks not started are cancelled, the execution stopped, what was done said, the reason kept out of the log', async () => {
    const r = await request('gdpr');
    await task(r.requestId, 'crm', 'succeeded', { affected: 2 });
    await task(r.requestId, 'warehouse', 'running');
    await task(r.requestId, 'mailer', 'pending');
    const done = await extend(`${r.requestId}:cancel`, { reason: 'Submitted for the wrong subject by support ticket 4411' });
    expect(done.status).toBe(200);
    expect(ajv.getSchema('openapi#/components/schemas/Cancelled')!(done.body)).toBe(true);
    expect(done.body).toMatchObject({ status: 'cancelled', cancelledTasks: [{ system: 'mailer', action: 'delete' }], alreadyDone: [{ system: 'crm', action: 'delete' }] });
    expect(await store.get(r.requestId)).toMatchObject({ status: 'cancelled', completedAt: done.body['cancelledAt'] });
    // Its data key is destroyed after the verification window, as a finished request's is.
    const due: string[] = [];
    for await (const page of store.dueForShredding(new Date(Date.now() + 31 * 86_400_000).toISOString())) due.push(...page.map((d) => d.requestId));
    expect(due).toContain(r.requestId);
    expect((await store.tasks(r.requestId)).map((t) => `${t.system} ${t.status}`).sort()).toEqual(['crm succeeded', 'mailer cancelled', 'warehouse running']);
    expect(sfn).toHaveReceivedCommandWith(StopExecutionCommand, { executionArn: `arn:aws:states:us-east-1:000000000000:execution:Saga:${r.requestId}` });
    // Not open any more: the deadline sweep and the overdue list leave it alone.
    expect((await store.openRequests()).map((o) => o.requestId)).not.toContain(r.requestId);
    const chain = await audit.readAuditChain(s3, 'audit', r.requestId);
    expect(chain.map((c) => c.event).slice(1)).toEqual(['request.cancelled', 'task.cancelled']);
    expect(chain[1]).toMatchObject({ actor: 'arn:aws:sts::1:assumed-role/OperatorRole/jo', status: 'cancelled' });
    expect(JSON.stringify(chain)).not.toContain('wrong subject');
    expect(verifyChain(r.requestId, chain)).toEqual([]);

    expect(await extend(`${r.requestId}:cancel`, { reason: 'again' })).toMatchObject({ status: 409, body: { message: expect.stringMatching(/is cancelled already/) as string } });
    expect(await extend(`${r.requestId}:cancel`, {})).toMatchObject({ status: 400, body: { issues: [{ path: 'reason' }] } });
  });

  it('lets a task a worker takes while the request is being cancelled run on, and still cancels the request', async () => {
    const r = await request('gdpr');
    await task(r.requestId, 'mailer', 'pending');
    await task(r.requestId, 'crm', 'pending');
    // The crm worker claims its task between the cancel's reading the tasks and its cancelling them.
    const dynamo = (await import('#functions/commons/clients')).dynamo;
    const race = 'claim-during-cancel';
    dynamo.middlewareStack.add(
      (next) => async (args) => {
        const input = args.input as { Key?: { sk?: string }; ExpressionAttributeValues?: Record<string, unknown> };
        if (input.Key?.sk === 'TASK#crm#delete' && input.ExpressionAttributeValues?.[':to'] === 'cancelled') {
          dynamo.middlewareStack.remove(race);
          await store.claimTask(r.requestId, 'crm', 'delete', 'worker', 60);
        }
        return next(args);
      },
      { step: 'initialize', name: race },
    );

    const done = await extend(`${r.requestId}:cancel`, { reason: 'Duplicate of another request' });

    expect(done).toMatchObject({ status: 200, body: { status: 'cancelled', cancelledTasks: [{ system: 'mailer', action: 'delete' }] } });
    expect((await store.tasks(r.requestId)).map((t) => `${t.system} ${t.status}`).sort()).toEqual(['crm running', 'mailer cancelled']);
  });

  it('retries only the failed tasks of a failed request, in a new round, through the intake buffer', async () => {
    const r = await request('ccpa', { status: 'partially_failed', completedAt: new Date().toISOString() });
    await task(r.requestId, 'crm', 'succeeded', { affected: 2 });
    await task(r.requestId, 'warehouse', 'failed', { errorName: 'ConnectorPermanentError', errorMessage: 'warehouse: permission denied', attempts: 3 });
    await received(); // an empty queue to start from
    const done = await extend(`${r.requestId}:retry`, undefined);
    expect(done.status).toBe(202);
    expect(ajv.getSchema('openapi#/components/schemas/Retried')!(done.body)).toBe(true);
    expect(done.body).toEqual({ requestId: r.requestId, status: 'in_progress', round: 1, retried: [{ system: 'warehouse', action: 'delete' }] });
    const after = await store.get(r.requestId);
    expect(after).toMatchObject({ status: 'in_progress', round: 1 });
    expect(after?.completedAt).toBeUndefined();
    expect((await store.openRequests()).map((o) => o.requestId)).toContain(r.requestId);
    const tasks = await store.tasks(r.requestId);
    expect(tasks.find((t) => t.system === 'crm')).toMatchObject({ status: 'succeeded', affected: 2 });
    const reopened = tasks.find((t) => t.system === 'warehouse')!;
    // Its attempts so far stay on record; the new round's retry budget counts from here.
    expect(reopened).toMatchObject({ status: 'pending', round: 1, attempts: 3 });
    expect(reopened.errorName).toBeUndefined();
    // The new round's first attempt is its first, for its retry budget.
    expect(await store.claimTask(r.requestId, 'warehouse', reopened.action, 'next-attempt', 60)).toEqual({ claimed: true, first: true, attempts: 1 });
    expect(await received()).toEqual([{ requestId: r.requestId, round: 1 }]);
    const chain = await audit.readAuditChain(s3, 'audit', r.requestId);
    expect(chain.at(-1)).toMatchObject({ eventId: 'request.retried#r1', event: 'request.retried', tasks: 1, status: 'in_progress' });

    // In progress again: no second retry until it has failed again.
    expect(await extend(`${r.requestId}:retry`, {})).toMatchObject({ status: 409, body: { message: expect.stringMatching(/is in_progress: only a failed, partially failed or needs_review request can be retried$/) as string } });
    expect(await extend(`${r.requestId}:retry`, { systems: ['crm'] })).toMatchObject({ status: 400 });
  });

  it('refuses to retry a completed request, or one whose identities were destroyed', async () => {
    const completed = await request('gdpr', { status: 'completed' });
    expect(await extend(`${completed.requestId}:retry`, {})).toMatchObject({ status: 409, body: { message: expect.stringMatching(/is completed: only a failed/) as string } });
    // Failed, past its deadline and its window: its key is destroyed.
    const past = new Date(Date.now() - 60_000).toISOString();
    const shredded = await request('gdpr', { status: 'failed', dueAt: past, ...({ shred: 'DUE', shredAt: past } as Partial<RequestRecord>) });
    expect(await store.shredDataKey(shredded.requestId, new Date().toISOString())).toBe(true);
    expect(await extend(`${shredded.requestId}:retry`, {})).toMatchObject({ status: 409, body: { message: expect.stringMatching(/identities were destroyed/) as string } });
    expect((await store.get(shredded.requestId))?.status).toBe('failed');
  });
});
