import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { startFauxqs } from 'fauxqs';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyChain } from '#core/audit';
import { InvalidTransitionError } from '#core/errors';
import type { RequestRecord } from '#core/request';
import { createRequestsTable, credentials, dynamoDb, dynamoUnavailable, type DynamoEndpoint } from '../fixtures/servers.ts';

const unavailable = dynamoUnavailable();
if (unavailable) console.warn(`skipping request store and audit integration tests: ${unavailable}`);

describe.skipIf(unavailable)('Request store and audit log (DynamoDB Local, fauxqs S3)', () => {
  let server: DynamoEndpoint;
  let fauxqs: Awaited<ReturnType<typeof startFauxqs>>;
  let s3: S3Client;
  let store: import('#functions/commons/request-store').RequestStore;
  let audit: import('#functions/commons/audit-log').AuditLog;
  let readAuditChain: typeof import('#functions/commons/audit-log').readAuditChain;
  const table = 'requests';
  const bucket = 'audit';

  beforeAll(async () => {
    server = await dynamoDb();
    fauxqs = await startFauxqs({ port: 0, logger: false });
    process.env['AWS_ENDPOINT_URL_DYNAMODB'] = server.endpoint;
    process.env['AWS_ENDPOINT_URL_S3'] = `http://127.0.0.1:${String(fauxqs.port)}`;
    Object.assign(process.env, { AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' });
    s3 = new S3Client({ endpoint: process.env['AWS_ENDPOINT_URL_S3'], region: 'us-east-1', credentials, forcePathStyle: true });
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    await createRequestsTable(server.client, table);
    const storeModule = await import('#functions/commons/request-store');
    const auditModule = await import('#functions/commons/audit-log');
    store = new storeModule.RequestStore(table);
    audit = new auditModule.AuditLog(table, bucket);
    readAuditChain = auditModule.readAuditChain;
  });
  afterAll(async () => {
    await fauxqs.stop();
    await server.stop();
  });

  const newRequest = async (): Promise<string> => {
    const requestId = randomUUID();
    const record: RequestRecord = {
      requestId,
      type: 'erasure',
      regulation: 'gdpr',
      status: 'received',
      receivedAt: new Date().toISOString(),
      dueAt: new Date().toISOString(),
      pseudonyms: [{ type: 'email', pseudonym: 'ab'.repeat(32) }],
      keyVersion: 'v1',
      bodyHash: 'h',
      sealedIdentities: 'sealed',
      wrappedDataKey: 'wrapped',
    };
    expect(await store.create(record)).toBe(true);
    return requestId;
  };

  it('stores a request once per id', async () => {
    const id = await newRequest();
    const again = await store.create({ ...(await store.mustGet(id)), type: 'anonymize' });

    expect(again).toBe(false);
    expect((await store.mustGet(id)).type).toBe('erasure');
  });

  it('moves statuses forward only, idempotently, and locks final ones', async () => {
    const id = await newRequest();

    expect(await store.transition(id, 'in_progress')).toBe(true);
    expect(await store.transition(id, 'in_progress')).toBe(false);
    await expect(store.transition(id, 'received')).rejects.toThrow(InvalidTransitionError);
    expect(await store.transition(id, 'completed', { completedAt: 'now' })).toBe(true);
    await expect(store.transition(id, 'failed')).rejects.toThrow(/cannot move from completed to failed/);
    expect((await store.mustGet(id)).status).toBe('completed');
  });

  it('keeps task statuses forward-only and counts attempts', async () => {
    const id = await newRequest();
    await store.putTaskIfAbsent({ requestId: id, system: 'users', action: 'delete', connector: 'dynamodb', status: 'pending', attempts: 0, updatedAt: 'now' });
    await store.putTaskIfAbsent({ requestId: id, system: 'users', action: 'delete', connector: 'dynamodb', status: 'failed', attempts: 9, updatedAt: 'now' });

    expect(await store.transitionTask(id, 'users', 'delete', 'running')).toBe(true);
    expect(await store.transitionTask(id, 'users', 'delete', 'succeeded', { affected: 2 })).toBe(true);
    await expect(store.transitionTask(id, 'users', 'delete', 'failed')).rejects.toThrow(InvalidTransitionError);
    expect(await store.tasks(id)).toEqual([expect.objectContaining({ status: 'succeeded', affected: 2, attempts: 1 })]);
  });

  it('lets one attempt at a time hold a task, until its lease ends or it lets go', async () => {
    const id = await newRequest();
    await store.putTaskIfAbsent({ requestId: id, system: 'users', action: 'delete', connector: 'dynamodb', status: 'pending', attempts: 0, updatedAt: 'now' });
    const task = { requestId: id, system: 'users', action: 'delete' } as const;

    // Three deliveries at once: one claims, two find it held.
    const claims = await Promise.all(['a', 'b', 'c'].map((owner) => store.claimTask(id, 'users', 'delete', owner, 60)));
    expect(claims.filter((c) => c.claimed)).toEqual([{ claimed: true, first: true, attempts: 1 }]);
    for (const c of claims.filter((c) => !c.claimed)) expect(Date.parse(c.busyUntil!)).toBeGreaterThan(Date.now() + 50_000);
    const holder = ['a', 'b', 'c'][claims.findIndex((c) => c.claimed)]!;

    // Only the holder renews; once it lets go (a retryable failure), the next attempt claims at once.
    expect(await store.renewLease(task, 'someone-else', 60)).toBe(false);
    expect(await store.renewLease(task, holder, 0)).toBe(true);
    // A lease that ran out (its attempt died; here it was taken already expired) is claimed by the next.
    expect(await store.claimTask(id, 'users', 'delete', 'd', -1)).toEqual({ claimed: true, first: false, attempts: 2 });
    expect(await store.claimTask(id, 'users', 'delete', 'e', 60)).toEqual({ claimed: true, first: false, attempts: 3 });
    expect(await store.transitionTask(id, 'users', 'delete', 'succeeded', { affected: 1 })).toBe(true);
    // Final: no claim, the task as it stands, without the lease's attributes.
    const after = await store.claimTask(id, 'users', 'delete', 'f', 60);
    expect(after).toEqual({ claimed: false, task: expect.objectContaining({ status: 'succeeded', affected: 1, attempts: 3 }) as unknown });
    expect(JSON.stringify(after)).not.toContain('lease');
  });

  it("holds a system's batch lock for one worker while it renews, and lets the next take it once it lapses", async () => {
    const system = `lake-${randomUUID()}`;
    const takes = await Promise.all(['a', 'b', 'c'].map((owner) => store.lockBatch(system, owner, 120)));
    expect(takes.filter(Boolean)).toHaveLength(1);
    const holder = ['a', 'b', 'c'][takes.indexOf(true)]!;

    expect(await store.renewBatch(system, 'someone-else', 120)).toBe(false);
    expect(await store.lockBatch(system, 'd', 120)).toBe(false);
    // The holder dies: its lease (renewed here already lapsed) is taken by the next worker, and
    // the dead holder can neither renew nor release it.
    expect(await store.renewBatch(system, holder, -1)).toBe(true);
    expect(await store.lockBatch(system, 'e', 120)).toBe(true);
    expect(await store.renewBatch(system, holder, 120)).toBe(false);
    await store.unlockBatch(system, holder);
    expect(await store.lockBatch(system, 'f', 120)).toBe(false);
    await store.unlockBatch(system, 'e');
    expect(await store.lockBatch(system, 'f', 120)).toBe(true);
  });

  it('finds the requests of a subject through any of its pseudonyms, oldest first, each once', async () => {
    const email = { type: 'email', pseudonym: randomUUID().replaceAll('-', '') };
    const phone = { type: 'phone', pseudonym: randomUUID().replaceAll('-', '') };
    await store.indexSubject({ requestId: 'r-2', type: 'withdraw', receivedAt: '2026-11-02T00:00:00.000Z', pseudonyms: [email] });
    await store.indexSubject({ requestId: 'r-1', type: 'restrict', receivedAt: '2026-11-01T00:00:00.000Z', pseudonyms: [email, phone] });
    await store.indexSubject({ requestId: 'r-1', type: 'restrict', receivedAt: '2026-11-01T00:00:00.000Z', pseudonyms: [email, phone] });

    expect((await store.requestsOfSubject([phone, email])).map((r) => `${r.requestId} ${r.type}`)).toEqual(['r-1 restrict', 'r-2 withdraw']);
    expect(await store.requestsOfSubject([{ type: 'email', pseudonym: 'nobody' }])).toEqual([]);
  });

  it('keeps a restriction until one withdraw lifts it', async () => {
    const id = await newRequest();
    expect(await store.restriction(id, 'app-db')).toBeUndefined();
    await store.putRestriction(id, 'app-db', 'sealed-keys', 2);
    expect(await store.restriction(id, 'app-db')).toEqual({ sealed: 'sealed-keys', count: 2 });

    await store.markLifted(id, 'app-db', 'withdraw-1');
    await store.markLifted(id, 'app-db', 'withdraw-1');
    await store.markLifted(id, 'app-db', 'withdraw-2');
    expect(await store.restriction(id, 'app-db')).toEqual({ sealed: 'sealed-keys', count: 2, liftedBy: 'withdraw-1' });
  });

  it('chains concurrent appends without gaps or forks, and appends each state change once', async () => {
    const id = await newRequest();
    const at = new Date().toISOString();
    const events = Array.from({ length: 20 }, (_, i) => ({ eventId: `e${String(i)}`, event: 'task.succeeded' as const, at, actor: 'test', affected: i }));

    await Promise.all(events.map((e) => audit.append(id, e)));
    await Promise.all(events.slice(0, 5).map((e) => audit.append(id, e)));

    const records = await readAuditChain(s3, bucket, id);
    expect(records).toHaveLength(20);
    expect(new Set(records.map((r) => r.eventId)).size).toBe(20);
    const last = records.at(-1)!;
    expect(verifyChain(id, records, { seq: last.seq, hash: last.hash })).toEqual([]);
  });
});
