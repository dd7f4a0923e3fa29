import { SendTaskFailureCommand, SendTaskHeartbeatCommand, SendTaskSuccessCommand, SFNClient } from '@aws-sdk/client-sfn';
import { ChangeMessageVisibilityCommand, GetQueueUrlCommand, SQSClient } from '@aws-sdk/client-sqs';
import { S3Client } from '@aws-sdk/client-s3';
import { BatchWriteCommand, DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand, TransactWriteCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { retryDelaySeconds } from '#core/errors';
import { LocalKeyService } from '#functions/commons/keys';
import { handlerEnvironment, lambdaContext } from '../../fixtures/lambda.ts';
import { requestItem, taskDelivery } from '../../fixtures/worker.ts';

const system = {
  name: 'users',
  connector: 'dynamodb',
  identities: ['email'],
  actions: { erasure: 'delete' },
  concurrency: 2,
  heartbeatSeconds: 60,
  timeoutSeconds: 600,
  maxAttempts: 3,
  settings: { tables: [{ table: 'users', partitionKey: 'userId', lookups: [{ identity: 'email', attribute: 'email', index: 'byEmail' }], anonymize: [] }] },
};
handlerEnvironment({ LETHE_SYSTEMS: JSON.stringify([system]), CONNECTOR_KIND: 'dynamodb' });
const dynamo = mockClient(DynamoDBDocumentClient);
const sfn = mockClient(SFNClient);
const sqs = mockClient(SQSClient);
const s3 = mockClient(S3Client);
let handler: (e: SQSEvent, c: unknown) => Promise<SQSBatchResponse>;

const requestId = '5d5e5f60-0000-4000-8000-000000000001';
const taskToken = 'token-1';

beforeAll(async () => {
  ({ handler } = (await import('#functions/run-connector/handler')) as unknown as { handler: typeof handler });
});
beforeEach(async () => {
  const keys = LocalKeyService.fromFile(process.env['LOCAL_KEY_FILE']!);
  const dataKey = await keys.generateDataKey(requestId);
  const request = requestItem(requestId, dataKey, [{ type: 'email', value: 'ada@example.com' }]);
  dynamo.on(GetCommand).resolves({});
  dynamo.on(GetCommand, { Key: { pk: `REQ#${requestId}`, sk: 'META' } }).resolves({ Item: request });
  dynamo.on(GetCommand, { Key: { pk: `REQ#${requestId}`, sk: 'TASK#users#delete' } }).resolves({ Item: { status: 'pending' } });
  dynamo.on(UpdateCommand).resolves({});
  dynamo.on(TransactWriteCommand).resolves({});
  sqs.on(GetQueueUrlCommand).resolves({ QueueUrl: 'https://sqs.us-east-1.amazonaws.com/000000000000/users' });
});
const noLinks = () => dynamo.on(QueryCommand, { ExpressionAttributeValues: { ':pk': `REQ#${requestId}`, ':prefix': 'LINK#' } }).resolves({ Items: [] });
afterEach(() => {
  dynamo.reset();
  sfn.reset();
  sqs.reset();
  s3.reset();
});

const delivery = (receiveCount: number): SQSEvent => taskDelivery({ requestId, system: 'users', action: 'delete', taskToken }, receiveCount);

const throttled = Object.assign(new Error('slow down'), { name: 'ProvisionedThroughputExceededException', $metadata: { httpStatusCode: 400 } });
const updatesTo = (status: string) =>
  dynamo.commandCalls(UpdateCommand).filter((c) => c.args[0].input.ExpressionAttributeValues?.[':to'] === status);

describe('Function: run-connector handler', () => {
  it('deletes, verifies, records success and completes the task token', async () => {
    noLinks();
    dynamo.on(QueryCommand, { TableName: 'users' }).resolvesOnce({ Items: [{ userId: 'u-ada' }] }).resolves({ Items: [] });
    dynamo.on(BatchWriteCommand).resolves({});

    const out = await handler(delivery(1), lambdaContext());

    expect(out.batchItemFailures).toEqual([]);
    expect(sfn).toHaveReceivedCommandWith(SendTaskSuccessCommand, {
      taskToken,
      output: JSON.stringify({ requestId, system: 'users', action: 'delete', status: 'succeeded', affected: 1 }),
    });
    expect(updatesTo('succeeded')).toHaveLength(1);
  });

  it('retries a retryable failure soon, with a heartbeat, and does not fail the task', async () => {
    dynamo.on(QueryCommand).rejects(throttled);
    noLinks();

    const out = await handler(delivery(1), lambdaContext());

    expect(out.batchItemFailures).toEqual([{ itemIdentifier: 'm1' }]);
    expect(sfn).toHaveReceivedCommandWith(SendTaskHeartbeatCommand, { taskToken });
    expect(sqs).toHaveReceivedCommandWith(ChangeMessageVisibilityCommand, { ReceiptHandle: 'rh1', VisibilityTimeout: retryDelaySeconds(1, 60) });
    expect(sfn).not.toHaveReceivedCommand(SendTaskFailureCommand);
    expect(updatesTo('failed')).toHaveLength(0);
  });

  it('fails the task when retries run out, with the error class and no personal data', async () => {
    dynamo.on(QueryCommand).rejects(throttled);
    noLinks();
    // Its third attempt: two ran before.
    dynamo.on(UpdateCommand, { ReturnValues: 'ALL_OLD' }).resolves({ Attributes: { status: 'running', attempts: 2 } });

    const out = await handler(delivery(3), lambdaContext());

    expect(out.batchItemFailures).toEqual([]);
    expect(sfn).toHaveReceivedCommandWith(SendTaskFailureCommand, {
      taskToken,
      error: 'ConnectorRetryableError',
      cause: 'dynamodb table users index byEmail: ProvisionedThroughputExceededException (HTTP 400)',
    });
    expect(updatesTo('failed')).toHaveLength(1);
    expect(JSON.stringify(sfn.calls().map((c) => c.args[0].input))).not.toContain('ada@example.com');
  });

  it('fails the task at once on a permanent error', async () => {
    dynamo.on(QueryCommand).rejects(Object.assign(new Error('no table'), { name: 'ResourceNotFoundException', $metadata: { httpStatusCode: 400 } }));
    noLinks();

    await handler(delivery(1), lambdaContext());

    expect(sfn).toHaveReceivedCommandWith(SendTaskFailureCommand, { error: 'ConnectorPermanentError' });
    expect(sqs).not.toHaveReceivedCommand(ChangeMessageVisibilityCommand);
  });

  it('leaves a task another attempt holds alone, and comes back when its lease ends', async () => {
    const heldUntil = new Date(Date.now() + 20_000).toISOString();
    dynamo.on(UpdateCommand, { ReturnValues: 'ALL_OLD' }) // the claim
      .rejects(Object.assign(new Error('held'), { name: 'ConditionalCheckFailedException', $metadata: { httpStatusCode: 400 } }));
    dynamo.on(GetCommand, { Key: { pk: `REQ#${requestId}`, sk: 'TASK#users#delete' } })
      .resolvesOnce({ Item: { status: 'pending' } })
      .resolves({ Item: { status: 'running', leaseUntil: heldUntil } });

    const out = await handler(delivery(1), lambdaContext());

    expect(out.batchItemFailures).toEqual([{ itemIdentifier: 'm1' }]);
    expect(dynamo).not.toHaveReceivedCommand(QueryCommand);
    expect(sfn).not.toHaveReceivedCommand(SendTaskSuccessCommand);
    expect(sfn).not.toHaveReceivedCommand(SendTaskFailureCommand);
    expect(sfn).toHaveReceivedCommandWith(SendTaskHeartbeatCommand, { taskToken });
    // Within half a heartbeat (60 s here), the lease's end (20 s) being sooner.
    const delay = sqs.commandCalls(ChangeMessageVisibilityCommand)[0]?.args[0].input.VisibilityTimeout;
    expect(delay).toBeGreaterThanOrEqual(19);
    expect(delay).toBeLessThanOrEqual(20);
  });

  it('keeps its lease, two heartbeats long, while the saga\'s heartbeat hangs', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    try {
      noLinks();
      sfn.on(SendTaskHeartbeatCommand).callsFake(() => new Promise(() => {})); // Step Functions never answers
      // The connector's lookup takes half a heartbeat: two renewals fall due meanwhile.
      dynamo.on(QueryCommand, { TableName: 'users' })
        .callsFakeOnce(async () => {
          await vi.advanceTimersByTimeAsync(31_000);
          return { Items: [] };
        })
        .resolves({ Items: [] });
      const started = Date.now();

      const out = await handler(delivery(1), lambdaContext());

      expect(out.batchItemFailures).toEqual([]);
      const leases = dynamo.commandCalls(UpdateCommand).map((c) => c.args[0].input).filter((i) => i.ExpressionAttributeValues?.[':until']);
      const [claim, ...renewals] = leases.map((i) => Date.parse(i.ExpressionAttributeValues![':until'] as string) - started);
      expect(claim).toBeGreaterThanOrEqual(120_000);
      expect(renewals).toHaveLength(2);
      for (const until of renewals) expect(until).toBeGreaterThanOrEqual(120_000);
    } finally {
      vi.useRealTimers();
    }
  });

  it('counts the attempts that ran, not the deliveries: one that found the task held spent none', async () => {
    dynamo.on(QueryCommand).rejects(throttled);
    noLinks();
    // The eighth delivery, but only the second attempt (the others found the task held).
    dynamo.on(UpdateCommand, { ReturnValues: 'ALL_OLD' }).resolves({ Attributes: { status: 'running', attempts: 1 } });

    const out = await handler(delivery(8), lambdaContext());

    expect(out.batchItemFailures).toEqual([{ itemIdentifier: 'm1' }]);
    expect(sqs).toHaveReceivedCommandWith(ChangeMessageVisibilityCommand, { ReceiptHandle: 'rh1', VisibilityTimeout: retryDelaySeconds(2, 60) });
    expect(sfn).not.toHaveReceivedCommand(SendTaskFailureCommand);
  });

  it('reports a task that is already final without acting again', async () => {
    dynamo.on(GetCommand, { Key: { pk: `REQ#${requestId}`, sk: 'TASK#users#delete' } }).resolves({ Item: { status: 'succeeded', affected: 4 } });

    await handler(delivery(2), lambdaContext());

    expect(dynamo).not.toHaveReceivedCommand(QueryCommand);
    expect(sfn).toHaveReceivedCommandWith(SendTaskSuccessCommand, {
      output: JSON.stringify({ requestId, system: 'users', action: 'delete', status: 'succeeded', affected: 4 }),
    });
  });
});

describe('Function: run-connector handler (resolve)', () => {
  it('stores the linked identities a system resolves (none here), sealed, and reports the count', async () => {
    noLinks();
    dynamo.on(PutCommand).resolves({});
    dynamo.on(GetCommand, { Key: { pk: `REQ#${requestId}`, sk: 'TASK#users#resolve' } }).resolves({ Item: { status: 'pending' } });

    const resolveDelivery = delivery(1);
    resolveDelivery.Records[0]!.body = JSON.stringify({ requestId, system: 'users', action: 'resolve', taskToken });
    const out = await handler(resolveDelivery, lambdaContext());

    expect(out.batchItemFailures).toEqual([]);
    const stored = dynamo.commandCalls(PutCommand).map((c) => c.args[0].input.Item!).find((i) => String(i['sk']).startsWith('LINK#'));
    expect(stored).toMatchObject({ pk: `REQ#${requestId}`, sk: 'LINK#users', count: 0, sealed: expect.any(String) as string });
    expect(JSON.stringify(stored)).not.toContain('ada@example.com');
    expect(sfn).toHaveReceivedCommandWith(SendTaskSuccessCommand, {
      output: JSON.stringify({ requestId, system: 'users', action: 'resolve', status: 'succeeded', affected: 0 }),
    });
  });
});

describe('Function: retryDelaySeconds', () => {
  it('backs off exponentially, under half the heartbeat', () => {
    expect([1, 2, 3, 4, 5, 6].map((n) => retryDelaySeconds(n, 60))).toEqual([2, 4, 8, 16, 30, 30]);
    expect(retryDelaySeconds(10, 3600)).toBe(900);
  });
});
