import { DescribeTableCommand } from '@aws-sdk/client-dynamodb';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { startFauxqs } from 'fauxqs';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDataMap } from '#infra/data-map';
import { SAMPLE_USERS_TABLE, seedTargets } from '#local/sample-data';
import { credentials, dynamoDb, dynamoUnavailable, type DynamoEndpoint } from '../fixtures/servers.ts';

/**
 * Local mode seeds its sample's own resources and nothing else: a user's data map whose tables
 * are called `users` (keyed `id`, or `userId` as the sample's is) and whose bucket holds exports
 * starts, with those created empty, while the sample's table gets Ada and Grace.
 */
const unavailable = dynamoUnavailable();
if (unavailable) console.warn(`skipping the sample data test: ${unavailable}`);

describe.skipIf(unavailable)('Local mode: sample data only in the sample', () => {
  let server: DynamoEndpoint;
  let fauxqs: Awaited<ReturnType<typeof startFauxqs>>;
  let s3: S3Client;
  beforeAll(async () => {
    server = await dynamoDb();
    fauxqs = await startFauxqs({ port: 0, logger: false });
    s3 = new S3Client({ endpoint: `http://127.0.0.1:${String(fauxqs.port)}`, region: 'us-east-1', credentials, forcePathStyle: true });
  });
  afterAll(async () => {
    await fauxqs.stop();
    await server.stop();
  });

  const config = (yaml: string) => {
    const path = join(mkdtempSync(join(tmpdir(), 'lethe-sample-')), 'lethe.config.yaml');
    writeFileSync(path, yaml);
    return loadDataMap(path);
  };
  const items = async (table: string) => (await DynamoDBDocumentClient.from(server.client).send(new ScanCommand({ TableName: table }))).Items ?? [];

  it("writes no one into a user's own tables and buckets, whatever their names and keys, and seeds the sample's table", async () => {
    const dataMap = config(`version: 1
identities: [email, user_id]
systems:
  people:
    connector: dynamodb
    identities: [user_id]
    settings: { tables: [{ table: users, partitionKey: id, lookups: [{ identity: user_id, attribute: id }] }] }
  accounts:
    connector: dynamodb
    identities: [user_id]
    settings: { tables: [{ table: accounts, partitionKey: userId, lookups: [{ identity: user_id, attribute: userId }] }] }
  files:
    connector: s3
    identities: [user_id]
    settings: { bucket: my-exports, objects: [{ prefix: 'exports/{user_id}/' }] }
  sample:
    connector: dynamodb
    identities: [user_id]
    settings: { tables: [{ table: ${SAMPLE_USERS_TABLE}, partitionKey: userId, lookups: [{ identity: user_id, attribute: userId }] }] }
`);
    await seedTargets({ dynamo: server.client, s3 }, dataMap, { urls: {}, stop: () => Promise.resolve() });

    expect((await server.client.send(new DescribeTableCommand({ TableName: 'users' }))).Table?.KeySchema).toEqual([{ AttributeName: 'id', KeyType: 'HASH' }]);
    expect(await items('users')).toEqual([]);
    expect(await items('accounts')).toEqual([]);
    expect((await s3.send(new ListObjectsV2Command({ Bucket: 'my-exports' }))).Contents ?? []).toEqual([]);
    expect((await items(SAMPLE_USERS_TABLE)).map((i) => String(i['userId'])).sort()).toEqual(['u-ada', 'u-grace']);
  });
});
