import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { mockClient } from 'aws-sdk-client-mock';
import { startFauxqs } from 'fauxqs';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TaskRecord } from '#core/request';
import { handlerEnvironment } from '../fixtures/lambda.ts';
import { createRequestsTable, credentials, dynamoDb, dynamoUnavailable, type DynamoEndpoint } from '../fixtures/servers.ts';

/**
 * Derived datasets on DynamoDB Local (EventBridge mocked): an erasure that removed rows from a
 * source taints every dataset built from it, directly or not, once per request, and announces it
 * with counts only; an announcement that failed is made again when the request is finished again.
 */
const unavailable = dynamoUnavailable();
if (unavailable) console.warn(`skipping the datasets integration test: ${unavailable}`);

describe.skipIf(unavailable)('Function: finishRequest, derived datasets', () => {
  let server: DynamoEndpoint;
  let fauxqs: Awaited<ReturnType<typeof startFauxqs>>;
  let finish: typeof import('#functions/commons/finish').finishRequest;
  let deps: Parameters<typeof finish>[1];
  const events = mockClient(EventBridgeClient);

  beforeAll(async () => {
    server = await dynamoDb();
    fauxqs = await startFauxqs({ port: 0, logger: false });
    handlerEnvironment({
      AWS_ENDPOINT_URL_DYNAMODB: server.endpoint,
      AWS_ENDPOINT_URL_S3: `http://127.0.0.1:${String(fauxqs.port)}`,
      EVENT_BUS_NAME: 'lethe-bus',
      LETHE_DATASETS: JSON.stringify([
        { name: 'features', kind: 'feature_table', derivedFrom: ['app-db'] },
        { name: 'churn-model', kind: 'model', derivedFrom: ['features'] },
        { name: 'crm-synthetic', kind: 'synthetic', derivedFrom: ['crm'] },
      ]),
    });
    await new S3Client({ endpoint: process.env['AWS_ENDPOINT_URL_S3'], region: 'us-east-1', credentials, forcePathStyle: true }).send(new CreateBucketCommand({ Bucket: 'audit' }));
    await createRequestsTable(server.client);
    const { RequestStore } = await import('#functions/commons/request-store');
    const { AuditLog } = await import('#functions/commons/audit-log');
    const { datasetDepsFromEnv } = await import('#functions/commons/datasets');
    ({ finishRequest: finish } = await import('#functions/commons/finish'));
    deps = { store: new RequestStore('requests'), audit: new AuditLog('requests', 'audit'), datasets: datasetDepsFromEnv()! };
  });
  afterAll(async () => {
    events.restore();
    await fauxqs.stop();
    await server.stop();
  });

  const request = async (type: string, tasks: Partial<TaskRecord>[]) => {
    const requestId = randomUUID();
    const at = new Date().toISOString();
    await deps.store.create({ requestId, type: type as never, regulation: 'gdpr', status: 'in_progress', receivedAt: at, dueAt: at, pseudonyms: [], keyVersion: 'v1', bodyHash: 'x', sealedIdentities: 'x', wrappedDataKey: 'x' });
    for (const t of tasks) {
      await deps.store.putTaskIfAbsent({ requestId, system: 'app-db', action: 'delete', connector: 'postgres', status: 'succeeded', attempts: 1, updatedAt: at, ...t });
    }
    return requestId;
  };
  const finishIt = (requestId: string) => finish(requestId, deps, { actor: 'test', failureOf: () => ({ errorName: 'X', errorMessage: 'x' }) });
  const announced = () => events.commandCalls(PutEventsCommand).flatMap((c) => c.args[0].input.Entries ?? []);

  it('taints the datasets built from a source the subject was erased from, and announces them with counts only', async () => {
    events.on(PutEventsCommand).resolves({ FailedEntryCount: 0 });
    const first = await request('erasure', [{ affected: 3 }, { system: 'crm', connector: 'http', affected: 0 }]);
    await finishIt(first);

    expect(announced().map((e) => [e.Source, e.DetailType, e.EventBusName])).toEqual([
      ['lethe', 'Dataset Retrain Required', 'lethe-bus'],
      ['lethe', 'Dataset Retrain Required', 'lethe-bus'],
    ]);
    expect(announced().map((e) => JSON.parse(e.Detail!) as unknown)).toEqual([
      { dataset: 'churn-model', kind: 'model', taintedSubjects: 1, taintedSince: expect.any(String) as string },
      { dataset: 'features', kind: 'feature_table', taintedSubjects: 1, taintedSince: expect.any(String) as string },
    ]);
    expect(JSON.stringify(announced())).not.toContain(first);

    await finishIt(first); // a finish again (a redelivery) counts and announces nothing more
    expect(announced()).toHaveLength(2);
    const second = await request('erasure', [{ affected: 1 }]);
    await finishIt(second);
    expect(JSON.parse(announced().at(-1)!.Detail!)).toMatchObject({ dataset: 'features', taintedSubjects: 2 });
    expect(await deps.store.datasetState('features')).toMatchObject({ subjects: 2 });
  });

  it('taints nothing for requests that are not erasures, or that removed nothing', async () => {
    events.reset();
    events.on(PutEventsCommand).resolves({ FailedEntryCount: 0 });
    await finishIt(await request('restrict', [{ action: 'restrict', affected: 1 }]));
    await finishIt(await request('erasure', [{ affected: 0 }]));
    expect(announced()).toEqual([]);
  });

  it('announces again when the first announcement failed', async () => {
    events.reset();
    events.on(PutEventsCommand).rejectsOnce(Object.assign(new Error('ThrottlingException'), { name: 'ThrottlingException' })).resolves({ FailedEntryCount: 0 });
    const requestId = await request('erasure', [{ affected: 2 }]);
    await expect(finishIt(requestId)).rejects.toThrow();
    expect((await deps.store.mustGet(requestId)).status).toBe('in_progress');
    await finishIt(requestId);
    expect(events.commandCalls(PutEventsCommand)).toHaveLength(2);
    expect((await deps.store.mustGet(requestId)).status).toBe('completed');
  });
});
