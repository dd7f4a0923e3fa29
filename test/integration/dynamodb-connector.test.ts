import { CreateTableCommand, DeleteTableCommand } from '@aws-sdk/client-dynamodb';
import { BatchWriteCommand, DynamoDBDocumentClient, GetCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { HOSTILE_RUNS, hostileIdentifier, NEIGHBOUR_EMAILS, SUBJECT_EMAIL, SUBJECT_EMAIL_STORED, SUBMITTED_EMAIL } from '../fixtures/hostile.ts';
import { DynamoDbConnector } from '#connectors/dynamodb/connector';
import { dynamoDbSettingsSchema } from '#connectors/dynamodb/settings';
import { ConnectorPermanentError, ConnectorRetryableError } from '#core/errors';
import { credentials, dynamoDb, dynamoUnavailable, type DynamoEndpoint } from '../fixtures/servers.ts';

const unavailable = dynamoUnavailable();
if (unavailable) console.warn(`skipping DynamoDB connector integration tests: ${unavailable}`);

describe.skipIf(unavailable)('Class: DynamoDbConnector (DynamoDB Local)', () => {
  let server: DynamoEndpoint;
  let doc: DynamoDBDocumentClient;
  let table: string;

  const tableSettings = (name: string) => ({
    table: name,
    partitionKey: 'userId',
    sortKey: 'recordId',
    lookups: [
      { identity: 'user_id', attribute: 'userId' },
      { identity: 'email', attribute: 'email', index: 'byEmail' },
    ],
    anonymize: ['email', 'name'],
  });
  const settings = (...names: string[]) => dynamoDbSettingsSchema.parse({ tables: (names.length ? names : [table]).map(tableSettings) });
  const ada = [
    { type: 'email', value: 'ada@example.com' },
    { type: 'user_id', value: 'u-ada' },
  ];
  const command = (action: 'delete' | 'anonymize', identities: { type: string; value: string; forms?: string[] }[] = ada) => ({ requestId: 'r1', action, identities, keyedHash: (v: string) => `h(${v})` });

  beforeAll(async () => {
    server = await dynamoDb();
    doc = DynamoDBDocumentClient.from(server.client);
  });
  afterAll(async () => server.stop());

  const createTable = (name: string) =>
    server.client.send(
      new CreateTableCommand({
        TableName: name,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [
          { AttributeName: 'userId', AttributeType: 'S' },
          { AttributeName: 'recordId', AttributeType: 'S' },
          { AttributeName: 'email', AttributeType: 'S' },
        ],
        KeySchema: [
          { AttributeName: 'userId', KeyType: 'HASH' },
          { AttributeName: 'recordId', KeyType: 'RANGE' },
        ],
        GlobalSecondaryIndexes: [
          { IndexName: 'byEmail', KeySchema: [{ AttributeName: 'email', KeyType: 'HASH' }], Projection: { ProjectionType: 'KEYS_ONLY' } },
        ],
      }),
    );

  beforeEach(async () => {
    table = `people-${randomUUID()}`;
    await createTable(table);
    await doc.send(
      new BatchWriteCommand({
        RequestItems: {
          [table]: [
            { userId: 'u-ada', recordId: 'profile', email: 'ada@example.com', name: 'Ada', plan: 'pro' },
            { userId: 'u-ada', recordId: 'address', city: 'London' },
            { userId: 'u-ada2', recordId: 'profile', email: 'ada@example.com', name: 'Ada again' },
            { userId: 'u-grace', recordId: 'profile', email: 'grace@example.com', name: 'Grace', plan: 'free' },
          ].map((Item) => ({ PutRequest: { Item } })),
        },
      }),
    );
  });

  const remaining = async () => ((await doc.send(new ScanCommand({ TableName: table }))).Items ?? []).map((i) => `${String(i['userId'])}/${String(i['recordId'])}`).sort();

  it('deletes every item found by partition key or through the index, and nothing else', async () => {
    const connector = new DynamoDbConnector(doc, settings());

    expect(await connector.run(command('delete'))).toEqual({ affected: 3 });

    expect(await remaining()).toEqual(['u-grace/profile']);
    expect(await connector.verify(command('delete'))).toEqual({ remaining: 0 });
  });

  it('takes the address as submitted beside its normal form, reports the subject stored in other forms as near-misses, and touches no neighbour', async () => {
    const stored = [
      { userId: 'h-normal', recordId: 'profile', email: SUBJECT_EMAIL_STORED.normal },
      { userId: 'h-typed', recordId: 'profile', email: SUBMITTED_EMAIL },
      { userId: 'h-nfd', recordId: 'profile', email: SUBJECT_EMAIL_STORED.nfd },
      { userId: 'h-upper', recordId: 'profile', email: SUBJECT_EMAIL.toUpperCase() },
      ...NEIGHBOUR_EMAILS.map((email, i) => ({ userId: `n-${String(i)}`, recordId: 'profile', email })),
      { userId: 'U-1234x', recordId: 'profile' },
    ];
    await doc.send(new BatchWriteCommand({ RequestItems: { [table]: stored.map((Item) => ({ PutRequest: { Item } })) } }));
    const neighbours = async () => JSON.stringify(((await doc.send(new ScanCommand({ TableName: table }))).Items ?? []).filter((i) => String(i['userId']).startsWith('n-') || i['userId'] === 'U-1234x').sort((a, b) => String(a['userId']).localeCompare(String(b['userId']))));
    const before = await neighbours();
    const connector = new DynamoDbConnector(doc, settings());
    const subject = [{ type: 'email', value: SUBJECT_EMAIL, forms: [SUBMITTED_EMAIL] }];

    expect(await connector.run(command('delete', subject))).toEqual({ affected: 2 }); // the normal and the typed form
    expect(await connector.verify(command('delete', subject))).toEqual({ remaining: 0, nearMisses: { case: 1, unicode: 1 } });
    expect(await neighbours()).toBe(before);
  });

  it('deletes many items in batches of 25, across every table of the system', async () => {
    const second = `events-${randomUUID()}`;
    await createTable(second);
    for (let i = 0; i < 60; i += 20) {
      await doc.send(
        new BatchWriteCommand({
          RequestItems: {
            [second]: Array.from({ length: 20 }, (_, k) => ({ PutRequest: { Item: { userId: 'u-ada', recordId: `event-${String(i + k)}` } } })),
          },
        }),
      );
    }
    const connector = new DynamoDbConnector(doc, settings(table, second));

    expect(await connector.run(command('delete'))).toEqual({ affected: 63 });

    expect(await remaining()).toEqual(['u-grace/profile']);
    expect((await doc.send(new ScanCommand({ TableName: second }))).Count).toBe(0);
    expect(await connector.verify(command('delete'))).toEqual({ remaining: 0 });
  });

  it('deletes nothing for hostile identities', async () => {
    const connector = new DynamoDbConnector(doc, settings());
    const before = await remaining();

    for (const value of ["' OR '1'='1", '*', '%', 'u-', 'U-ADA', 'аda@example.com', 'a'.repeat(1000), 'ada@example.com ']) {
      const identities = [{ type: 'email', value }, { type: 'user_id', value }];
      expect(await connector.run({ requestId: 'r', action: 'delete', identities, keyedHash: (v: string) => v })).toEqual({ affected: 0 });
    }

    expect(await remaining()).toEqual(before);
  });

  it(`deletes nothing for ${String(HOSTILE_RUNS)} generated hostile identities (fast-check)`, async () => {
    const connector = new DynamoDbConnector(doc, settings());
    const before = await remaining();
    const own = new Set(['u-ada', 'u-ada2', 'u-grace', 'ada@example.com', 'grace@example.com']);
    await fc.assert(
      fc.asyncProperty(hostileIdentifier, async (value) => {
        fc.pre(!own.has(value));
        expect(await connector.run({ requestId: 'r', action: 'delete', identities: [{ type: 'email', value }, { type: 'user_id', value }], keyedHash: (v: string) => v })).toEqual({ affected: 0 });
      }),
      { numRuns: HOSTILE_RUNS },
    );
    expect(await remaining()).toEqual(before);
  }, 600_000);

  it('succeeds with a count of 0 when the items are already gone', async () => {
    const connector = new DynamoDbConnector(doc, settings());
    await connector.run(command('delete'));

    expect(await connector.run(command('delete'))).toEqual({ affected: 0 });
  });

  it('anonymizes the listed attributes, keeps the rest, and counts only items it changed', async () => {
    const connector = new DynamoDbConnector(doc, settings());
    const byUserId = [{ type: 'user_id', value: 'u-ada' }];
    expect(await connector.verify(command('anonymize', byUserId))).toEqual({ remaining: 1 });

    expect(await connector.run(command('anonymize', byUserId))).toEqual({ affected: 1 });

    const profile = (await doc.send(new GetCommand({ TableName: table, Key: { userId: 'u-ada', recordId: 'profile' } }))).Item;
    expect(profile).toEqual({ userId: 'u-ada', recordId: 'profile', plan: 'pro' });
    expect(await connector.verify(command('anonymize', byUserId))).toEqual({ remaining: 0 });
    expect(await connector.run(command('anonymize', byUserId))).toEqual({ affected: 0 });
    expect(await remaining()).toHaveLength(4);
  });

  it('fails permanently on a table that does not exist', async () => {
    const connector = new DynamoDbConnector(doc, settings('no-such-table'));

    await expect(connector.run(command('delete'))).rejects.toThrow(ConnectorPermanentError);
    await expect(connector.run(command('delete'))).rejects.toThrow(/dynamodb table no-such-table: ResourceNotFoundException/);
  });

  it('fails retryably when DynamoDB cannot be reached', async () => {
    const { DynamoDBClient } = await import('@aws-sdk/client-dynamodb');
    const unreachable = DynamoDBDocumentClient.from(
      new DynamoDBClient({ endpoint: 'http://127.0.0.1:9', region: 'us-east-1', credentials, maxAttempts: 1 }),
    );
    const connector = new DynamoDbConnector(unreachable, settings());

    await expect(connector.run(command('delete'))).rejects.toThrow(ConnectorRetryableError);
  });

  it('never mentions the identity in its errors', async () => {
    const connector = new DynamoDbConnector(doc, settings('no-such-table'));
    const error = await connector.run(command('delete')).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error?.message).toMatch(/no-such-table/);
    expect(error?.message).not.toContain('ada@example.com');
    await server.client.send(new DeleteTableCommand({ TableName: table }));
  });
});
