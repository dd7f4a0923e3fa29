import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { SendTaskHeartbeatCommand, SFNClient } from '@aws-sdk/client-sfn';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { startFauxqs } from 'fauxqs';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { RequestStatus } from '#core/request';
import { eachInParallel } from '#functions/commons/sweep';
import { handlerEnvironment, lambdaContext } from '../fixtures/lambda.ts';
import { createRequestsTable, credentials, dynamoDb, dynamoUnavailable, type DynamoEndpoint } from '../fixtures/servers.ts';

/**
 * The scheduled sweeps past one page, on DynamoDB Local (Step Functions and SQS mocked): the
 * vendor poller checks every due waiting task, however many, and the shredder destroys every due
 * key, however many; each stops only with its time nearly spent, says so, and the next run goes on
 * from there. Shredding is conditional: a retry that reopens a request after it was listed keeps
 * its key, and a failure keeps its key until its deadline.
 */
const unavailable = dynamoUnavailable();
if (unavailable) console.warn(`skipping the sweeps integration test: ${unavailable}`);

const MANY = 1_050;
const minutes = (n: number) => new Date(Date.now() + n * 60_000).toISOString();
/** The shredder's own timeout (5 min): a busy CI machine takes longer than the fixture's 30 s over 1,050 keys. */
const shredderContext = () => ({ ...lambdaContext(), getRemainingTimeInMillis: () => 300_000 });

describe.skipIf(unavailable)('Scheduled sweeps, past one page', () => {
  let server: DynamoEndpoint;
  let fauxqs: Awaited<ReturnType<typeof startFauxqs>>;
  let store: import('#functions/commons/request-store').RequestStore;
  let poll: (e: unknown, c: unknown) => Promise<{ due: number; unfinished: boolean }>;
  let shred: (e: unknown, c: unknown) => Promise<{ shredded: number; postponed: number; unfinished: boolean }>;
  const sfn = mockClient(SFNClient);
  const sqs = mockClient(SQSClient);

  beforeAll(async () => {
    server = await dynamoDb();
    fauxqs = await startFauxqs({ port: 0, logger: false });
    handlerEnvironment({
      AWS_ENDPOINT_URL_DYNAMODB: server.endpoint,
      AWS_ENDPOINT_URL_S3: `http://127.0.0.1:${String(fauxqs.port)}`,
      LETHE_SYSTEM_QUEUES: JSON.stringify({ crm: { queueUrl: 'https://sqs.local/crm', heartbeatSeconds: 120 } }),
      SHRED_AFTER_SECONDS: '3600',
    });
    await new S3Client({ endpoint: process.env['AWS_ENDPOINT_URL_S3'], region: 'us-east-1', credentials, forcePathStyle: true }).send(new CreateBucketCommand({ Bucket: 'audit' }));
    await createRequestsTable(server.client);
    store = new (await import('#functions/commons/request-store')).RequestStore('requests');
    ({ handler: poll } = (await import('#functions/poll-vendor-jobs/handler')) as unknown as { handler: typeof poll });
    ({ handler: shred } = (await import('#functions/shred-keys/handler')) as unknown as { handler: typeof shred });
  });
  afterAll(async () => {
    await fauxqs.stop();
    await server.stop();
  });
  beforeEach(() => {
    sfn.reset();
    sqs.reset();
    sfn.on(SendTaskHeartbeatCommand).resolves({});
    sqs.on(SendMessageCommand).resolves({});
  });

  /** The request of each waiting task, by its token. */
  const requestOf = new Map<string, string>();
  /** `n` tasks waiting on a vendor, each due by `due`. Their tokens. */
  const waiting = async (n: number, due: string): Promise<string[]> => {
    const tokens = Array.from({ length: n }, () => `token-${randomUUID()}`);
    await eachInParallel(tokens, 16, async (taskToken) => {
      const requestId = randomUUID();
      requestOf.set(taskToken, requestId);
      await store.putTaskIfAbsent({ requestId, system: 'crm', action: 'delete', connector: 'http', status: 'pending', attempts: 0, updatedAt: due });
      await store.transitionTask(requestId, 'crm', 'delete', 'running');
      await store.transitionTask(requestId, 'crm', 'delete', 'waiting_on_vendor', { taskToken, jobs: 'crm job', nextPollAt: due, nextHeartbeatAt: due, nextCheckAt: due });
    });
    return tokens;
  };
  const beaten = () => sfn.commandCalls(SendTaskHeartbeatCommand).map((c) => c.args[0].input.taskToken);

  it('checks every due waiting task in one run, 1,050 of them (ten pages and more), and none twice', async () => {
    const tokens = await waiting(MANY, minutes(-5));
    const later = await waiting(3, minutes(30)); // not due yet

    expect(await poll({}, { ...lambdaContext(), getRemainingTimeInMillis: () => 60_000 })).toEqual({ due: MANY, unfinished: false });

    expect(beaten().sort()).toEqual([...tokens].sort());
    expect(sqs.commandCalls(SendMessageCommand)).toHaveLength(MANY);
    expect(beaten()).not.toContain(later[0]);
    // Each is rescheduled: the next run finds nothing due.
    expect(await poll({}, lambdaContext())).toEqual({ due: 0, unfinished: false });
  }, 300_000);

  it('stops with time to spare, says so, and the next run goes on with the rest', async () => {
    const tokens = await waiting(250, minutes(-5));

    // The time runs out once the first page is done.
    const short = { ...lambdaContext(), getRemainingTimeInMillis: () => (beaten().length < 100 ? 50_000 : 1_000) };
    expect(await poll({}, short)).toEqual({ due: 100, unfinished: true });
    expect(await poll({}, lambdaContext())).toEqual({ due: 150, unfinished: false });

    expect(beaten().sort()).toEqual([...tokens].sort());
  });

  it('beats the token the saga sent last: a waiting task sent again keeps its new token, once', async () => {
    const [old] = await waiting(1, minutes(30));
    const task = { requestId: requestOf.get(old!)!, system: 'crm', action: 'delete' } as const;

    expect(await store.replaceTaskToken(task, old!, 'token-new')).toBe(true);
    // A second delivery of the old start, or of another, finds the token replaced already.
    expect(await store.replaceTaskToken(task, old!, 'token-other')).toBe(false);
    // Due for a heartbeat at once, with the new token.
    expect(await poll({}, lambdaContext())).toMatchObject({ due: 1 });
    expect(beaten()).toEqual(['token-new']);
  });

  /** A request final with `status`, its key due for shredding by `shredAt`, its deadline `dueAt`. */
  const finalRequest = async (status: RequestStatus, shredAt: string, dueAt = minutes(-60)): Promise<string> => {
    const requestId = randomUUID();
    const at = minutes(-120);
    await store.create({ requestId, type: 'erasure', regulation: 'gdpr', status: 'received', receivedAt: at, dueAt, pseudonyms: [], keyVersion: 'v1', bodyHash: 'x', sealedIdentities: 'sealed', wrappedDataKey: 'wrapped' });
    await store.transition(requestId, 'in_progress');
    await store.transition(requestId, status, { completedAt: at, shred: 'DUE', shredAt });
    return requestId;
  };
  const hasKey = async (requestId: string) => (await store.get(requestId))?.wrappedDataKey !== undefined;

  it('destroys every due key in one run, 1,050 of them, and none that is not due', async () => {
    const due = await Promise.all(Array.from({ length: MANY }, () => finalRequest('completed', minutes(-1))));
    const notYet = await finalRequest('completed', minutes(60));

    expect(await shred({}, shredderContext())).toEqual({ shredded: MANY, postponed: 0, unfinished: false });

    const kept = (await Promise.all(due.map(hasKey))).filter(Boolean);
    expect(kept).toEqual([]);
    expect(await hasKey(notYet)).toBe(true);
    expect(await shred({}, shredderContext())).toEqual({ shredded: 0, postponed: 0, unfinished: false });
  }, 300_000);

  it('keeps the key of a request that a retry reopened after the shredder listed it', async () => {
    const requestId = await finalRequest('failed', minutes(-1));
    const now = new Date().toISOString();
    const [listed] = await (async () => {
      for await (const page of store.dueForShredding(now)) return page;
      return [];
    })();
    expect(listed?.requestId).toBe(requestId);
    // The retry lands between the listing and the shredding.
    expect(await store.reopenFailed(requestId, 1, [], now)).toBe(true);

    expect(await store.shredDataKey(requestId, now)).toBe(false);
    expect(await hasKey(requestId)).toBe(true);
  });

  it('keeps the key of a failed request until its deadline, since it may be retried until then, and destroys it after', async () => {
    const failed = await finalRequest('partially_failed', minutes(-1), minutes(24 * 60));
    const review = await finalRequest('needs_review', minutes(-1), minutes(-5));

    expect(await shred({}, shredderContext())).toMatchObject({ shredded: 1, postponed: 1 });
    expect(await hasKey(failed)).toBe(true);
    expect(await hasKey(review)).toBe(false);
    // Put off until its deadline, and not shredded by a direct attempt before it either.
    const dueBy = async (at: string) => {
      const ids: string[] = [];
      for await (const page of store.dueForShredding(at)) ids.push(...page.map((r) => r.requestId));
      return ids;
    };
    expect(await dueBy(minutes(60))).not.toContain(failed);
    expect(await dueBy(minutes(24 * 60 + 1))).toContain(failed);
    expect(await store.shredDataKey(failed, new Date().toISOString())).toBe(false);
  });
});

