import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { SendTaskFailureCommand, SendTaskHeartbeatCommand, SendTaskSuccessCommand, SFNClient } from '@aws-sdk/client-sfn';
import { CreateQueueCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { startFauxqs } from 'fauxqs';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sealIdentities } from '#core/envelope';
import { LocalKeyService } from '#functions/commons/keys';
import { handlerEnvironment, lambdaContext } from '../fixtures/lambda.ts';
import { duckdbParquet, rowsOf } from '../fixtures/lake.ts';
import { createRequestsTable, credentials, dynamoDb, dynamoUnavailable, type DynamoEndpoint } from '../fixtures/servers.ts';
import { taskDelivery } from '../fixtures/worker.ts';

/**
 * The lake worker's batches on DynamoDB Local and fauxqs (S3 and SQS); only Step Functions is
 * mocked. Two erasures join one batch; its first run fails retryably and changes nothing, the next
 * removes both subjects in one rewrite and completes both tasks, each with its own count.
 */
const unavailable = dynamoUnavailable();
if (unavailable) console.warn(`skipping the lake batch integration test: ${unavailable}`);

describe.skipIf(unavailable)('Function: run-connector handler, lake batches', () => {
  let server: DynamoEndpoint;
  let fauxqs: Awaited<ReturnType<typeof startFauxqs>>;
  let s3: S3Client;
  let handler: (e: SQSEvent, c: unknown) => Promise<SQSBatchResponse>;
  let store: import('#functions/commons/request-store').RequestStore;
  const sfn = mockClient(SFNClient);
  const requests = ['9a9b9c9d-0000-4000-8000-000000000001', '9a9b9c9d-0000-4000-8000-000000000002'];
  const emails = ['user3@example.com', 'user4@example.com'];
  let parquet: Uint8Array;
  let sqs: SQSClient;
  let queueUrl: string;

  beforeAll(async () => {
    server = await dynamoDb();
    fauxqs = await startFauxqs({ port: 0, logger: false });
    const aws = `http://127.0.0.1:${String(fauxqs.port)}`;
    handlerEnvironment({
      AWS_ENDPOINT_URL_DYNAMODB: server.endpoint,
      AWS_ENDPOINT_URL_S3: aws,
      AWS_ENDPOINT_URL_SQS: aws,
      CONNECTOR_KIND: 'lake',
      LETHE_SYSTEMS: JSON.stringify([
        {
          name: 'analytics',
          connector: 'lake',
          identities: ['email'],
          actions: { erasure: 'delete' },
          concurrency: 2,
          heartbeatSeconds: 300,
          timeoutSeconds: 3600,
          maxAttempts: 3,
          settings: { batch: { windowSeconds: 1 }, tables: [{ bucket: 'lake', prefix: 'events/', format: 'parquet', columns: [{ identity: 'email', column: 'email' }] }] },
        },
      ]),
    });
    s3 = new S3Client({ endpoint: aws, region: 'us-east-1', credentials, forcePathStyle: true });
    for (const Bucket of ['lake', 'audit']) await s3.send(new CreateBucketCommand({ Bucket }));
    sqs = new SQSClient({ endpoint: aws, region: 'us-east-1', credentials, useQueueUrlAsEndpoint: false });
    queueUrl = (await sqs.send(new CreateQueueCommand({ QueueName: 'analytics' }))).QueueUrl!;
    const path = join(mkdtempSync(join(tmpdir(), 'lethe-batch-')), 'events.parquet');
    await duckdbParquet(path, { rows: 2000, users: 20, codec: 'zstd' });
    parquet = new Uint8Array(readFileSync(path));
    await s3.send(new PutObjectCommand({ Bucket: 'lake', Key: 'events/part-0.parquet', Body: parquet }));
    await createRequestsTable(server.client);
    const keys = LocalKeyService.fromFile(process.env['LOCAL_KEY_FILE']!);
    store = new (await import('#functions/commons/request-store')).RequestStore('requests');
    for (const [i, requestId] of requests.entries()) {
      const dataKey = await keys.generateDataKey(requestId);
      await store.create({
        requestId,
        type: 'erasure',
        regulation: 'gdpr',
        status: 'in_progress',
        receivedAt: new Date().toISOString(),
        dueAt: new Date(Date.now() + 1e9).toISOString(),
        pseudonyms: [],
        keyVersion: 'v1',
        bodyHash: 'x',
        sealedIdentities: sealIdentities([{ type: 'email', value: emails[i]! }], dataKey.plaintext, requestId),
        wrappedDataKey: dataKey.wrapped,
      });
      await store.putTaskIfAbsent({ requestId, system: 'analytics', action: 'delete', connector: 'lake', status: 'pending', attempts: 0, updatedAt: new Date().toISOString() });
    }
    sfn.on(SendTaskHeartbeatCommand).resolves({});
    sfn.on(SendTaskSuccessCommand).resolves({});
    ({ handler } = (await import('#functions/run-connector/handler')) as unknown as { handler: typeof handler });
  });
  afterAll(async () => {
    sfn.restore();
    await fauxqs.stop();
    await server.stop();
  });

  const batchMessage = (): SQSEvent => {
    const event = taskDelivery({ requestId: requests[0]!, system: 'analytics', action: 'delete', taskToken: 'x' });
    event.Records[0]!.body = JSON.stringify({ batch: true, system: 'analytics' });
    return event;
  };
  const object = async () => new Uint8Array(await (await s3.send(new GetObjectCommand({ Bucket: 'lake', Key: 'events/part-0.parquet' }))).Body!.transformToByteArray());

  it('waits for the batch, survives a failed run, and completes every member in one rewrite', async () => {
    for (const [i, requestId] of requests.entries()) {
      expect((await handler(taskDelivery({ requestId, system: 'analytics', action: 'delete', taskToken: `token-${String(i)}` }), lambdaContext())).batchItemFailures).toEqual([]);
    }
    for (const requestId of requests) expect(await store.task(requestId, 'analytics', 'delete')).toMatchObject({ status: 'waiting_on_vendor', jobs: 'lake job batch' });
    expect(await store.batchMembers('analytics')).toHaveLength(2);
    expect([await store.batchHasAtLeast('analytics', 2), await store.batchHasAtLeast('analytics', 3)]).toEqual([true, false]);
    expect(sfn).not.toHaveReceivedCommand(SendTaskSuccessCommand);
    const triggers = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, WaitTimeSeconds: 2, MaxNumberOfMessages: 10 }));
    expect(triggers.Messages?.map((m) => m.Body)).toContain(JSON.stringify({ batch: true, system: 'analytics' }));
    await new Promise((ok) => setTimeout(ok, 1100)); // the window

    // The first run fails as S3 might (a 503): nothing is written, nobody leaves the batch.
    const { s3: handlerS3 } = await import('#functions/commons/clients');
    let puts = 0;
    handlerS3.middlewareStack.add(
      (next, context) => (args) => {
        if (context.commandName === 'PutObjectCommand' && (args.input as { Bucket?: string }).Bucket === 'lake' && (puts += 1) === 1) {
          throw Object.assign(new Error('Slow Down'), { name: 'SlowDown', $metadata: { httpStatusCode: 503 } });
        }
        return next(args);
      },
      { step: 'initialize', name: 'fail-once' },
    );
    const { sqs: handlerSqs } = await import('#functions/commons/clients');
    const delays: number[] = [];
    handlerSqs.middlewareStack.add(
      (next, context) => (args) => {
        const input = args.input as { MessageBody?: string; DelaySeconds?: number };
        if (context.commandName === 'SendMessageCommand' && input.MessageBody === JSON.stringify({ batch: true, system: 'analytics' })) delays.push(input.DelaySeconds ?? 0);
        return next(args);
      },
      { step: 'initialize', name: 'batch-triggers' },
    );
    await handler(batchMessage(), lambdaContext());
    expect(await store.batchMembers('analytics')).toHaveLength(2);
    expect(Buffer.from(await object()).equals(Buffer.from(parquet))).toBe(true);
    // Before it rewrote anything, the run left a trigger for when its lease lapses (should it die,
    // its own trigger is gone for the queue's visibility timeout); failing, it asked for the next run.
    expect(delays).toEqual([65, 60]);
    expect(sfn).not.toHaveReceivedCommand(SendTaskSuccessCommand);

    await handler(batchMessage(), lambdaContext());
    handlerS3.middlewareStack.remove('fail-once');
    handlerSqs.middlewareStack.remove('batch-triggers');

    expect(puts).toBe(2); // one failed write, then one rewrite for both subjects
    expect(await store.batchMembers('analytics')).toEqual([]);
    for (const requestId of requests) {
      expect(await store.task(requestId, 'analytics', 'delete')).toMatchObject({ status: 'succeeded', affected: 100, remaining: 0, jobs: 'lake batch of 2' });
    }
    expect(sfn).toHaveReceivedCommandTimes(SendTaskSuccessCommand, 2);
    expect(sfn).not.toHaveReceivedCommand(SendTaskFailureCommand);
    expect(await rowsOf(await object())).toEqual((await rowsOf(parquet)).filter((r) => !emails.includes(r['email'] as string)));
  });

  it('puts a waiting task that is not in its batch (its environment died between the wait and the join) into it when its start comes again', async () => {
    const requestId = '9a9b9c9d-0000-4000-8000-000000000003';
    await store.putTaskIfAbsent({ requestId, system: 'analytics', action: 'delete', connector: 'lake', status: 'pending', attempts: 0, updatedAt: new Date().toISOString() });
    await store.transitionTask(requestId, 'analytics', 'delete', 'running');
    await store.transitionTask(requestId, 'analytics', 'delete', 'waiting_on_vendor', { taskToken: 'token-old', jobs: 'lake job batch' });
    expect(await store.batchMembers('analytics')).toEqual([]);

    // The saga sends the task again (its heartbeat lapsed): a new token, and the task joins its batch.
    await handler(taskDelivery({ requestId, system: 'analytics', action: 'delete', taskToken: 'token-new' }), lambdaContext());
    expect((await store.batchMembers('analytics')).map((m) => m.requestId)).toEqual([requestId]);
    expect(await store.task(requestId, 'analytics', 'delete')).toMatchObject({ status: 'waiting_on_vendor', taskToken: 'token-new' });
    // Delivered once more, it is a member already: nothing changes.
    await handler(taskDelivery({ requestId, system: 'analytics', action: 'delete', taskToken: 'token-new' }), lambdaContext());
    expect(await store.batchMembers('analytics')).toHaveLength(1);
    await store.leaveBatch('analytics', requestId, 'delete');
  });
});
