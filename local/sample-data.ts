import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { CreateBucketCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { BatchWriteCommand, DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { SessionQueue } from './pglite-queue.ts';
import { parquetWriteBuffer } from 'hyparquet-writer';
import type { DataMap } from '#core/config';
import { dynamoDbSettingsSchema } from '#connectors/dynamodb/settings';
import { lakeSettingsSchema } from '#connectors/lake/settings';
import { s3SettingsSchema } from '#connectors/s3/settings';
import { connectionSource } from '#connectors/secrets';
import { createTable } from './dynamodb-local.ts';

/** The people local mode's sample systems start with. */
export const SAMPLE_USERS = [
  { userId: 'u-ada', email: 'ada@example.com', name: 'Ada Lovelace', phone: '+442079460958', plan: 'pro' },
  { userId: 'u-grace', email: 'grace@example.com', name: 'Grace Hopper', phone: '+12025550173', plan: 'free' },
];

export interface LocalDatabases {
  /** Connection variable name → URL of a PGlite server local mode started for it. */
  readonly urls: Record<string, string>;
  stop(): Promise<void>;
}

/**
 * A PGlite server (PostgreSQL wire protocol on 127.0.0.1) for every `postgres` system whose
 * connection variable is not set; systems whose variable is set use that server. PGlite is one
 * session: its connections take turns, a batch or a transaction at a time (SessionQueue).
 */
export async function startLocalDatabases(dataMap: DataMap): Promise<LocalDatabases> {
  const urls: Record<string, string> = {};
  const servers: { server: PGLiteSocketServer; db: PGlite }[] = [];
  for (const system of dataMap.systems.filter((s) => s.connector === 'postgres')) {
    const source = connectionSource(system.settings);
    if (!source || !('env' in source) || process.env[source.env] || urls[source.env]) continue;
    const db = await PGlite.create();
    const server = new PGLiteSocketServer({ db, port: 0, host: '127.0.0.1', maxConnections: 16 });
    // Its own queue interleaves connections' batches and can stop for good (see SessionQueue).
    Object.assign(server, { queryQueue: new SessionQueue(db) });
    await server.start();
    servers.push({ server, db });
    urls[source.env] = `postgres://postgres@${server.getServerConn()}/postgres`;
  }
  return {
    urls,
    stop: async () => {
      for (const { server, db } of servers) {
        await server.stop();
        await db.close();
      }
    },
  };
}

/** The sample's DynamoDB table: the only table local mode writes people into. */
export const SAMPLE_USERS_TABLE = 'lethe-sample-users';

/**
 * Stand up the targets the data map names: DynamoDB tables (with the indexes its lookups use) and
 * S3 buckets. Seed the sample's own resources, and only those, so a newcomer has someone to
 * forget: the `lethe-sample-users` table (keyed `userId`), the `lethe-sample-exports` and
 * `lethe-sample-lake` buckets, and `app-db` when it is the database local mode runs for
 * LETHE_SAMPLE_POSTGRES_URL. A table or bucket of a user's own data map is created empty whatever
 * its name, and nothing is written into it.
 */
export async function seedTargets(
  clients: { dynamo: DynamoDBClient; s3: S3Client },
  dataMap: DataMap,
  local: LocalDatabases,
): Promise<void> {
  const tables = dataMap.systems
    .filter((system) => system.connector === 'dynamodb')
    .flatMap((system) => dynamoDbSettingsSchema.parse(system.settings).tables);
  for (const s of tables) {
    const indexed = s.lookups.filter((l) => l.index);
    const attributes = new Set([s.partitionKey, ...(s.sortKey ? [s.sortKey] : []), ...indexed.map((l) => l.attribute)]);
    await createTable(clients.dynamo, {
      TableName: s.table,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [...attributes].map((name) => ({ AttributeName: name, AttributeType: 'S' })),
      KeySchema: [
        { AttributeName: s.partitionKey, KeyType: 'HASH' },
        ...(s.sortKey ? [{ AttributeName: s.sortKey, KeyType: 'RANGE' as const }] : []),
      ],
      ...(indexed.length
        ? {
            GlobalSecondaryIndexes: indexed.map((l) => ({
              IndexName: l.index!,
              KeySchema: [{ AttributeName: l.attribute, KeyType: 'HASH' as const }],
              Projection: { ProjectionType: 'KEYS_ONLY' as const },
            })),
          }
        : {}),
    });
  }
  if (tables.some((t) => t.table === SAMPLE_USERS_TABLE && t.partitionKey === 'userId' && !t.sortKey)) {
    await DynamoDBDocumentClient.from(clients.dynamo).send(
      new BatchWriteCommand({ RequestItems: { [SAMPLE_USERS_TABLE]: SAMPLE_USERS.map((Item) => ({ PutRequest: { Item } })) } }),
    );
  }

  for (const system of dataMap.systems.filter((s) => s.connector === 's3')) {
    const { bucket } = s3SettingsSchema.parse(system.settings);
    await clients.s3.send(new CreateBucketCommand({ Bucket: bucket }));
    if (bucket === 'lethe-sample-exports') {
      for (const { userId } of SAMPLE_USERS) {
        for (const month of ['2026-10', '2026-11']) {
          await clients.s3.send(new PutObjectCommand({ Bucket: bucket, Key: `exports/${userId}/${month}.csv`, Body: 'order,total\n' }));
        }
      }
    }
  }

  const buckets = new Set(dataMap.systems.filter((s) => s.connector === 'lake').flatMap((s) => lakeSettingsSchema.parse(s.settings).tables.map((t) => t.bucket)));
  for (const bucket of buckets) {
    await clients.s3.send(new CreateBucketCommand({ Bucket: bucket }));
    if (bucket === 'lethe-sample-lake') {
      for (const [month, day] of [['2026-10', 1_790_812_800_000], ['2026-11', 1_793_491_200_000]] as const) {
        await clients.s3.send(new PutObjectCommand({ Bucket: bucket, Key: `events/month=${month}/part-0.parquet`, Body: sampleEvents(day), ContentType: 'application/vnd.apache.parquet' }));
      }
    }
  }

  const appDb = dataMap.systems.find((s) => s.name === 'app-db' && s.connector === 'postgres');
  const source = appDb ? connectionSource(appDb.settings) : undefined;
  const url = source && 'env' in source && source.env === 'LETHE_SAMPLE_POSTGRES_URL' ? local.urls[source.env] : undefined;
  if (url) {
    const pg = (await import('pg')).default;
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query(`
        CREATE TABLE accounts (id TEXT PRIMARY KEY, user_id TEXT, email TEXT, name TEXT, processing_restricted BOOLEAN DEFAULT FALSE);
        CREATE TABLE orders (id TEXT PRIMARY KEY, account_id TEXT REFERENCES accounts(id), total NUMERIC);
        CREATE INDEX accounts_lower_email ON accounts (lower(email));
        INSERT INTO accounts (id, user_id, email, name) VALUES
          ('a-1', 'u-ada', 'ada@example.com', 'Ada Lovelace'), ('a-2', 'u-grace', 'grace@example.com', 'Grace Hopper');
        INSERT INTO orders (id, account_id, total) VALUES ('o-1', 'a-1', 42), ('o-2', 'a-1', 7), ('o-3', 'a-2', 19);
      `);
    } finally {
      await client.end();
    }
  }
}

/** A month of product events as a data lake keeps them: Ada's three and Grace's two, Parquet, snappy. */
function sampleEvents(at: number): Uint8Array {
  const users = ['u-ada', 'u-grace', 'u-ada', 'u-grace', 'u-ada'];
  return new Uint8Array(
    parquetWriteBuffer({
      columnData: [
        { name: 'user_id', data: users },
        { name: 'event', data: ['login', 'login', 'checkout', 'view', 'logout'] },
        { name: 'at', data: users.map((_, i) => new Date(at + i * 60_000)) },
        { name: 'amount', data: [null, null, 42.5, null, null] },
      ],
      schema: [
        { name: 'root', num_children: 4 },
        { name: 'user_id', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'REQUIRED' },
        { name: 'event', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'REQUIRED' },
        { name: 'at', type: 'INT64', converted_type: 'TIMESTAMP_MILLIS', repetition_type: 'REQUIRED' },
        { name: 'amount', type: 'INT64', converted_type: 'DECIMAL', scale: 2, precision: 12, repetition_type: 'OPTIONAL' },
      ],
      kvMetadata: [{ key: 'writer', value: 'lethe sample' }],
    }),
  );
}
