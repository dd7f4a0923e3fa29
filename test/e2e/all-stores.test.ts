import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { Redis } from 'ioredis';
import mysql from 'mysql2/promise';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalState } from '#local/runtime';
import { startLocalMode, type RunningLocalMode } from '../fixtures/local-mode.ts';
import { credentials, dynamoUnavailable } from '../fixtures/servers.ts';

/**
 * One erasure across PostgreSQL (PGlite), MySQL/MariaDB, DynamoDB, S3 and Redis in local mode,
 * with test/fixtures/all-stores.yaml. Needs LETHE_TEST_MYSQL_URL and LETHE_TEST_REDIS_URL (and
 * Java); without them, skipped with the reason, except under CI=true, where it fails instead.
 */
const mysqlUrl = process.env['LETHE_TEST_MYSQL_URL'];
const redisUrl = process.env['LETHE_TEST_REDIS_URL'];
const missing = dynamoUnavailable() ?? (!mysqlUrl || !redisUrl ? 'no LETHE_TEST_MYSQL_URL or LETHE_TEST_REDIS_URL' : undefined);
if (missing && process.env['CI'] === 'true') throw new Error(`CI=true: ${missing}`);
if (missing) console.warn(`skipping the all-stores end-to-end test: ${missing}`);

describe.skipIf(missing)('Local mode, one erasure across five stores', () => {
  let local: RunningLocalMode;
  let child: ChildProcess;
  let stateDir: string;
  let state: LocalState;
  let api: string;
  let shop: mysql.Connection;
  let redis: Redis;

  beforeAll(async () => {
    shop = await mysql.createConnection(mysqlUrl!);
    await shop.query('DROP TABLE IF EXISTS e2e_carts');
    await shop.query('DROP TABLE IF EXISTS e2e_customers');
    await shop.query('CREATE TABLE e2e_customers (id VARCHAR(64) PRIMARY KEY, user_id VARCHAR(64))');
    await shop.query('CREATE TABLE e2e_carts (id VARCHAR(64) PRIMARY KEY, customer_id VARCHAR(64), FOREIGN KEY (customer_id) REFERENCES e2e_customers(id))');
    await shop.query("INSERT INTO e2e_customers VALUES ('c-1', 'u-ada'), ('c-2', 'u-grace')");
    await shop.query("INSERT INTO e2e_carts VALUES ('k-1', 'c-1'), ('k-2', 'c-1'), ('k-3', 'c-2')");
    redis = new Redis(redisUrl!);
    await redis.mset('e2e:session:u-ada', 'x', 'e2e:session:u-grace', 'x', 'e2e:cart:u-ada:1', 'x', 'e2e:cart:u-ada:2', 'x', 'e2e:cart:u-grace:1', 'x');

    local = await startLocalMode({
      LETHE_CONFIG: 'test/fixtures/all-stores.yaml',
      LETHE_E2E_MYSQL_URL: mysqlUrl,
      LETHE_E2E_REDIS_URL: redisUrl,
      LETHE_SAMPLE_POSTGRES_URL: '',
    });
    ({ child, stateDir, state, api } = local);
  });

  afterAll(async () => {
    child.kill('SIGINT');
    await Promise.race([new Promise((ok) => child.once('exit', ok)), sleep(20_000)]);
    if (child.exitCode === null) child.kill('SIGKILL');
    await shop.end();
    redis.disconnect();
  });

  const sql = (query: string) => local.sql(query);
  const user = async (userId: string) =>
    (
      await DynamoDBDocumentClient.from(new DynamoDBClient({ endpoint: state.dynamoDbEndpoint, region: state.region, credentials })).send(
        new GetCommand({ TableName: 'lethe-sample-users', Key: { userId }, ConsistentRead: true }),
      )
    ).Item;
  const exportsOf = async (userId: string) =>
    (
      (await new S3Client({ endpoint: state.s3Endpoint, region: state.region, credentials, forcePathStyle: true }).send(
        new ListObjectsV2Command({ Bucket: 'lethe-sample-exports', Prefix: `exports/${userId}/` }),
      )).Contents ?? []
    ).length;
  const shopRows = async (table: string) => ((await shop.query(`SELECT id FROM ${table} ORDER BY id`))[0] as { id: string }[]).map((r) => r.id);

  it('erases the subject everywhere, after resolving the link in PostgreSQL, and keeps everyone else', async () => {
    const response = await local.as('SubmitterRole')(`${api}/v1/requests`, {
      method: 'POST',
      body: JSON.stringify({ type: 'erasure', regulation: 'gdpr', identities: [{ type: 'email', value: 'ada@example.com' }] }),
    });
    const { requestId } = (await response.json()) as { requestId: string };
    let status: { status: string; systems: { system: string; action: string; status: string; affected: number }[] } | undefined;
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      status = (await (await local.as('ComplianceRole')(`${api}/v1/requests/${requestId}`)).json()) as typeof status;
      if (status && status.status !== 'received' && status.status !== 'in_progress') break;
      await sleep(250);
    }

    expect(status?.status).toBe('completed');
    expect(status?.systems.map((s) => `${s.system} ${s.action} ${s.status} ${String(s.affected)}`)).toEqual([
      'app-db delete succeeded 3',
      'app-db resolve succeeded 1',
      'exports delete succeeded 2',
      'sessions delete succeeded 3',
      'shop-db delete succeeded 3',
      'users delete succeeded 1',
    ]);
    expect(await sql('SELECT id FROM accounts ORDER BY id')).toEqual([{ id: 'a-2' }]);
    expect(await user('u-ada')).toBeUndefined();
    expect(await user('u-grace')).toBeDefined();
    expect([await exportsOf('u-ada'), await exportsOf('u-grace')]).toEqual([0, 2]);
    expect([await shopRows('e2e_customers'), await shopRows('e2e_carts')]).toEqual([['c-2'], ['k-3']]);
    expect((await redis.keys('e2e:*')).sort()).toEqual(['e2e:cart:u-grace:1', 'e2e:session:u-grace']);

    const plan = spawnSync(
      process.execPath,
      ['cli/lethe.ts', 'plan', '--type', 'erasure', '--email', 'ada@example.com', '--user-id', 'u-ada', '--state-dir', stateDir, '--config', 'test/fixtures/all-stores.yaml', '--json'],
      { encoding: 'utf8', env: { ...process.env, LETHE_E2E_MYSQL_URL: mysqlUrl, LETHE_E2E_REDIS_URL: redisUrl } },
    );
    expect(plan.stderr).toBe('');
    const stages = (JSON.parse(plan.stdout) as { stages: { system: string; action: string; records: number }[] }).stages;
    expect(stages.filter((s) => s.action === 'delete').map((s) => `${s.system} ${String(s.records)}`).sort()).toEqual([
      'app-db 0',
      'exports 0',
      'sessions 0',
      'shop-db 0',
      'users 0',
    ]);
  });
});
