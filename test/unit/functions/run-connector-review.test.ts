import { SendTaskFailureCommand, SendTaskSuccessCommand, SFNClient } from '@aws-sdk/client-sfn';
import { GetQueueUrlCommand, SQSClient } from '@aws-sdk/client-sqs';
import { S3Client } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient, GetCommand, QueryCommand, TransactWriteCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Connector, Verification } from '#core/ports';
import { LocalKeyService } from '#functions/commons/keys';
import { handlerEnvironment, lambdaContext } from '../../fixtures/lambda.ts';
import { requestItem, taskDelivery } from '../../fixtures/worker.ts';

/**
 * A connector whose action finds nothing left by its own match while its verification's wider net
 * does: the task must end needs_review, never succeeded, with counts and no values anywhere.
 */
const verification = vi.hoisted((): { current: Verification } => ({ current: { remaining: 0 } }));
vi.mock('#connectors/index', () => ({
  connectorFor: (): Promise<Connector> =>
    Promise.resolve({
      kind: 'postgres',
      describe: () => ({ actions: ['delete'] }),
      resolve: () => Promise.resolve([]),
      run: () => Promise.resolve({ affected: 4 }),
      verify: () => Promise.resolve(verification.current),
    }),
}));

const system = {
  name: 'app-db',
  connector: 'postgres',
  identities: ['email'],
  actions: { erasure: 'delete' },
  concurrency: 2,
  heartbeatSeconds: 60,
  timeoutSeconds: 600,
  maxAttempts: 3,
  settings: { connection: { url: { env: 'UNUSED' } }, tables: [{ name: 'users', match: [{ identity: 'email', column: 'email' }] }] },
};
handlerEnvironment({ LETHE_SYSTEMS: JSON.stringify([system]), CONNECTOR_KIND: 'postgres' });
const dynamo = mockClient(DynamoDBDocumentClient);
const sfn = mockClient(SFNClient);
const sqs = mockClient(SQSClient);
const s3 = mockClient(S3Client);
let handler: (e: SQSEvent, c: unknown) => Promise<SQSBatchResponse>;

const requestId = '5d5e5f60-0000-4000-8000-0000000000aa';
const taskToken = 'token-review';
const updatesTo = (status: string) => dynamo.commandCalls(UpdateCommand).filter((c) => c.args[0].input.ExpressionAttributeValues?.[':to'] === status);

beforeAll(async () => {
  ({ handler } = (await import('#functions/run-connector/handler')) as unknown as { handler: typeof handler });
});
beforeEach(async () => {
  const keys = LocalKeyService.fromFile(process.env['LOCAL_KEY_FILE']!);
  const dataKey = await keys.generateDataKey(requestId);
  dynamo.on(GetCommand).resolves({});
  dynamo.on(GetCommand, { Key: { pk: `REQ#${requestId}`, sk: 'META' } }).resolves({ Item: requestItem(requestId, dataKey, [{ type: 'email', value: 'ada@example.com' }]) });
  dynamo.on(GetCommand, { Key: { pk: `REQ#${requestId}`, sk: 'TASK#app-db#delete' } }).resolves({ Item: { status: 'pending' } });
  dynamo.on(QueryCommand).resolves({ Items: [] });
  dynamo.on(UpdateCommand).resolves({});
  dynamo.on(TransactWriteCommand).resolves({});
  sqs.on(GetQueueUrlCommand).resolves({ QueueUrl: 'https://sqs.us-east-1.amazonaws.com/000000000000/app-db' });
});
afterEach(() => {
  dynamo.reset();
  sfn.reset();
  sqs.reset();
  s3.reset();
});

describe('Function: run-connector handler, near-misses', () => {
  it('ends the task needs_review with counts by reason, and fails the saga’s token, when the wider net finds what the action left', async () => {
    verification.current = { remaining: 0, nearMisses: { unicode: 2, whitespace: 1 } };
    const out = await handler(taskDelivery({ requestId, system: 'app-db', action: 'delete', taskToken }), lambdaContext());

    expect(out.batchItemFailures).toEqual([]);
    const [update] = updatesTo('needs_review');
    expect(Object.values(update?.args[0].input.ExpressionAttributeValues ?? {})).toEqual(expect.arrayContaining([{ unicode: 2, whitespace: 1 }, 4, 'NeedsReview']));
    expect(updatesTo('succeeded')).toHaveLength(0);
    expect(sfn).not.toHaveReceivedCommand(SendTaskSuccessCommand);
    expect(sfn).toHaveReceivedCommandWith(SendTaskFailureCommand, {
      taskToken,
      error: 'NeedsReview',
      cause: "app-db: 3 of the subject's records were left, which the action did not match: 2 in another Unicode form, 1 with whitespace around the value",
    });
    expect(JSON.stringify([...dynamo.calls(), ...sfn.calls()].map((c) => c.args[0].input))).not.toContain('ada@example.com');
  });

  it('succeeds as before when the wider net agrees', async () => {
    verification.current = { remaining: 0, nearMisses: {} };
    await handler(taskDelivery({ requestId, system: 'app-db', action: 'delete', taskToken }), lambdaContext());
    expect(updatesTo('succeeded')).toHaveLength(1);
    expect(updatesTo('needs_review')).toHaveLength(0);
    expect(sfn).toHaveReceivedCommand(SendTaskSuccessCommand);
  });
});
