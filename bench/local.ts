/**
 * What the local-mode benchmarks share: local mode in this process on bench/three-systems.yaml,
 * its three systems seeded with subjects, signed submission, and waiting for requests to be final.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { GetQueueAttributesCommand, ListQueuesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { BatchGetCommand, BatchWriteCommand, DynamoDBDocumentClient, type BatchGetCommandOutput } from '@aws-sdk/lib-dynamodb';
import { mkdtempSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { isFinalRequestStatus, requestIdFor, type RequestStatus } from '#core/request';
import { percentile as nearestRank } from '#core/report';
import { startLocal, type LocalLethe, type LocalOptions } from '#local/runtime';
import { LetheApi } from '../cli/api.ts';

export const CONFIG = fileURLToPath(new URL('./three-systems.yaml', import.meta.url));
export const subject = (i: number) => `bench-${String(i)}@example.com`;

export interface Bench {
  readonly local: LocalLethe;
  readonly stateDir: string;
  readonly dynamo: DynamoDBDocumentClient;
  readonly s3: S3Client;
  readonly sqs: SQSClient;
  readonly db: pg.Client;
  readonly submitter: LetheApi;
  /** Lines the handlers logged that match, counted as they pass. */
  count(pattern: RegExp): number;
  /** Bytes the handlers logged so far. */
  logBytes(): number;
  stop(): Promise<void>;
}

export async function startBench(options: Partial<LocalOptions> = {}): Promise<Bench> {
  const stateDir = mkdtempSync(join(tmpdir(), 'lethe-bench-'));
  const postgresUrl = process.env['LETHE_BENCH_POSTGRES_URL'] ?? process.env['LETHE_TEST_POSTGRES_URL'];
  if (postgresUrl) process.env['LETHE_BENCH_POSTGRES_URL'] = postgresUrl;
  const log = new PassThrough();
  const counters = new Map<RegExp, number>();
  let tail = '';
  log.on('data', (chunk: Buffer) => {
    const text = tail + chunk.toString();
    const lines = text.split('\n');
    tail = lines.pop() ?? '';
    for (const line of lines) for (const [re, n] of counters) if (re.test(line)) counters.set(re, n + 1);
  });
  const local = await startLocal({ port: 0, dynamoDbPort: 0, stateDir, configPath: CONFIG, log, ...options });
  let logBytes = 0;
  log.on('data', (chunk: Buffer) => (logBytes += chunk.length));
  const { state } = local;
  const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
  const db = new pg.Client({ connectionString: postgresUrl ?? state.databases['LETHE_BENCH_POSTGRES_URL'] ?? 'postgres://127.0.0.1:1/none' });
  const usesPostgres = local.dataMap.systems.some((s) => s.name === 'accounts');
  if (usesPostgres) await db.connect();
  if (usesPostgres) await db.query(`DROP TABLE IF EXISTS bench_orders; DROP TABLE IF EXISTS bench_accounts;
    CREATE TABLE bench_accounts (id SERIAL PRIMARY KEY, email TEXT NOT NULL);
    CREATE INDEX ON bench_accounts (email);
    CREATE TABLE bench_orders (id SERIAL PRIMARY KEY, account_id INT NOT NULL REFERENCES bench_accounts(id));
    CREATE INDEX ON bench_orders (account_id);`);
  return {
    local,
    stateDir,
    dynamo: DynamoDBDocumentClient.from(new DynamoDBClient({ endpoint: state.dynamoDbEndpoint, region: state.region, credentials })),
    s3: new S3Client({ endpoint: state.s3Endpoint, region: state.region, credentials, forcePathStyle: true }),
    sqs: new SQSClient({ endpoint: state.sqsEndpoint, region: state.region, credentials, useQueueUrlAsEndpoint: false }),
    db,
    submitter: LetheApi.connect({ stateDir, role: 'SubmitterRole', apiUrl: undefined }),
    logBytes: () => logBytes,
    count: (pattern) => {
      if (!counters.has(pattern)) counters.set(pattern, 0);
      return counters.get(pattern)!;
    },
    stop: async () => {
      if (usesPostgres) await db.end();
      await local.stop();
    },
  };
}

/** One account with two orders, one profile and two files for each subject from `from` to `to`, in the systems the data map has. */
export async function seed(bench: Bench, from: number, to: number): Promise<void> {
  const emails = Array.from({ length: to - from }, (_, i) => subject(from + i));
  const has = new Set(bench.local.dataMap.systems.map((s) => s.name));
  if (has.has('accounts')) await bench.db.query(
    `WITH a AS (INSERT INTO bench_accounts (email) SELECT unnest($1::text[]) RETURNING id)
     INSERT INTO bench_orders (account_id) SELECT id FROM a, generate_series(1, 2)`,
    [emails],
  );
  for (let i = 0; has.has('profiles') && i < emails.length; i += 25) {
    const items = emails.slice(i, i + 25).map((email) => ({ PutRequest: { Item: { id: email, email } } }));
    await bench.dynamo.send(new BatchWriteCommand({ RequestItems: { bench_profiles: items } }));
  }
  if (has.has('files')) await inParallel(emails.flatMap((email) => ['a', 'b'].map((n) => `files/${email}/${n}.json`)), 32, (Key) =>
    bench.s3.send(new PutObjectCommand({ Bucket: 'lethe-bench-files', Key, Body: '{}' })),
  );
}

/** The id local mode gives subject `i`'s erasure, and its submission. */
export function erasure(i: number, run: string): { requestId: string; body: string } {
  const sourceEventId = `${run}-${String(i)}`;
  return {
    requestId: requestIdFor({ source: 'bench', sourceEventId }),
    body: JSON.stringify({ type: 'erasure', regulation: 'gdpr', source: 'bench', sourceEventId, identities: [{ type: 'email', value: subject(i) }] }),
  };
}

/** Requests' statuses and times, read from the table 100 at a time. */
export async function records(bench: Bench, ids: readonly string[]): Promise<Map<string, { status: string; receivedAt: string; completedAt?: string }>> {
  const out = new Map<string, { status: string; receivedAt: string; completedAt?: string }>();
  const table = bench.local.state.requestsTable;
  for (let i = 0; i < ids.length; i += 100) {
    const keys = ids.slice(i, i + 100).map((id) => ({ pk: `REQ#${id}`, sk: 'META' }));
    let pending: Record<string, unknown>[] | undefined = keys;
    while (pending && pending.length > 0) {
      const got: BatchGetCommandOutput = await bench.dynamo.send(
        new BatchGetCommand({ RequestItems: { [table]: { Keys: pending, ProjectionExpression: 'requestId, #s, receivedAt, completedAt', ExpressionAttributeNames: { '#s': 'status' } } } }),
      );
      for (const item of got.Responses?.[table] ?? []) out.set(item['requestId'] as string, item as { status: string; receivedAt: string; completedAt?: string });
      pending = got.UnprocessedKeys?.[table]?.Keys;
    }
  }
  return out;
}

/** Wait until every request is final (or `timeoutMs` passes); how many are. */
export async function waitFinal(bench: Bench, ids: readonly string[], timeoutMs: number, progress?: (final: number) => void): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let open = [...ids];
  while (open.length > 0 && Date.now() < deadline) {
    const seen = await records(bench, open);
    open = open.filter((id) => !isFinalRequestStatus((seen.get(id)?.status ?? 'received') as RequestStatus));
    progress?.(ids.length - open.length);
    if (open.length > 0) await sleep(1000);
  }
  return ids.length - open.length;
}

/** Messages in the stack's queue whose logical id starts with `prefix` (dead-letter queues aside). */
export async function depth(bench: Bench, prefix: string): Promise<number> {
  const { QueueUrls = [] } = await bench.sqs.send(new ListQueuesCommand({ QueueNamePrefix: prefix }));
  const url = QueueUrls.find((u) => !/dlq|deadletter/i.test(u));
  if (!url) throw new Error(`no queue ${prefix}`);
  const out = await bench.sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }));
  return Number(out.Attributes?.['ApproximateNumberOfMessages'] ?? 0) + Number(out.Attributes?.['ApproximateNumberOfMessagesNotVisible'] ?? 0);
}

export async function inParallel<T>(items: readonly T[], width: number, work: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

/** p-th percentile, nearest rank (core's, on a sorted copy); NaN for none. */
export const percentile = (values: readonly number[], p: number): number => nearestRank([...values].sort((a, b) => a - b), p) ?? NaN;

export const machine = () => `${String(cpus().length)} × ${cpus()[0]?.model.trim() ?? 'CPU'}, ${String(Math.round(totalmem() / 2 ** 30))} GiB, Node ${process.versions.node}`;
