import { S3Client } from '@aws-sdk/client-s3';
import { SendTaskHeartbeatCommand, SFNClient, TaskTimedOut } from '@aws-sdk/client-sfn';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient, GetCommand, QueryCommand, TransactWriteCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { handlerEnvironment, lambdaContext } from '../../fixtures/lambda.ts';

handlerEnvironment({ LETHE_SYSTEM_QUEUES: JSON.stringify({ analytics: { queueUrl: 'https://sqs.local/analytics', heartbeatSeconds: 60 } }) });
const dynamo = mockClient(DynamoDBDocumentClient);
const sfn = mockClient(SFNClient);
const sqs = mockClient(SQSClient);
const s3 = mockClient(S3Client);
let handler: (e: unknown, c: unknown) => Promise<{ due: number }>;

beforeAll(async () => {
  ({ handler } = (await import('#functions/poll-vendor-jobs/handler')) as unknown as { handler: typeof handler });
});
afterEach(() => {
  dynamo.reset();
  sfn.reset();
  sqs.reset();
  s3.reset();
});

const past = '2020-01-01T00:00:00.000Z';
const future = '2099-01-01T00:00:00.000Z';
const task = (nextPollAt: string, nextHeartbeatAt: string) => ({
  requestId: 'r-1',
  system: 'analytics',
  action: 'delete',
  status: 'waiting_on_vendor',
  taskToken: 'token-1',
  jobs: 'segment job reg-1',
  nextPollAt,
  nextHeartbeatAt,
});

describe('Function: poll-vendor-jobs handler', () => {
  it('heartbeats what is due, and sends the worker a poll with ids and the token only', async () => {
    dynamo.on(QueryCommand).resolves({ Items: [task(past, past)] });
    dynamo.on(UpdateCommand).resolves({});
    sfn.on(SendTaskHeartbeatCommand).resolves({});
    sqs.on(SendMessageCommand).resolves({});

    expect(await handler({}, lambdaContext())).toEqual({ due: 1, unfinished: false });

    expect(dynamo).toHaveReceivedCommandWith(QueryCommand, { IndexName: 'Waiting', KeyConditionExpression: 'waiting = :waiting AND nextCheckAt <= :now' });
    expect(sfn).toHaveReceivedCommandWith(SendTaskHeartbeatCommand, { taskToken: 'token-1' });
    expect(sqs).toHaveReceivedCommandWith(SendMessageCommand, {
      QueueUrl: 'https://sqs.local/analytics',
      MessageBody: JSON.stringify({ requestId: 'r-1', system: 'analytics', action: 'delete', taskToken: 'token-1', poll: true }),
    });
  });

  it('only heartbeats when no poll is due', async () => {
    dynamo.on(QueryCommand).resolves({ Items: [task(future, past)] });
    dynamo.on(UpdateCommand).resolves({});
    sfn.on(SendTaskHeartbeatCommand).resolves({});

    await handler({}, lambdaContext());

    expect(sfn).toHaveReceivedCommandTimes(SendTaskHeartbeatCommand, 1);
    expect(sqs).not.toHaveReceivedCommand(SendMessageCommand);
  });

  it('fails the task when the saga has stopped waiting for it', async () => {
    dynamo.on(QueryCommand).resolves({ Items: [task(past, past)] });
    dynamo.on(UpdateCommand).resolves({});
    dynamo.on(GetCommand).resolves({});
    dynamo.on(TransactWriteCommand).resolves({});
    sfn.on(SendTaskHeartbeatCommand).rejects(new TaskTimedOut({ message: 'timed out', $metadata: {} }));

    await handler({}, lambdaContext());

    const failed = dynamo.commandCalls(UpdateCommand).find((c) => c.args[0].input.ExpressionAttributeValues?.[':to'] === 'failed');
    expect(Object.values(failed?.args[0].input.ExpressionAttributeValues ?? {})).toContain('analytics: the saga stopped waiting for segment job reg-1');
    expect(sqs).not.toHaveReceivedCommand(SendMessageCommand);
  });
});
