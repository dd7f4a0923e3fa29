import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { ListQueuesCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { DescribeExecutionCommand, SFNClient } from '@aws-sdk/client-sfn';
import { DynamoDBDocumentClient, GetCommand, QueryCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomUUID, verify, X509Certificate } from 'node:crypto';
import { createServer } from 'node:http';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parquetReadObjects } from 'hyparquet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LetheClient, toRequest } from '@lethe/client';
import { withoutSignature, type LogProblem, type TreeHead } from '#core/log';
import { FINAL_REQUEST_STATUSES, requestIdFor } from '#core/request';
import { canonicalBytes } from '#core/signing';
import { LocalReceiptSigner } from '#functions/commons/receipts';
import type { LocalState } from '#local/runtime';
import { startLocalMode, waitFor, type RunningLocalMode } from '../fixtures/local-mode.ts';
import { credentials, dynamoUnavailable } from '../fixtures/servers.ts';

const unavailable = dynamoUnavailable();
if (unavailable) console.warn(`skipping the local mode end-to-end test: ${unavailable}`);

interface Status {
  requestId: string;
  status: string;
  completedAt: string | null;
  systems: { system: string; action: string; status: string; affected: number | null; jobs?: string }[];
}

describe.skipIf(unavailable)('Local mode, end to end (npm start)', () => {
  let local: RunningLocalMode;
  let child: ChildProcess;
  let stateDir: string;
  let state: LocalState;
  let api: string;
  let db: DynamoDBDocumentClient;

  const post = (body: unknown) =>
    local.as('SubmitterRole')(`${api}/v1/requests`, {
      method: 'POST',
      body: JSON.stringify(body) });
  /** A request's status, its systems without their attempt counts and times (which vary run to run) and the verified remainder (0). */
  const status = async (id: string) => {
    const s = (await (await local.as('ComplianceRole')(`${api}/v1/requests/${id}`)).json()) as Omit<Status, 'systems'> & {
      systems: (Status['systems'][number] & { attempts?: number; updatedAt?: string; remaining?: number })[];
    };
    expect(s.systems.every((t) => typeof t.attempts === 'number' && typeof t.updatedAt === 'string' && (t.remaining ?? 0) === 0)).toBe(true);
    return { ...s, systems: s.systems.map(({ attempts: _a, updatedAt: _u, remaining: _r, ...rest }) => rest) };
  };
  const final = (id: string) =>
    waitFor(`request ${id} to finish`, async () => {
      const s = await status(id);
      return (FINAL_REQUEST_STATUSES as readonly string[]).includes(s.status) ? s : undefined;
    });
  const metaItems = async (id: string) =>
    (await db.send(new QueryCommand({ TableName: state.requestsTable, KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': `REQ#${id}` } })))
      .Items ?? [];
  /** Items of requests (the audit log's sequencer adds its own, `LOG…`, on its schedule). */
  const countItems = async () =>
    (await db.send(new ScanCommand({ TableName: state.requestsTable, Select: 'COUNT', FilterExpression: 'NOT begins_with(pk, :log)', ExpressionAttributeValues: { ':log': 'LOG' } }))).Count;
  const user = async (userId: string) => (await db.send(new GetCommand({ TableName: 'lethe-sample-users', Key: { userId }, ConsistentRead: true }))).Item;
  const exportsOf = async (userId: string) =>
    ((await s3().send(new ListObjectsV2Command({ Bucket: 'lethe-sample-exports', Prefix: `exports/${userId}/` }))).Contents ?? []).map((o) => o.Key);
  const s3 = () => new S3Client({ endpoint: state.s3Endpoint, region: state.region, credentials, forcePathStyle: true });
  /** The user ids in the sample data lake's events, month by month. */
  const lakeUsers = async () => {
    const out: string[][] = [];
    for (const month of ['2026-10', '2026-11']) {
      const object = await s3().send(new GetObjectCommand({ Bucket: 'lethe-sample-lake', Key: `events/month=${month}/part-0.parquet` }));
      const bytes = await object.Body!.transformToByteArray();
      const rows = await parquetReadObjects({ file: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer });
      out.push(rows.map((r) => r['user_id'] as string));
    }
    return out;
  };
  const sql = (query: string) => local.sql(query);

  beforeAll(async () => {
    local = await startLocalMode();
    ({ child, stateDir, state, api } = local);
    db = DynamoDBDocumentClient.from(new DynamoDBClient({ endpoint: state.dynamoDbEndpoint, region: state.region, credentials }));
  });

  afterAll(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });

  it('keeps its state to its owner: every file holding a key, a secret or a password is 0600', () => {
    // What must not be readable by others: each role's secret key, and the databases' passwords.
    const secrets = [...Object.values(state.credentials).map((k) => k.secretAccessKey), ...Object.values(state.databases).map((url) => decodeURIComponent(new URL(url).password))].filter((s) => s.length >= 8);
    expect(secrets.length).toBeGreaterThanOrEqual(Object.keys(state.credentials).length);
    const files = readdirSync(stateDir, { recursive: true, encoding: 'utf8' })
      .filter((f) => !f.startsWith('cdk.out'))
      .map((f) => join(stateDir, f))
      .filter((f) => statSync(f).isFile() && statSync(f).size < 8_000_000);
    const holding = files.filter((f) => /key|credentials/.test(f) || secrets.some((secret) => readFileSync(f, 'latin1').includes(secret)));
    expect(holding.map((f) => f.slice(stateDir.length + 1)).sort()).toEqual(expect.arrayContaining(['aws-credentials', 'credentials.json', 'keys.json', 'local.json', 'receipt-key.pem']));
    expect(holding.map((f) => [f.slice(stateDir.length + 1), (statSync(f).mode & 0o777).toString(8)])).toEqual(holding.map((f) => [f.slice(stateDir.length + 1), '600']));
  });

  it('erases a seeded user everywhere, through the user_id resolved from PostgreSQL first, keeping the other user', async () => {
    expect(await user('u-ada')).toBeDefined();
    expect(await exportsOf('u-ada')).toHaveLength(2);
    expect(await lakeUsers()).toEqual([
      ['u-ada', 'u-grace', 'u-ada', 'u-grace', 'u-ada'],
      ['u-ada', 'u-grace', 'u-ada', 'u-grace', 'u-ada'],
    ]);

    const response = await post({ type: 'erasure', regulation: 'gdpr', identities: [{ type: 'email', value: 'ada@example.com' }] });
    expect(response.status).toBe(202);
    const answer = (await response.json()) as { requestId: string; status: string; dueAt: string };
    expect(answer.status).toBe('received');
    expect(new Date(answer.dueAt).getTime()).toBeGreaterThan(Date.now() + 27 * 24 * 3600 * 1000);

    const done = await final(answer.requestId);
    expect(done).toMatchObject({ status: 'completed', completedAt: expect.any(String) as string });
    expect(done).not.toHaveProperty('nothingFound'); // it deleted what it found
    expect(done.systems).toEqual([
      { system: 'analytics', action: 'delete', status: 'succeeded', affected: 6, jobs: 'lake batch of 1' },
      { system: 'app-db', action: 'delete', status: 'succeeded', affected: 3 },
      { system: 'app-db', action: 'resolve', status: 'succeeded', affected: 1 },
      { system: 'exports', action: 'delete', status: 'succeeded', affected: 2 },
      { system: 'users', action: 'delete', status: 'succeeded', affected: 1 },
    ]);
    expect(await user('u-ada')).toBeUndefined();
    expect(await exportsOf('u-ada')).toEqual([]);
    expect(await sql('SELECT id FROM accounts ORDER BY id')).toEqual([{ id: 'a-2' }]);
    expect(await sql('SELECT id FROM orders ORDER BY id')).toEqual([{ id: 'o-3' }]);
    expect(await user('u-grace')).toMatchObject({ email: 'grace@example.com' });
    expect(await exportsOf('u-grace')).toHaveLength(2);
    expect(await lakeUsers()).toEqual([
      ['u-grace', 'u-grace'],
      ['u-grace', 'u-grace'],
    ]);

    const verify = spawnSync(process.execPath, ['cli/lethe.ts', 'audit', 'verify', '--request', answer.requestId, '--state-dir', stateDir], { encoding: 'utf8' });
    expect(verify.stderr).toBe('');
    // received, planned, running and succeeded for each of 5 tasks, the lake task's wait for its batch, completed
    expect(verify.stdout).toMatch(/14 records, intact .*last event request\.completed/);
    expect(verify.status).toBe(0);
  });

  it('marks the model trained on Ada’s data for a rebuild, and filters her out of a training set by pseudonym', () => {
    const datasets = spawnSync(process.execPath, ['cli/lethe.ts', 'datasets', '--state-dir', stateDir, '--json'], { encoding: 'utf8' });
    expect(datasets.stderr).toBe('');
    expect(JSON.parse(datasets.stdout)).toEqual([
      expect.objectContaining({ name: 'churn-model', kind: 'model', derivedFrom: ['app-db', 'analytics'], subjects: 1, since: expect.any(String) as string }),
    ]);

    const dir = mkdtempSync(join(tmpdir(), 'lethe-training-'));
    const rows = ['ADA@example.com', 'grace@example.com', 'ada@example.com', 'not an address'].map((email, i) => JSON.stringify({ email, label: i % 2 }));
    writeFileSync(join(dir, 'train.jsonl'), `${rows.join('\n')}\n`);
    const filter = spawnSync(
      process.execPath,
      ['cli/lethe.ts', 'filter-dataset', join(dir, 'train.jsonl'), '--out', join(dir, 'clean.jsonl'), '--column', 'email=email', '--state-dir', stateDir, '--json'],
      { encoding: 'utf8' },
    );
    expect(filter.stderr).toBe('');
    expect(JSON.parse(filter.stdout)).toMatchObject({ kept: 2, removed: 2 });
    expect(readFileSync(join(dir, 'clean.jsonl'), 'utf8')).toBe(`${rows[1]!}\n${rows[3]!}\n`);
    expect(filter.stdout).not.toContain('ada');

    const rebuilt = spawnSync(process.execPath, ['cli/lethe.ts', 'datasets', 'rebuilt', 'churn-model', '--state-dir', stateDir], { encoding: 'utf8' });
    expect(rebuilt.status).toBe(0);
    const after = spawnSync(process.execPath, ['cli/lethe.ts', 'datasets', '--state-dir', stateDir], { encoding: 'utf8' });
    expect(after.stdout).toMatch(/churn-model +model +from app-db, analytics: up to date/);
  });

  it('gives a final request a signed receipt that verifies offline, and refuses it altered or under another key', async () => {
    const [{ requestId }] = (await db.send(new ScanCommand({ TableName: state.requestsTable, FilterExpression: 'sk = :meta AND #s = :done', ExpressionAttributeNames: { '#s': 'status' }, ExpressionAttributeValues: { ':meta': 'META', ':done': 'completed' } }))).Items as [{ requestId: string }];
    const dir = mkdtempSync(join(tmpdir(), 'lethe-receipt-'));
    const lethe = (...args: string[]) => spawnSync(process.execPath, ['cli/lethe.ts', 'receipt', ...args, '--state-dir', stateDir], { encoding: 'utf8' });
    expect(lethe('get', requestId, '--out', join(dir, 'receipt.json')).status).toBe(0);
    expect(lethe('public-key', '--out', join(dir, 'key.pem')).status).toBe(0);
    // The verification needs nothing of Lethe's: not even its state directory.
    const verify = (file: string, key = join(dir, 'key.pem')) => spawnSync(process.execPath, ['cli/lethe.ts', 'receipt', 'verify', file, '--public-key', key], { encoding: 'utf8', cwd: process.cwd() });

    const ok = verify(join(dir, 'receipt.json'));
    expect(ok.stderr).toBe('');
    expect(ok.status).toBe(0);
    expect(ok.stdout).toContain(`receipt of ${requestId}: VALID, signed by local`);
    expect(ok.stdout).toMatch(/audit log: the head is leaf \d+ of the tree of \d+ leaves signed at /);
    expect(ok.stdout).toMatch(/app-db +delete +succeeded, 3 records/);
    const receipt = JSON.parse(readFileSync(join(dir, 'receipt.json'), 'utf8')) as { systems: { affected: number }[]; audit: { seq: number } };
    expect(receipt.audit.seq).toBe(14);
    expect(JSON.stringify(receipt)).not.toContain('ada@'); // 'ada' alone is hex, which hashes may hold

    receipt.systems[0]!.affected += 1;
    writeFileSync(join(dir, 'altered.json'), JSON.stringify(receipt));
    const altered = verify(join(dir, 'altered.json'));
    expect(altered.status).toBe(1);
    expect(altered.stderr).toContain('receipt NOT VALID: the signature does not match');
    writeFileSync(join(dir, 'other.pem'), generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ format: 'pem', type: 'spki' }));
    expect(verify(join(dir, 'receipt.json'), join(dir, 'other.pem')).status).toBe(1);

    const pending = await post({ type: 'erasure', regulation: 'gdpr', identities: [{ type: 'email', value: 'nobody-yet@example.com' }] });
    const { requestId: fresh } = (await pending.json()) as { requestId: string };
    const early = await local.as('ComplianceRole')(`${api}/v1/requests/${fresh}/receipt`);
    expect([200, 409]).toContain(early.status); // 409 while it runs; it may already be done
    await final(fresh);
  });

  it('ends needs_review, never completed, when the wider net finds the subject stored in another Unicode form; the receipt says so', async () => {
    // The subject's account, its address stored decomposed (u + combining diaeresis), as some forms store it.
    await sql(`INSERT INTO accounts (id, user_id, email, name) VALUES ('a-review', 'u-review', 'ju\u0308rgen.review@example.com', 'J')`);
    const response = await post({ type: 'erasure', regulation: 'gdpr', identities: [{ type: 'email', value: 'Jürgen.Review@example.com' }] });
    const { requestId } = (await response.json()) as { requestId: string };
    const done = await final(requestId);
    expect(done.status).toBe('needs_review');
    const appDb = done.systems.find((t) => t.system === 'app-db' && t.action === 'delete') as { status: string; nearMisses?: object; error?: { name: string; message: string } };
    expect(appDb).toMatchObject({
      status: 'needs_review',
      nearMisses: { unicode: 1 },
      error: { name: 'NeedsReview', message: "app-db: 1 of the subject's records were left, which the action did not match: 1 in another Unicode form" },
    });
    // Nothing of it was touched by the action, and the status holds no value of it.
    expect(await sql(`SELECT id FROM accounts WHERE id = 'a-review'`)).toEqual([{ id: 'a-review' }]);
    expect(JSON.stringify(done)).not.toMatch(/rgen\.review/);
    const receipt = await waitFor('the receipt', async () => {
      const answer = await local.as('ComplianceRole')(`${api}/v1/requests/${requestId}/receipt`);
      return answer.status === 200 ? ((await answer.json()) as { status: string; systems: { system: string; action: string; status: string; nearMisses?: object }[] }) : undefined;
    }, 30_000);
    expect(receipt.status).toBe('needs_review');
    expect(receipt.systems.find((t) => t.system === 'app-db' && t.action === 'delete')).toMatchObject({ status: 'needs_review', nearMisses: { unicode: 1 } });
    // Alerted as a failed task is, by class: Privacy Task Failed, NeedsReview.
    const alert = await waitFor('the alert', () => {
      const line = readFileSync(join(stateDir, 'events.jsonl'), 'utf8').split('\n').find((l) => l.includes('Privacy Task Failed') && l.includes(requestId));
      return Promise.resolve(line);
    }, 30_000);
    expect(JSON.parse(alert)).toMatchObject({ detail: { requestId, system: 'app-db', action: 'delete', errorName: 'NeedsReview' } });
    await sql(`DELETE FROM accounts WHERE id = 'a-review'`); // as the reviewer would, for the tests after this one
  });

  it('says a request found nothing anywhere, apart from a deletion, in its status and receipt', async () => {
    const response = await post({ type: 'erasure', regulation: 'gdpr', identities: [{ type: 'email', value: 'nobody.here@example.com' }] });
    const { requestId } = (await response.json()) as { requestId: string };
    const done = (await final(requestId)) as { status: string; nothingFound?: boolean };
    expect(done).toMatchObject({ status: 'completed', nothingFound: true });
    const receipt = await waitFor('the receipt', async () => {
      const answer = await local.as('ComplianceRole')(`${api}/v1/requests/${requestId}/receipt`);
      return answer.status === 200 ? ((await answer.json()) as { status: string; nothingFound?: boolean }) : undefined;
    }, 30_000);
    expect(receipt).toMatchObject({ status: 'completed', nothingFound: true });
  });

  it('makes one request of the same request sent twice', async () => {
    const body = {
      type: 'erasure',
      regulation: 'ccpa',
      requestId: 'c0ffee00-0000-4000-8000-000000000001',
      identities: [{ type: 'email', value: 'nobody@example.com' }],
    };
    const [first, second] = await Promise.all([post(body), post(body)]);
    expect([first.status, second.status]).toEqual([202, 202]);
    expect(((await second.json()) as { requestId: string }).requestId).toBe(body.requestId);

    const done = await final(body.requestId);
    // No account, so no user_id is found: every planned system affects nothing.
    expect(done.systems).toEqual([
      { system: 'analytics', action: 'delete', status: 'succeeded', affected: 0, jobs: 'lake batch of 1' },
      { system: 'app-db', action: 'delete', status: 'succeeded', affected: 0 },
      { system: 'app-db', action: 'resolve', status: 'succeeded', affected: 0 },
      { system: 'exports', action: 'delete', status: 'succeeded', affected: 0 },
      { system: 'users', action: 'delete', status: 'succeeded', affected: 0 },
    ]);
    const items = await metaItems(body.requestId);
    expect(items.filter((i) => i['sk'] === 'META')).toHaveLength(1);
    expect(items.filter((i) => String(i['sk']).startsWith('TASK#'))).toHaveLength(5);

    const replay = await post(body);
    expect(replay.status).toBe(202);
    expect(await replay.json()).toMatchObject({ requestId: body.requestId, status: 'completed' });
  });

  it('shows with lethe plan what an erasure would touch, and changes nothing', async () => {
    const run = spawnSync(
      process.execPath,
      ['cli/lethe.ts', 'plan', '--type', 'erasure', '--email', 'Grace@Example.com', '--state-dir', stateDir],
      { encoding: 'utf8' },
    );

    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(run.stdout).toContain('Plan for erasure of email (nothing will be changed):');
    expect(run.stdout).toMatch(/stage 1 +resolve +app-db +1 linked identity \(user_id: 1\)\n/);
    expect(run.stdout).toMatch(/stage 2 +delete +users +1 record\n/);
    expect(run.stdout).toMatch(/stage 2 +delete +exports +2 records\n/);
    expect(run.stdout).toMatch(/stage 2 +delete +analytics +4 records\n/);
    expect(run.stdout).toMatch(/stage 3 +delete +app-db +2 records\n +accounts\.email is compared lower-cased; index accounts_lower_email \(an expression index on lower\(email\)\) serves it\n/);
    expect(run.stdout).not.toContain('grace@example.com');
    expect(await user('u-grace')).toMatchObject({ email: 'grace@example.com' });
  });

  it('takes the same request from EventBridge PutEvents, once per source event', async () => {
    const events = new EventBridgeClient({ endpoint: api, region: state.region, credentials });
    const entry = {
      EventBusName: state.eventBusName,
      Source: 'com.example.accounts',
      DetailType: 'Privacy Request Submitted',
      Detail: JSON.stringify({
        type: 'erasure',
        regulation: 'gdpr',
        source: 'accounts',
        sourceEventId: 'evt-42',
        identities: [{ type: 'email', value: 'grace@example.com' }],
      }),
    };
    const out = await events.send(new PutEventsCommand({ Entries: [entry, entry] }));
    expect(out.FailedEntryCount).toBe(0);

    const requestId = requestIdFor({ source: 'accounts', sourceEventId: 'evt-42' });
    const done = await final(requestId);
    expect(done.status).toBe('completed');
    expect(await user('u-grace')).toBeUndefined();
    expect(await exportsOf('u-grace')).toEqual([]);
    expect(await lakeUsers()).toEqual([[], []]);
    expect(await sql('SELECT id FROM accounts')).toEqual([]);
    expect((await metaItems(requestId)).filter((i) => i['sk'] === 'META')).toHaveLength(1);
  });

  it('restricts a subject, and a later withdraw lifts exactly what that restriction changed', async () => {
    // Two accounts of Linus; the old one was restricted by an administrator before Lethe was asked.
    await sql(`INSERT INTO accounts (id, user_id, email, name, processing_restricted) VALUES
      ('a-7', 'u-linus', 'linus@example.com', 'Linus', FALSE), ('a-8', 'u-linus', 'linus@example.com', 'Linus (old)', TRUE)`);
    const restricted = async () => (await sql('SELECT id FROM accounts WHERE processing_restricted ORDER BY id')).map((r) => r['id']);
    const identities = [{ type: 'email', value: 'linus@example.com' }];

    const restrictId = ((await (await post({ type: 'restrict', regulation: 'gdpr', identities })).json()) as { requestId: string }).requestId;
    const restrict = await final(restrictId);
    expect(restrict.status).toBe('completed');
    expect(restrict.systems).toContainEqual({ system: 'app-db', action: 'restrict', status: 'succeeded', affected: 1 });
    expect(await restricted()).toEqual(['a-7', 'a-8']);
    // What was restricted is kept sealed: a count in the clear, the row keys only under the request's key.
    const record = (await metaItems(restrictId)).find((i) => i['sk'] === 'RESTRICTION#app-db');
    expect(record).toMatchObject({ count: 1 });
    expect(JSON.stringify(record)).not.toContain('"a-7"'); // quoted: the request id, random hex, may hold a-7 unquoted

    const withdrawId = ((await (await post({ type: 'withdraw', regulation: 'gdpr', identities })).json()) as { requestId: string }).requestId;
    const withdraw = await final(withdrawId);
    expect(withdraw.status).toBe('completed');
    expect(withdraw.systems).toEqual([{ system: 'app-db', action: 'lift', status: 'succeeded', affected: 1 }]);
    expect(await restricted()).toEqual(['a-8']);
    expect((await metaItems(restrictId)).find((i) => i['sk'] === 'RESTRICTION#app-db')).toMatchObject({ liftedBy: withdrawId });

    // Lifted once: a second withdraw has nothing of Lethe's left to lift.
    const again = await post({ type: 'withdraw', regulation: 'gdpr', requestId: 'c0ffee00-0000-4000-8000-000000000002', identities });
    expect(again.status).toBe(202);
    expect((await final('c0ffee00-0000-4000-8000-000000000002')).systems).toEqual([
      { system: 'app-db', action: 'lift', status: 'succeeded', affected: 0 },
    ]);
    expect(await restricted()).toEqual(['a-8']);
  });

  it('suppresses an opt-out, a restriction and an erasure before intake answers, and a withdraw lifts what it names', async () => {
    type Verdict = { suppressed: boolean; scopes: string[]; since?: string };
    const check = async (identities: { type: string; value: string }[], scope?: string) => {
      const response = await local.as('SubmitterRole')(`${api}/v1/suppressions:check`, { method: 'POST', body: JSON.stringify({ identities, ...(scope && { scope }) }) });
      expect(response.status).toBe(200);
      return ((await response.json()) as { results: Verdict[] }).results;
    };
    const margaret = { type: 'email', value: 'margaret@example.com' };
    expect(await check([margaret])).toEqual([{ suppressed: false, scopes: [] }]);

    // An opt-out of marketing only: marketing is forbidden from the answer on, sale is not.
    const sent: string[] = [];
    const submit = async (body: object) => {
      const response = await post(body);
      expect(response.status).toBe(202);
      sent.push(((await response.json()) as { requestId: string }).requestId);
    };
    await submit({ type: 'opt_out', regulation: 'ccpa', identities: [margaret], scopes: ['marketing'] });
    expect(await check([{ type: 'email', value: ' Margaret@Example.com' }], 'marketing')).toMatchObject([{ suppressed: true, scopes: ['marketing'] }]);
    expect(await check([margaret], 'sale')).toMatchObject([{ suppressed: false, scopes: ['marketing'] }]);
    // Ada was erased (the first test): nothing more may be collected about her, for any use.
    expect(await check([{ type: 'email', value: 'ada@example.com' }], 'sale')).toMatchObject([{ suppressed: true, scopes: ['all'] }]);
    // A restriction forbids every use but keeps the data; a withdraw lifts it, and the opt-out with it.
    await submit({ type: 'restrict', regulation: 'gdpr', identities: [margaret] });
    expect(await check([margaret], 'sharing')).toMatchObject([{ suppressed: true, scopes: ['marketing', 'processing'] }]);
    await submit({ type: 'withdraw', regulation: 'gdpr', identities: [margaret] });
    expect(await check([margaret])).toEqual([{ suppressed: false, scopes: [] }]);

    // A thousand at once, answered in order, naming none.
    const many = Array.from({ length: 1000 }, (_, i) => (i === 500 ? { type: 'email', value: 'ada@example.com' } : { type: 'user_id', value: `u-check-${String(i)}` }));
    const results = await check(many);
    expect(results.flatMap((r, i) => (r.suppressed ? [i] : []))).toEqual([500]);
    expect(JSON.stringify(results)).not.toMatch(/u-check|ada@/);
    // An invalid identity is named by its place; more than a thousand are refused.
    const refused = async (identities: unknown[]) => {
      const response = await local.as('ComplianceRole')(`${api}/v1/suppressions:check`, { method: 'POST', body: JSON.stringify({ identities }) });
      expect(response.status).toBe(400);
      return (await response.json()) as { issues: { path: string }[] };
    };
    expect(await refused([margaret, margaret, margaret, { type: 'email', value: 'not-an-address' }])).toMatchObject({ issues: [{ path: 'identities.3.value' }] });
    expect(await refused([...many, margaret])).toMatchObject({ issues: [{ path: 'identities' }] });
    // The requests themselves run their course meanwhile.
    for (const id of sent) expect((await final(id)).status).toBe('completed');
  });

  it('serves a product backend through @lethe/client: a GPC opt-out, then checks from the filter snapshot that ask the API about its hits only', async () => {
    const lethe = new LetheClient({ apiUrl: api, region: state.region, credentials: state.credentials['SubmitterRole']!, snapshotMaxAgeMs: 500 });
    const linda = { type: 'email', value: 'Linda@Example.com' };
    const request = toRequest({ headers: { 'sec-gpc': '1' }, identities: [linda, { type: 'user_id', value: 'u-linda' }] });
    const accepted = (await lethe.submit(request!)) as { requestId: string };
    expect(accepted.requestId).toMatch(/^[0-9a-f-]{36}$/);
    const submittedAt = new Date().toISOString();
    // Held from intake's answer on, before any snapshot has her.
    expect(await lethe.check([linda], 'sale')).toMatchObject([{ suppressed: true, scopes: ['sale', 'sharing'] }]);
    // The publisher runs every few seconds in local mode.
    await waitFor('a filter snapshot built after the opt-out', async () => {
      await lethe.snapshot.refresh();
      return lethe.snapshot.info && lethe.snapshot.info.builtAt > submittedAt ? true : undefined;
    });

    const others = Array.from({ length: 300 }, (_, i) => ({ type: 'user_id', value: `u-sdk-${String(i)}` }));
    const calls: string[] = [];
    const realFetch = globalThis.fetch;
    globalThis.fetch = (input, init) => {
      calls.push(String(input instanceof Request ? input.url : input));
      return realFetch(input, init);
    };
    try {
      const answers = await lethe.areSuppressed([...others.slice(0, 150), { type: 'email', value: 'linda@example.com' }, ...others.slice(150)], 'sale');
      expect(answers.flatMap((a, i) => (a ? [i] : []))).toEqual([150]);
      expect(await lethe.isSuppressed({ type: 'user_id', value: 'u-linda' }, 'sharing')).toBe(true);
      // GPC is about sale and sharing: marketing to her is still allowed (the filter's hit, confirmed no).
      expect(await lethe.isSuppressed(linda, 'marketing')).toBe(false);
      expect(await lethe.isSuppressed({ type: 'user_id', value: 'u-sdk-never' })).toBe(false);
    } finally {
      globalThis.fetch = realFetch;
    }
    // One call for the batch's hits (her, and any of the 1 in 256 false positives), one each for hers after.
    const checks = calls.filter((u) => u.includes('/v1/suppressions:check'));
    expect(checks.length).toBeGreaterThanOrEqual(3);
    expect(checks.length).toBeLessThanOrEqual(4);

    // The same opt-out submitted on the bus instead.
    const events = new EventBridgeClient({ endpoint: api, region: state.region, credentials });
    const bus = new LetheClient({ apiUrl: api, region: state.region, credentials: state.credentials['SubmitterRole']!, eventBus: { name: state.eventBusName, client: events, source: 'com.example.web' } });
    const grete = { type: 'email', value: 'grete@example.com' };
    expect(await bus.submit(toRequest({ gpp: 'DBABLA~CAAWAAAAAABA.QA', identities: [grete], source: 'web', sourceEventId: 'profile-1' })!)).toMatchObject({ eventId: expect.any(String) as string });
    await waitFor('the opt-out from the bus', async () => ((await bus.check([grete], 'sale'))[0]!.suppressed ? true : undefined));
  });

  it('takes an OpenDSR erasure, erases, and tells the callback URL, signed as only the discovery document says how to check', async () => {
    const received: { headers: Record<string, string | string[] | undefined>; body: string }[] = [];
    const controller = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        received.push({ headers: req.headers, body });
        res.writeHead(202).end();
      });
    });
    await new Promise<void>((ok) => controller.listen(0, '127.0.0.1', ok));
    const callbackUrl = `http://127.0.0.1:${String((controller.address() as AddressInfo).port)}/opendsr/callbacks`;
    try {
      const id = randomUUID();
      const created = await local.as('SubmitterRole')(`${api}/opendsr/v2/requests`, {
        method: 'POST',
        body: JSON.stringify({
          subject_request_id: id,
          regulation: 'gdpr',
          subject_request_type: 'erasure',
          submitted_time: new Date().toISOString(),
          subject_identities: [{ identity_type: 'email', identity_value: 'katherine@example.com', identity_format: 'raw' }],
          api_version: '2.0',
          status_callback_urls: [callbackUrl],
        }),
      });
      expect(created.status, await created.clone().text()).toBe(201);

      // The controller knows the discovery document's URL, and nothing else: no credentials for it.
      const discovery = (await (await fetch(`${api}/opendsr/v2/discovery`)).json()) as { processor_certificate: string };
      const certificate = new X509Certificate(await (await fetch(discovery.processor_certificate)).text());
      const domain = new URL(discovery.processor_certificate).hostname;
      const verifies = (r: { headers: Record<string, string | string[] | undefined>; body: string }) =>
        r.headers['x-opendsr-processor-domain'] === domain &&
        Boolean(certificate.checkIP(domain) ?? certificate.checkHost(domain)) &&
        verify('sha256', Buffer.from(r.body), certificate.publicKey, Buffer.from(String(r.headers['x-opendsr-signature']), 'base64'));
      expect(verifies({ headers: Object.fromEntries(created.headers), body: await created.text() })).toBe(true);

      const statuses = () => received.map((r) => (JSON.parse(r.body) as { request_status: string }).request_status);
      await waitFor('the callback that says completed', () => Promise.resolve(statuses().includes('completed') ? true : undefined), 60_000);
      expect(received.every(verifies)).toBe(true);
      // Changes only (pending was the answer itself); at least once each, so a change may be told twice.
      expect(statuses().filter((s) => s !== 'in_progress' && s !== 'completed')).toEqual([]);
      expect(JSON.parse(received.at(-1)!.body)).toMatchObject({ subject_request_id: id, status_callback_url: callbackUrl });
      const status = await local.as('SubmitterRole')(`${api}/opendsr/v2/requests/${id}`);
      expect(await status.json()).toMatchObject({ request_status: 'completed' });
      // And it was a Lethe erasure like any other.
      expect((await final(id)).status).toBe('completed');
    } finally {
      controller.close();
    }
  });

  it('records an invalid event in the dead-letter queue by id and bad fields, without its identifiers', async () => {
    const before = await countItems();
    const events = new EventBridgeClient({ endpoint: api, region: state.region, credentials });
    const detail = { type: 'erasure', regulation: 'gdpr', identities: [{ type: 'email', value: 'not-an-address' }] };
    const put = await events.send(
      new PutEventsCommand({
        Entries: [{ EventBusName: state.eventBusName, Source: 'com.example.accounts', DetailType: 'Privacy Request Submitted', Detail: JSON.stringify(detail) }],
      }),
    );

    const sqs = new SQSClient({ endpoint: state.sqsEndpoint, region: state.region, credentials, useQueueUrlAsEndpoint: false });
    const queueUrl = (await sqs.send(new ListQueuesCommand({}))).QueueUrls?.find((u) => u.includes('EventTargetsDlq'));
    expect(queueUrl).toBeDefined();
    const message = await waitFor('the rejected event', async () => {
      const out = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, WaitTimeSeconds: 1, MessageAttributeNames: ['All'] }));
      return out.Messages?.[0];
    });
    expect(message.MessageAttributes?.['invalidFields']?.StringValue).toBe('identities.0.value');
    expect(JSON.parse(message.Body!)).toMatchObject({
      eventId: put.Entries?.[0]?.EventId,
      source: 'com.example.accounts',
      invalidFields: [{ path: 'identities.0.value' }],
    });
    expect(message.Body).not.toContain('not-an-address');
    expect(await countItems()).toBe(before);
  });

  it('answers invalid requests with a 400 that names the field, and writes nothing', async () => {
    const before = await countItems();

    const response = await post({ type: 'erasure', regulation: 'gdpr', identities: [{ type: 'email', value: 'not-an-address' }] });

    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: 'ValidationError', issues: [{ path: 'identities.0.value' }] });
    const unknownField = await post({ type: 'erasure', regulation: 'gdpr', identities: [{ type: 'email', value: 'x@example.com' }], note: 'hi' });
    expect(unknownField.status).toBe(400);
    expect(((await unknownField.json()) as { message: string }).message).toContain('note');
    expect((await local.as('ComplianceRole')(`${api}/v1/requests/not-a-uuid`)).status).toBe(400);
    expect((await local.as('ComplianceRole')(`${api}/v1/requests/c0ffee00-0000-4000-8000-0000000000ff`)).status).toBe(404);
    await sleep(500);
    expect(await countItems()).toBe(before);
  });

  it('leaves no trace of a canary’s identifiers in anything the run produced, its receipt included', async () => {
    // A subject with data to find, whose identifiers appear nowhere else.
    const raw = ['canary.7q9x@example.com', 'u-canary-7q9x', '+442079460123', '2079460123', 'Canary Person'];
    await sql(`INSERT INTO accounts (id, user_id, email, name) VALUES ('a-canary', 'u-canary-7q9x', 'canary.7q9x@example.com', 'Canary Person')`);
    const response = await post({ type: 'erasure', regulation: 'gdpr', identities: [{ type: 'email', value: 'Canary.7Q9X@example.com' }, { type: 'phone', value: '+44 20 7946 0123' }] });
    const { requestId } = (await response.json()) as { requestId: string };
    expect((await final(requestId)).status).toBe('completed');
    expect(await sql(`SELECT id FROM accounts WHERE id = 'a-canary'`)).toEqual([]);

    // The receipt is given once the audit log holds the request's last record (503 until then).
    const receipt = await waitFor('the canary’s receipt', async () => {
      const answer = await local.as('ComplianceRole')(`${api}/v1/requests/${requestId}/receipt`);
      return answer.status === 200 ? answer.text() : undefined;
    }, 30_000);
    expect(receipt).toContain('"inclusionProof"');
    // What the bus carried of Lethe's own: its announcements and the saga's status changes, as an archive keeps them.
    const events = readFileSync(join(stateDir, 'events.jsonl'), 'utf8');
    expect(events).toContain(requestId);
    // The handlers' log holds their metrics too (CloudWatch embedded metric format).
    const handlerLog = readFileSync(join(stateDir, 'local.log'), 'utf8');
    expect(handlerLog).toContain('"CloudWatchMetrics"');
    const produced: string[] = [handlerLog, local.output(), JSON.stringify(await status(requestId)), receipt, events];
    // The saga's input and output, as Step Functions keeps them.
    const template = JSON.parse(readFileSync(join(stateDir, 'cdk.out', 'Lethe.template.json'), 'utf8')) as { Resources: Record<string, { Type: string }> };
    const machine = Object.entries(template.Resources).find(([, r]) => r.Type === 'AWS::StepFunctions::StateMachine')![0];
    const sfn = new SFNClient({ endpoint: api, region: state.region, credentials });
    produced.push(JSON.stringify(await sfn.send(new DescribeExecutionCommand({ executionArn: `arn:aws:states:${state.region}:000000000000:execution:${machine}:${requestId}` }))));
    // Every audit record, every item of the requests table, and whatever any queue still holds.
    const s3 = new S3Client({ endpoint: state.s3Endpoint, region: state.region, credentials, forcePathStyle: true });
    for (const { Key } of (await s3.send(new ListObjectsV2Command({ Bucket: state.auditBucket }))).Contents ?? []) {
      produced.push(await (await s3.send(new GetObjectCommand({ Bucket: state.auditBucket, Key }))).Body!.transformToString());
    }
    produced.push(JSON.stringify((await db.send(new ScanCommand({ TableName: state.requestsTable }))).Items));
    const sqs = new SQSClient({ endpoint: state.sqsEndpoint, region: state.region, credentials, useQueueUrlAsEndpoint: false });
    for (const QueueUrl of (await sqs.send(new ListQueuesCommand({}))).QueueUrls ?? []) {
      produced.push(JSON.stringify((await sqs.send(new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10, VisibilityTimeout: 0 }))).Messages ?? []));
    }
    expect(produced.join('\n')).toContain(requestId);
    for (const text of produced) for (const value of raw) for (const form of [value, value.toLowerCase(), encodeURIComponent(value)]) expect(text).not.toContain(form);
  });

  it('lists requests for compliance work through the API, filtered and paged', async () => {
    const page = async (query: string) => (await (await local.as('ComplianceRole')(`${api}/v1/requests?${query}`)).json()) as { requests: { requestId: string; status: string; overdue: boolean }[]; cursor?: string };
    const completed = await page('status=completed&regulation=gdpr&limit=100');
    expect(completed.requests.length).toBeGreaterThan(3);
    expect(completed.requests.every((r) => r.status === 'completed' && !r.overdue)).toBe(true);
    const first = await page('limit=2');
    expect(first.requests).toHaveLength(2);
    const second = await page(`limit=2&cursor=${first.cursor!}`);
    expect(second.requests.map((r) => r.requestId)).not.toContain(first.requests[0]!.requestId);
    expect((await page('overdue=true')).requests).toEqual([]);
    expect((await local.as('ComplianceRole')(`${api}/v1/requests?overdue=maybe`)).status).toBe(400);
    // The same through the CLI.
    const lethe = (...args: string[]) => spawnSync(process.execPath, ['cli/lethe.ts', ...args, '--state-dir', stateDir], { encoding: 'utf8' });
    const listed = lethe('list', '--status', 'completed', '--regulation', 'gdpr', '--all');
    expect(listed.status).toBe(0);
    expect(listed.stdout).toContain(`${completed.requests[0]!.requestId}  erasure   gdpr  completed`);
    expect(listed.stdout).toMatch(new RegExp(`^${String(completed.requests.length)} requests$`, 'm'));
    expect(JSON.parse(lethe('list', '--overdue', '--json').stdout)).toEqual([]);
    expect(lethe('list', '--status', 'done')).toMatchObject({ status: 2, stderr: expect.stringMatching(/^lethe list: --status /) as string });
    const shown = lethe('status', completed.requests[0]!.requestId);
    expect(shown.status).toBe(0);
    expect(shown.stdout).toMatch(/: completed at .*\n  received .*, due .*\n  \S+ +\w+ +succeeded/);
    expect(lethe('status', 'c0ffee00-0000-4000-8000-0000000000ff')).toMatchObject({ status: 1, stderr: expect.stringContaining('does not exist') as string });
  });

  it('logged no raw identifier anywhere', () => {
    const handlerLog = readFileSync(join(stateDir, 'local.log'), 'utf8');
    const printed = local.output();
    const afterBanner = printed.slice(printed.indexOf('Ctrl-C stops everything.'));
    expect(handlerLog).toContain('request received');
    for (const raw of ['ada@example.com', 'grace@example.com', 'linus@example.com', 'margaret@example.com', 'nobody@example.com', 'not-an-address']) {
      expect(handlerLog).not.toContain(raw);
      expect(afterBanner).not.toContain(raw);
    }
  });

  it('has lethe audit verify exit non-zero, saying where, once a record is altered', async () => {
    const all = (...args: string[]) => spawnSync(process.execPath, ['cli/lethe.ts', 'audit', 'verify', '--all', ...args, '--state-dir', stateDir], { encoding: 'utf8' });
    // A receipt kept from earlier, and the log's first tree head: the log only grew between them.
    const dir = mkdtempSync(join(tmpdir(), 'lethe-heads-'));
    const kept = join(dir, 'receipt.json');
    writeFileSync(kept, await (await local.as('ComplianceRole')(`${api}/v1/requests/c0ffee00-0000-4000-8000-000000000001/receipt`)).text());
    const bucket = new S3Client({ endpoint: state.s3Endpoint, region: state.region, credentials, forcePathStyle: true });
    const firstHead = (await bucket.send(new ListObjectsV2Command({ Bucket: state.auditBucket, Prefix: 'log/heads/' }))).Contents![0]!.Key!;
    writeFileSync(join(dir, 'first.json'), await (await bucket.send(new GetObjectCommand({ Bucket: state.auditBucket, Key: firstHead }))).Body!.transformToString());
    writeFileSync(join(dir, 'key.pem'), await (await local.as('ComplianceRole')(`${api}/v1/receipts/public-key`)).text());
    const consistency = (older: string, newer: string) =>
      spawnSync(process.execPath, ['cli/lethe.ts', 'audit', 'consistency', join(dir, older), join(dir, newer), '--public-key', join(dir, 'key.pem'), '--state-dir', stateDir], { encoding: 'utf8' });
    expect(consistency('first.json', 'receipt.json').stdout).toMatch(/^CONSISTENT: the tree of \d+ leaves \(.*\) extends the tree of \d+ /);
    expect(consistency('receipt.json', 'first.json')).toMatchObject({ status: 1, stderr: expect.stringMatching(/^NOT CONSISTENT: the first tree head .* is larger than the second/) as string });
    const intact = all('--known-head', kept);
    expect(intact.stderr).toBe('');
    expect(intact.stdout).toMatch(/^\d+ audit chains checked: all intact\naudit log: \d+ leaves, \d+ signed tree heads, newest of \d+ leaves .*: intact\n$/);
    expect(all('--since', '2099-01-01').stdout).toMatch(/^0 audit chains checked: all intact\naudit log: .*: intact\n$/);

    const requestId = 'c0ffee00-0000-4000-8000-000000000001';
    const s3 = new S3Client({ endpoint: state.s3Endpoint, region: state.region, credentials, forcePathStyle: true });
    const Key = `audit/${requestId}/0000000002.json`;
    const record = JSON.parse(await (await s3.send(new GetObjectCommand({ Bucket: state.auditBucket, Key }))).Body!.transformToString()) as Record<string, unknown>;
    await s3.send(new PutObjectCommand({ Bucket: state.auditBucket, Key, Body: JSON.stringify({ ...record, tasks: 0 }) }));

    const verify = spawnSync(process.execPath, ['cli/lethe.ts', 'audit', 'verify', '--request', requestId, '--state-dir', stateDir], { encoding: 'utf8' });

    expect(verify.status).toBe(1);
    expect(verify.stderr).toContain('BROKEN');
    expect(verify.stderr).toContain(`${Key}: content does not match its hash`);

    // Over everything: the altered chain, and a chain forged for a request that never was.
    const forged = 'f0f0f0f0-0000-4000-8000-000000000000';
    await s3.send(new PutObjectCommand({ Bucket: state.auditBucket, Key: `audit/${forged}/0000000001.json`, Body: JSON.stringify({ ...record, requestId: forged, seq: 1 }) }));
    const broken = all('--json');
    expect(broken.status).toBe(1);
    const report = JSON.parse(broken.stdout) as { checked: number; broken: { requestId: string; problems: string[] }[]; log: { problems: LogProblem[] } };
    expect(report.broken.map((b) => b.requestId).sort()).toEqual([requestId, forged].sort());
    expect(report.broken.find((b) => b.requestId === forged)!.problems[0]).toBe('the bucket holds a chain for a request the table does not know');
    expect(report.checked).toBeGreaterThan(5);
    // The forged record is in no leaf of the audit log either; the edited one is (its hash field was kept).
    expect(report.log.problems).toEqual([{ where: `audit/${forged}/0000000001.json`, problem: expect.stringMatching(/^is in no leaf of the log/) as string }]);

    // A tree head replaced by one with another root, even signed with the receipt key itself.
    const heads = await s3.send(new ListObjectsV2Command({ Bucket: state.auditBucket, Prefix: 'log/heads/' }));
    const headKey = heads.Contents![0]!.Key!;
    const head = JSON.parse(await (await s3.send(new GetObjectCommand({ Bucket: state.auditBucket, Key: headKey }))).Body!.transformToString()) as TreeHead;
    const forgedHead = { ...withoutSignature(head), rootHash: 'ee'.repeat(32) };
    const signature = Buffer.from(await LocalReceiptSigner.fromFile(join(stateDir, 'receipt-key.pem')).sign(canonicalBytes(forgedHead))).toString('base64');
    await s3.send(new PutObjectCommand({ Bucket: state.auditBucket, Key: headKey, Body: JSON.stringify({ ...forgedHead, signature }) }));
    const replaced = all('--json');
    expect((JSON.parse(replaced.stdout) as typeof report).log.problems).toContainEqual({ where: headKey, problem: expect.stringMatching(/^its root is not the root of the first \d+ logged leaves/) as string });
  });

  it('stops everything on Ctrl-C, leaving nothing behind', async () => {
    const exited = new Promise<number | null>((ok) => child.once('exit', ok));
    child.kill('SIGINT');

    expect(await Promise.race([exited, sleep(20_000).then(() => 'still running')])).toBe(0);
    const port = Number(new URL(state.dynamoDbEndpoint).port);
    const refused = await new Promise<boolean>((ok) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => (socket.destroy(), ok(false)));
      socket.once('error', () => ok(true));
    });
    expect(refused).toBe(true);
    await expect(fetch(`${api}/health`)).rejects.toThrow();
  });
});
