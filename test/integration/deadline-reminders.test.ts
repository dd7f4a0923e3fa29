import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RequestRecord } from '#core/request';
import { handlerEnvironment } from '../fixtures/lambda.ts';
import { createRequestsTable, dynamoDb, dynamoUnavailable, type DynamoEndpoint } from '../fixtures/servers.ts';

/**
 * Deadline reminders on DynamoDB Local: each open request is announced once at half its time,
 * once at four fifths and once when overdue, read through the sparse Open index; a sweep that
 * comes late sends only the latest; final requests are never announced; an extension starts over.
 */
const unavailable = dynamoUnavailable();
if (unavailable) console.warn(`skipping the deadline reminder test: ${unavailable}`);

describe.skipIf(unavailable)('Function: remindOfDeadlines', () => {
  let server: DynamoEndpoint;
  let store: import('#functions/commons/request-store').RequestStore;
  let remind: typeof import('#functions/check-deadlines/handler').remindOfDeadlines;
  const day = 86_400_000;
  const t0 = Date.parse('2026-11-01T00:00:00.000Z');

  beforeAll(async () => {
    server = await dynamoDb();
    handlerEnvironment({ AWS_ENDPOINT_URL_DYNAMODB: server.endpoint, EVENT_BUS_NAME: 'lethe' });
    await createRequestsTable(server.client);
    store = new (await import('#functions/commons/request-store')).RequestStore('requests');
    ({ remindOfDeadlines: remind } = await import('#functions/check-deadlines/handler'));
  });
  afterAll(async () => {
    await server.stop();
  });

  const create = async (dueInDays: number, status: 'in_progress' | 'completed' = 'in_progress') => {
    const record: RequestRecord = {
      requestId: randomUUID(),
      type: 'erasure',
      regulation: 'ccpa',
      status: 'received',
      receivedAt: new Date(t0).toISOString(),
      dueAt: new Date(t0 + dueInDays * day).toISOString(),
      pseudonyms: [{ type: 'email', pseudonym: 'p'.repeat(64) }],
      keyVersion: 'v1',
      bodyHash: 'x',
      sealedIdentities: 'x',
      wrappedDataKey: 'x',
    };
    await store.create(record);
    await store.transition(record.requestId, 'in_progress');
    if (status === 'completed') await store.transition(record.requestId, 'completed', { completedAt: new Date(t0).toISOString() });
    return record.requestId;
  };
  const sweep = async (atDay: number) => {
    const sent: { detailType: string; requestId: string; reminder: string }[] = [];
    const published: string[] = [];
    await remind(store, (detailType, detail) => {
      sent.push({ detailType, requestId: detail.requestId, reminder: detail.reminder });
      published.push(JSON.stringify(detail));
      return Promise.resolve();
    }, new Date(t0 + atDay * day));
    expect(published.join('')).not.toContain('p'.repeat(64)); // never who
    return sent;
  };

  it('announces half time, four fifths and the deadline once each, the latest only when late, never a final request', async () => {
    const a = await create(10);
    const b = await create(10);
    await create(10, 'completed');
    expect(await sweep(4)).toEqual([]);
    // Same deadline: the index gives them in either order.
    const halfTime = (await sweep(5)).sort((x, y) => x.requestId.localeCompare(y.requestId));
    expect(halfTime).toEqual([a, b].sort().map((requestId) => ({ detailType: 'Privacy Request Deadline Approaching', requestId, reminder: 'half_time' })));
    expect(await sweep(6)).toEqual([]);
    await store.transition(b, 'completed', { completedAt: new Date(t0 + 6 * day).toISOString() });
    expect(await sweep(8)).toEqual([{ detailType: 'Privacy Request Deadline Approaching', requestId: a, reminder: 'four_fifths' }]);
    expect(await sweep(10.5)).toEqual([{ detailType: 'Privacy Request Overdue', requestId: a, reminder: 'due' }]);
    expect(await sweep(30)).toEqual([]);

    const late = await create(10);
    expect(await sweep(31)).toEqual([{ detailType: 'Privacy Request Overdue', requestId: late, reminder: 'due' }]);
  });

  it('starts the reminders over when the deadline is extended', async () => {
    const id = await create(20);
    expect((await sweep(10)).filter((s) => s.requestId === id)).toEqual([{ detailType: 'Privacy Request Deadline Approaching', requestId: id, reminder: 'half_time' }]);
    const request = (await store.get(id))!;
    expect(await store.extendDeadline(id, { from: request.dueAt, to: new Date(t0 + 60 * day).toISOString(), at: new Date(t0 + 11 * day).toISOString(), reason: 'complex' })).toBe(true);
    expect((await sweep(12)).filter((s) => s.requestId === id)).toEqual([]);
    expect((await sweep(30)).filter((s) => s.requestId === id)).toEqual([{ detailType: 'Privacy Request Deadline Approaching', requestId: id, reminder: 'half_time' }]);
  });
});
