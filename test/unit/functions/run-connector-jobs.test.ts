import { S3Client } from '@aws-sdk/client-s3';
import { SendTaskFailureCommand, SendTaskHeartbeatCommand, SendTaskSuccessCommand, SFNClient } from '@aws-sdk/client-sfn';
import { GetQueueUrlCommand, SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand, TransactWriteCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { open, seal } from '#core/envelope';
import { LocalKeyService } from '#functions/commons/keys';
import { handlerEnvironment, lambdaContext } from '../../fixtures/lambda.ts';
import { requestItem, taskDelivery } from '../../fixtures/worker.ts';
import { segment } from '../../fixtures/vendors.ts';

/**
 * The worker's side of vendor jobs, against the Segment fake: a first run leaves the task waiting
 * on the job (token open), a poll completes it, a failed job or a passed deadline fails it, naming
 * the vendor and the job.
 */
const finished = await segment('FINISHED');
const failing = await segment('FAILED');
const system = (url: string) => ({
  name: 'analytics',
  connector: 'http',
  identities: ['user_id'],
  actions: { erasure: 'delete' },
  concurrency: 2,
  heartbeatSeconds: 60,
  timeoutSeconds: 3_100_000,
  maxAttempts: 3,
  settings: { vendor: 'segment', baseUrl: url, credentials: { token: { env: 'LETHE_TEST_SEGMENT_TOKEN' } } },
});
handlerEnvironment({
  LETHE_SYSTEMS: JSON.stringify([system(finished.fake.url), { ...system(failing.fake.url), name: 'analytics-failing' }]),
  CONNECTOR_KIND: 'http',
  LETHE_TEST_SEGMENT_TOKEN: 'seg-token',
});
const dynamo = mockClient(DynamoDBDocumentClient);
const sfn = mockClient(SFNClient);
const sqs = mockClient(SQSClient);
const s3 = mockClient(S3Client);
let handler: (e: SQSEvent, c: unknown) => Promise<SQSBatchResponse>;
const keys = LocalKeyService.fromFile(process.env['LOCAL_KEY_FILE']!);
const requestId = '5d5e5f60-0000-4000-8000-0000000000c1';
let dataKey: Awaited<ReturnType<typeof keys.generateDataKey>>;

beforeAll(async () => {
  ({ handler } = (await import('#functions/run-connector/handler')) as unknown as { handler: typeof handler });
  dataKey = await keys.generateDataKey(requestId);
});
afterAll(async () => {
  await finished.fake.close();
  await failing.fake.close();
});
beforeEach(() => {
  dynamo.on(GetCommand).resolves({});
  dynamo.on(GetCommand, { Key: { pk: `REQ#${requestId}`, sk: 'META' } }).resolves({ Item: requestItem(requestId, dataKey, [{ type: 'user_id', value: 'u-ada' }]) });
  dynamo.on(QueryCommand).resolves({ Items: [] });
  dynamo.on(UpdateCommand).resolves({});
  dynamo.on(PutCommand).resolves({});
  dynamo.on(TransactWriteCommand).resolves({});
  sqs.on(GetQueueUrlCommand).resolves({ QueueUrl: 'https://sqs.us-east-1.amazonaws.com/000000000000/analytics' });
});
afterEach(() => {
  dynamo.reset();
  sfn.reset();
  sqs.reset();
  s3.reset();
});

const delivery = (systemName: string, poll: boolean): SQSEvent =>
  taskDelivery({ requestId, system: systemName, action: 'delete', taskToken: 'token-9', ...(poll && { poll: true as const }) });

const waitingTask = (systemName: string, jobId: string, deadlineAt: string) =>
  dynamo.on(GetCommand, { Key: { pk: `REQ#${requestId}`, sk: `TASK#${systemName}#delete` } }).resolves({
    Item: {
      requestId,
      system: systemName,
      action: 'delete',
      status: 'waiting_on_vendor',
      affected: 1,
      taskToken: 'token-9',
      jobs: `segment job ${jobId}`,
      deadlineAt,
      sealedJobs: seal([{ vendor: 'segment', id: jobId, vars: {}, pollEverySeconds: 3600, deadlineSeconds: 3_024_000 }], dataKey.plaintext, requestId),
    },
  });
/** A regulation at a fake, as Segment would have it after the first run. */
const createRegulation = (fake: Awaited<ReturnType<typeof segment>>) =>
  fetch(`${fake.fake.url}/regulations`, {
    method: 'POST',
    headers: { authorization: 'Bearer seg-token', 'content-type': 'application/json' },
    body: JSON.stringify({ regulationType: 'SUPPRESS_WITH_DELETE', subjectType: 'USER_ID', subjectIds: ['x'] }),
  });
const update = (to: string) => dynamo.commandCalls(UpdateCommand).find((c) => c.args[0].input.ExpressionAttributeValues?.[':to'] === to)?.args[0].input;

describe('Function: run-connector handler, vendor jobs', () => {
  it('leaves the task waiting on the vendor’s job, the token open and the job sealed', async () => {
    expect((await handler(delivery('analytics', false), lambdaContext())).batchItemFailures).toEqual([]);

    const waiting = update('waiting_on_vendor')!;
    expect(waiting.ExpressionAttributeValues).toMatchObject({ ':waiting': 'WAITING' });
    const values = Object.values(waiting.ExpressionAttributeValues ?? {});
    expect(values).toContain('token-9');
    expect(values).toContain('segment job reg-1');
    const sealed = values.find((v) => typeof v === 'string' && v.length > 60 && v !== 'token-9') as string;
    expect(open(sealed, dataKey.plaintext, requestId)).toEqual([{ vendor: 'segment', id: 'reg-1', vars: {}, pollEverySeconds: 3600, deadlineSeconds: 3_024_000 }]);
    expect(sfn).toHaveReceivedCommandWith(SendTaskHeartbeatCommand, { taskToken: 'token-9' });
    expect(sfn).not.toHaveReceivedCommand(SendTaskSuccessCommand);
  });

  it('keeps the new token when the saga sends a waiting task again (its heartbeat lapsed), and runs nothing again', async () => {
    waitingTask('analytics', 'reg-1', '2099-01-01T00:00:00.000Z');
    const replaced = () => dynamo.commandCalls(UpdateCommand).filter((c) => c.args[0].input.ConditionExpression?.includes('taskToken = :previous'));

    await handler(taskDelivery({ requestId, system: 'analytics', action: 'delete', taskToken: 'token-10' }), lambdaContext());
    expect(replaced().map((c) => c.args[0].input.ExpressionAttributeValues)).toEqual([expect.objectContaining({ ':token': 'token-10', ':previous': 'token-9', ':waiting': 'waiting_on_vendor' })]);
    // A redelivery with the token it holds changes nothing.
    await handler(delivery('analytics', false), lambdaContext());
    expect(replaced()).toHaveLength(1);
    expect(update('running')).toBeUndefined();
    expect(sfn).not.toHaveReceivedCommand(SendTaskSuccessCommand);
  });

  it('reschedules while the job runs, then succeeds with the count of the first run', async () => {
    waitingTask('analytics', 'reg-1', '2099-01-01T00:00:00.000Z');

    await handler(delivery('analytics', true), lambdaContext()); // INITIALIZED
    expect(sfn).not.toHaveReceivedCommand(SendTaskSuccessCommand);
    expect(dynamo.commandCalls(UpdateCommand).some((c) => c.args[0].input.UpdateExpression?.startsWith('SET nextPollAt'))).toBe(true);
    await handler(delivery('analytics', true), lambdaContext()); // RUNNING
    await handler(delivery('analytics', true), lambdaContext()); // FINISHED

    expect(sfn).toHaveReceivedCommandWith(SendTaskSuccessCommand, { taskToken: 'token-9' });
    expect(update('succeeded')?.UpdateExpression).toContain('REMOVE waiting, nextCheckAt');
  });

  it('fails the task when the vendor’s job fails, naming vendor and job', async () => {
    await createRegulation(failing);
    waitingTask('analytics-failing', 'reg-1', '2099-01-01T00:00:00.000Z');
    for (let i = 0; i < 3; i += 1) await handler(delivery('analytics-failing', true), lambdaContext());

    expect(sfn).toHaveReceivedCommandWith(SendTaskFailureCommand, {
      taskToken: 'token-9',
      error: 'ConnectorPermanentError',
      cause: 'analytics-failing: segment job reg-1 failed: FAILED',
    });
    expect(failing.fake.violations).toEqual([]);
  });

  it('fails the task when its deadline passes with the job still running', async () => {
    // A fresh job at the fake: its first poll says INITIALIZED.
    await createRegulation(finished);
    waitingTask('analytics', 'reg-2', '2020-01-01T00:00:00.000Z');

    await handler(delivery('analytics', true), lambdaContext());

    expect(sfn).toHaveReceivedCommandWith(SendTaskFailureCommand, {
      error: 'ConnectorPermanentError',
      cause: 'analytics: passed its deadline 2020-01-01T00:00:00.000Z waiting on segment job reg-2 (INITIALIZED)',
    });
    expect(finished.fake.violations).toEqual([]);
  });
});
