import { S3Client } from '@aws-sdk/client-s3';
import { SendTaskFailureCommand, SendTaskHeartbeatCommand, SendTaskSuccessCommand, SFNClient } from '@aws-sdk/client-sfn';
import { GetQueueUrlCommand, SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand, TransactWriteCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { seal } from '#core/envelope';
import { LocalKeyService } from '#functions/commons/keys';
import { handlerEnvironment, lambdaContext } from '../../fixtures/lambda.ts';
import { requestItem, taskDelivery } from '../../fixtures/worker.ts';
import { WEBHOOK_SECRET, webhookService } from '../../fixtures/webhook-service.ts';

/**
 * The worker's side of webhook services: an accepted task waits with its callback URL given to the
 * service; the service's recorded report settles it on the next poll (done, with the service's
 * count, or failed, with its code); no report by the deadline fails it.
 */
const service = await webhookService();
handlerEnvironment({
  LETHE_SYSTEMS: JSON.stringify([
    {
      name: 'billing-svc',
      connector: 'webhook',
      identities: ['email'],
      actions: { erasure: 'delete' },
      concurrency: 2,
      heartbeatSeconds: 60,
      timeoutSeconds: 86_400,
      maxAttempts: 3,
      settings: { url: service.url, secret: { env: 'LETHE_TEST_BILLING_SECRET' }, handles: ['delete'] },
    },
  ]),
  CONNECTOR_KIND: 'webhook',
  LETHE_TEST_BILLING_SECRET: WEBHOOK_SECRET,
  API_URL: 'https://abc123.execute-api.eu-west-1.amazonaws.com/prod/',
});
const dynamo = mockClient(DynamoDBDocumentClient);
const sfn = mockClient(SFNClient);
const sqs = mockClient(SQSClient);
const s3 = mockClient(S3Client);
let handler: (e: SQSEvent, c: unknown) => Promise<SQSBatchResponse>;
const keys = LocalKeyService.fromFile(process.env['LOCAL_KEY_FILE']!);
const requestId = '8a8b8c8d-0000-4000-8000-0000000000cc';
const jobId = `${requestId}:billing-svc:delete`;
const taskKey = { pk: `REQ#${requestId}`, sk: 'TASK#billing-svc#delete' };
let dataKey: Awaited<ReturnType<typeof keys.generateDataKey>>;

beforeAll(async () => {
  ({ handler } = (await import('#functions/run-connector/handler')) as unknown as { handler: typeof handler });
  dataKey = await keys.generateDataKey(requestId);
});
afterAll(() => service.close());
beforeEach(() => {
  service.mode = 'accept';
  service.records.set('ada@example.com', 2);
  dynamo.on(GetCommand).resolves({});
  dynamo.on(GetCommand, { Key: { pk: `REQ#${requestId}`, sk: 'META' } }).resolves({ Item: requestItem(requestId, dataKey, [{ type: 'email', value: 'ada@example.com' }]) });
  dynamo.on(QueryCommand).resolves({ Items: [] });
  dynamo.on(UpdateCommand).resolves({});
  dynamo.on(PutCommand).resolves({});
  dynamo.on(TransactWriteCommand).resolves({});
  sqs.on(GetQueueUrlCommand).resolves({ QueueUrl: 'https://sqs.us-east-1.amazonaws.com/000000000000/billing-svc' });
});
afterEach(() => {
  dynamo.reset();
  sfn.reset();
  sqs.reset();
  s3.reset();
});

const message = (poll: boolean): SQSEvent => taskDelivery({ requestId, system: 'billing-svc', action: 'delete', taskToken: 'token-3', ...(poll && { poll: true as const }) });

const waitingTask = (deadlineAt: string, callback?: object) => ({
  requestId,
  system: 'billing-svc',
  action: 'delete',
  status: 'waiting_on_vendor',
  affected: 0,
  taskToken: 'token-3',
  jobs: `webhook job ${jobId}`,
  deadlineAt,
  sealedJobs: seal([{ vendor: 'webhook', id: jobId, vars: {}, pollEverySeconds: 900, deadlineSeconds: 86_400, awaiting: 'its callback' }], dataKey.plaintext, requestId),
  ...(callback && { callback }),
});
const update = (to: string) => dynamo.commandCalls(UpdateCommand).find((c) => c.args[0].input.ExpressionAttributeValues?.[':to'] === to)?.args[0].input;

describe('Function: run-connector handler, webhook services', () => {
  it('gives the service a callback URL on the API and leaves the accepted task waiting, the token open', async () => {
    await handler(message(false), lambdaContext());

    const delivery = service.deliveries.at(-1)!.delivery;
    expect(delivery.callbackUrl).toBe(`https://abc123.execute-api.eu-west-1.amazonaws.com/prod/v1/callbacks/${requestId}/billing-svc/delete`);
    expect(Object.values(update('waiting_on_vendor')?.ExpressionAttributeValues ?? {})).toContain(`webhook job ${jobId}`);
    expect(sfn).toHaveReceivedCommandWith(SendTaskHeartbeatCommand, { taskToken: 'token-3' });
    expect(sfn).not.toHaveReceivedCommand(SendTaskSuccessCommand);
  });

  it('settles at once when the service called back before the wait was recorded', async () => {
    dynamo.on(GetCommand, { Key: taskKey }).resolvesOnce({}).resolves({ Item: waitingTask('2099-01-01T00:00:00.000Z', { job: jobId, status: 'done', affected: 2, at: 'x' }) });

    await handler(message(false), lambdaContext());

    expect(sfn).toHaveReceivedCommandWith(SendTaskSuccessCommand, { taskToken: 'token-3' });
  });

  it('succeeds on the service’s done report, with the count it reported', async () => {
    dynamo.on(GetCommand, { Key: taskKey }).resolves({ Item: waitingTask('2099-01-01T00:00:00.000Z', { job: jobId, status: 'done', affected: 5, at: 'x' }) });

    await handler(message(true), lambdaContext());

    expect(update('succeeded')?.ExpressionAttributeValues).toMatchObject({ ':x0': 5 });
    expect(sfn).toHaveReceivedCommandWith(SendTaskSuccessCommand, {
      taskToken: 'token-3',
      output: JSON.stringify({ requestId, system: 'billing-svc', action: 'delete', status: 'succeeded', affected: 5 }),
    });
  });

  it('fails on the service’s failed report, naming the job and the service’s code', async () => {
    dynamo.on(GetCommand, { Key: taskKey }).resolves({ Item: waitingTask('2099-01-01T00:00:00.000Z', { job: jobId, status: 'failed', error: 'legal_hold', at: 'x' }) });

    await handler(message(true), lambdaContext());

    expect(sfn).toHaveReceivedCommandWith(SendTaskFailureCommand, {
      taskToken: 'token-3',
      error: 'ConnectorPermanentError',
      cause: `billing-svc: webhook job ${jobId} failed: legal_hold`,
    });
  });

  it('keeps waiting without a report, and fails once the deadline has passed', async () => {
    dynamo.on(GetCommand, { Key: taskKey }).resolves({ Item: waitingTask('2099-01-01T00:00:00.000Z') });
    await handler(message(true), lambdaContext());
    expect(sfn).not.toHaveReceivedCommand(SendTaskFailureCommand);
    expect(dynamo.commandCalls(UpdateCommand).some((c) => c.args[0].input.UpdateExpression?.startsWith('SET nextPollAt'))).toBe(true);

    dynamo.on(GetCommand, { Key: taskKey }).resolves({ Item: waitingTask('2020-01-01T00:00:00.000Z') });
    await handler(message(true), lambdaContext());
    expect(sfn).toHaveReceivedCommandWith(SendTaskFailureCommand, {
      error: 'ConnectorPermanentError',
      cause: `billing-svc: passed its deadline 2020-01-01T00:00:00.000Z waiting on webhook job ${jobId} (waiting for its callback)`,
    });
  });
});
