/**
 * The chaos suite: local mode, six systems of six connector kinds, a stream of erasures, and
 * deterministic faults — retryable and permanent connector errors, connectors slower than their
 * heartbeat, execution environments that die in the middle of a batch, a lake rewrite killed
 * between writing its new object version and deleting the old one, every SQS batch delivered
 * three times at once, and the SQS and S3 emulator cut off mid-run. Then a reconciliation of what
 * was asked with what happened, in Jepsen's terms: lost, duplicated, unexpected.
 *
 * `npm run chaos` runs 1,000 requests (test/chaos/run.ts); CI runs a smaller one (chaos.test.ts).
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ListObjectsV2Command, PutObjectCommand, S3Client, type ListObjectsV2CommandOutput } from '@aws-sdk/client-s3';
import { GetQueueAttributesCommand, ListQueuesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { BatchGetCommand, BatchWriteCommand, DynamoDBDocumentClient, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { execFile } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { createWriteStream, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import pg from 'pg';
import { isFinalRequestStatus, outcomeOf, requestIdFor, type RequestStatus, type TaskStatus } from '#core/request';
import { startLocal, type LocalLethe } from '#local/runtime';
import { LetheApi } from '../../cli/api.ts';
import { stripe } from '../fixtures/vendors.ts';
import { versionedS3Server, type VersionedStore } from '../fixtures/versioned-s3.ts';
import { WEBHOOK_SECRET, webhookService } from '../fixtures/webhook-service.ts';
import type { Fault, FaultAnswer } from './faults.ts';

export interface ChaosOptions {
  readonly requests: number;
  /** Decides every fault: the same seed, the same faults. */
  readonly seed: number;
  /** Requests submitted a second. */
  readonly rate: number;
  /** How long the SQS and S3 emulator is cut off, once, when 40% of the requests are in. */
  readonly outageMs: number;
  /** How long to wait for every request to be final. */
  readonly timeoutMs: number;
  readonly progress?: (line: string) => void;
}

export const DEFAULT_RATES = { permanent: 0.02, retryable: 0.2, slow: 0.01, crash: 0.005 };
const HEARTBEAT_SECONDS = 10;
const SYSTEMS = { postgres: 'accounts', dynamodb: 'profiles', s3: 'files', http: 'billing', webhook: 'support', lake: 'events' } as const;
type Kind = keyof typeof SYSTEMS;
const KINDS = Object.keys(SYSTEMS) as Kind[];
/** The kinds whose connector calls meet the oracle's faults (the lake meets `torn` instead). */
const FAULTED: readonly Kind[] = ['postgres', 'dynamodb', 's3', 'http', 'webhook'];
const ROWS = { accounts: 1, orders: 2, profiles: 1, files: 2, billing: 1, support: 2, events: 2 };
const LAKE_BUCKET = 'lethe-chaos-lake';
/** The lake's rewrites killed between the new version and the delete of the old: the first, and then one in this many, at most `TORN_MAX` in a run. */
const TORN_EVERY = 40;
const TORN_MAX = 4;

export interface ChaosReport {
  readonly requests: number;
  readonly seed: number;
  readonly seconds: number;
  readonly accepted: number;
  readonly final: number;
  readonly outcomes: Record<string, number>;
  readonly expectedOutcomes: Record<string, number>;
  readonly tasks: number;
  readonly faults: Record<Fault, number>;
  readonly calls: number;
  readonly deliveries: number;
  readonly outageMs: number;
  readonly lost: string[];
  readonly duplicated: string[];
  readonly unexpected: string[];
  readonly permanentFailures: { readonly injected: number; readonly visible: number; readonly alerted: number };
  readonly deadLetters: number;
  readonly audit: { readonly ok: boolean; readonly chains: number; readonly leaves: number };
  readonly privacy: { readonly leaks: number };
}

interface Call {
  readonly call: number;
  readonly fault: Fault;
  readonly start: number;
  /** The execution environment it runs in. */
  readonly environment: string;
  end?: number;
  ok?: boolean;
  affected?: number;
}

/**
 * Decides each connector call's fault from the seed, the task and the call's number (so a rerun
 * meets the same faults), and keeps the ledger of calls per task.
 */
class Oracle {
  readonly ledger = new Map<string, Call[]>();
  readonly faults: Record<Fault, number> = { none: 0, retryable: 0, permanent: 0, slow: 0, crash: 0, torn: 0 };
  /** Old-version deletes the lake connector asked about. */
  #tears = 0;
  /** Environments that reported their death: a call they begin after that never runs. */
  readonly #dead = new Set<string>();
  readonly duplicated: string[] = [];
  /** Faults forced on the first requests, so that even a small run meets every kind. */
  readonly #forced = new Map<string, Fault>();
  readonly #seed: string;
  #server: Server | undefined;

  constructor(seed: number, requestIds: readonly string[]) {
    this.#seed = String(seed);
    const forced: [number, Kind, Fault][] = [[0, 'dynamodb', 'crash'], [1, 's3', 'slow'], [2, 'http', 'permanent'], [3, 'webhook', 'retryable'], [4, 'postgres', 'crash']];
    for (const [i, kind, fault] of forced) if (requestIds[i]) this.#forced.set(`${kind}|${requestIds[i]}|delete|1`, fault);
  }

  /** The fault a call meets: the first call of a task may meet any, the second only a retryable one. */
  decide(kind: string, requestId: string, action: string, call: number): Fault {
    const forced = this.#forced.get(`${kind}|${requestId}|${action}|${String(call)}`);
    if (forced) return forced;
    if (call > 2) return 'none';
    const u = createHmac('sha256', this.#seed).update(`${kind}|${requestId}|${action}|${String(call)}`).digest().readUIntBE(0, 6) / 2 ** 48;
    if (call === 2) return u < DEFAULT_RATES.retryable ? 'retryable' : 'none';
    let edge = 0;
    for (const fault of ['permanent', 'retryable', 'slow', 'crash'] as const) {
      edge += DEFAULT_RATES[fault];
      if (u < edge) return fault;
    }
    return 'none';
  }

  /** Whether the task's first call meets a permanent fault: then, and only then, it must fail. */
  failsPermanently(kind: Kind, requestId: string): boolean {
    return FAULTED.includes(kind) && this.decide(kind, requestId, 'delete', 1) === 'permanent';
  }

  /** Whether the lake connector dies before deleting an old version it has just replaced. */
  #tear(): Fault {
    this.#tears += 1;
    const u = createHmac('sha256', this.#seed).update(`torn|${String(this.#tears)}`).digest().readUIntBE(0, 6) / 2 ** 48;
    const torn = this.faults.torn < TORN_MAX && (this.#tears === 1 || u < 1 / TORN_EVERY);
    if (torn) this.faults.torn += 1;
    return torn ? 'torn' : 'none';
  }

  async listen(): Promise<string> {
    this.#server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const m = JSON.parse(body) as { kind: string; requestId: string; action: string; environment: string; call?: number; ok?: boolean; affected?: number };
        if (req.url === '/tear') {
          res.end(JSON.stringify({ fault: this.#tear(), call: 0, slowMs: 0 }));
          return;
        }
        if (req.url === '/crash') {
          // The environment dies, and every call it was in the middle of (a batch's records run together) ends there, unfinished.
          this.#dead.add(m.environment);
          for (const calls of this.ledger.values()) {
            for (const c of calls) if (c.environment === m.environment && c.end === undefined) Object.assign(c, { end: Date.now(), ok: false });
          }
          res.end('{}');
          return;
        }
        const key = `${m.kind}|${m.requestId}|${m.action}`;
        const calls = this.ledger.get(key) ?? [];
        this.ledger.set(key, calls);
        let answer: FaultAnswer = { fault: 'none', call: m.call ?? 0, slowMs: 0 };
        if (req.url === '/start') {
          const now = Date.now();
          // Two attempts acting at once.
          const inFlight = calls.filter((c) => c.end === undefined).length;
          const busy = calls.filter((c) => c.end === undefined).map((c) => `call ${String(c.call)} (${c.fault}, ${String(now - c.start)} ms)`);
          if (inFlight > 0) this.duplicated.push(`${key}: call ${String(calls.length + 1)} began with ${busy.join(', ')} in flight`);
          const call = calls.length + 1;
          const fault = this.decide(m.kind, m.requestId, m.action, call);
          this.faults[fault] += 1;
          // A faulted call ends here: the connector is not reached (a crash ends it too, with its environment).
          // A call its environment began as it died (the crash's report overtook this one) ends with it.
          const ended = (fault !== 'none' && fault !== 'slow') || this.#dead.has(m.environment);
          calls.push({ call, fault, start: now, environment: m.environment, ...(ended && { end: now, ok: false }) });
          answer = { fault, call, slowMs: HEARTBEAT_SECONDS * 1500 };
        } else {
          const c = calls.find((x) => x.call === m.call);
          if (c) Object.assign(c, { end: Date.now(), ok: m.ok, affected: m.affected });
          // The same records changed twice. (A call that finds nothing left, after an attempt whose
          // environment died before it could record its success, is the idempotent redo, not a duplicate.)
          const effective = calls.filter((x) => x.ok && (x.affected ?? 0) > 0);
          if (m.ok && (m.affected ?? 0) > 0 && effective.length > 1) this.duplicated.push(`${key}: call ${String(m.call)} changed ${String(m.affected)} records after call ${String(effective[0]!.call)} had`);
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(answer));
      });
    });
    await new Promise<void>((ok) => this.#server!.listen(0, '127.0.0.1', ok));
    return `http://127.0.0.1:${String((this.#server.address() as AddressInfo).port)}`;
  }

  close(): Promise<void> {
    return new Promise((ok) => (this.#server ? this.#server.close(() => ok()) : ok()));
  }
}

const isFinal = (status: string) => isFinalRequestStatus(status as RequestStatus);
const subject = (i: number) => `chaos-${String(i)}@example.com`;
const canary = (i: number) => `canary-${String(i)}@example.com`;

/** Run the chaos suite and reconcile. Throws only when it cannot run; what went wrong is in the report. */
export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const say = options.progress ?? (() => undefined);
  const started = Date.now();
  const stateDir = mkdtempSync(join(tmpdir(), 'lethe-chaos-'));
  const source = 'chaos';
  const requestIds = Array.from({ length: options.requests }, (_, i) => requestIdFor({ source, sourceEventId: `erase-${String(i)}` }));
  const canaries = Math.max(5, Math.ceil(options.requests / 20));
  const everyone = [...requestIds.map((_, i) => subject(i)), ...Array.from({ length: canaries }, (_, i) => canary(i))];

  const oracle = new Oracle(options.seed, requestIds);
  const oracleUrl = await oracle.listen();
  const billing = await stripe();
  billing.customers.clear();
  everyone.forEach((email, i) => billing.customers.set(`cus_${String(i)}`, email));
  const support = await webhookService(WEBHOOK_SECRET);
  support.mode = 'sync';
  for (const email of everyone) support.records.set(email, ROWS.support);
  // The lake: JSON Lines in a versioned bucket, partitioned by person (so that only a person's own
  // erasure ever touches their object, and what a torn rewrite leaves only its retry can remove),
  // each object with an older version (the day before) holding them too.
  const versioned = await versionedS3Server();
  const lake = versioned.bucket(LAKE_BUCKET);
  for (const email of everyone) {
    lake.put(lakeKey(email), lakeRow(email, 0), 'application/x-ndjson');
    lake.put(lakeKey(email), lakeRow(email, 0) + lakeRow(email, 1), 'application/x-ndjson');
  }

  // The data map: five systems, one per connector kind; the source of truth last.
  const postgresUrl = process.env['LETHE_CHAOS_POSTGRES_URL'] ?? process.env['LETHE_TEST_POSTGRES_URL'];
  const configPath = join(stateDir, 'chaos.yaml');
  writeFileSync(
    configPath,
    `version: 1
identities: [email]
systems:
  accounts:
    connector: postgres
    identities: [email]
    dependsOn: [profiles, files, billing, support]
    concurrency: 4
    heartbeatSeconds: ${String(HEARTBEAT_SECONDS)}
    timeoutSeconds: 600
    maxAttempts: 8
    settings:
      connection: { url: { env: LETHE_CHAOS_POSTGRES_URL } }
      tables:
        - { name: chaos_accounts, match: [{ identity: email, column: email }] }
        - { name: chaos_orders, match: [{ column: account_id, via: { table: chaos_accounts, column: id } }] }
  profiles:
    connector: dynamodb
    identities: [email]
    concurrency: 4
    heartbeatSeconds: ${String(HEARTBEAT_SECONDS)}
    timeoutSeconds: 600
    maxAttempts: 8
    settings:
      tables: [{ table: chaos_profiles, partitionKey: id, lookups: [{ identity: email, attribute: email, index: byEmail }] }]
  files:
    connector: s3
    identities: [email]
    concurrency: 4
    heartbeatSeconds: ${String(HEARTBEAT_SECONDS)}
    timeoutSeconds: 600
    maxAttempts: 8
    settings: { bucket: lethe-chaos-files, objects: [{ prefix: 'files/{email}/' }] }
  billing:
    connector: http
    identities: [email]
    concurrency: 4
    heartbeatSeconds: ${String(HEARTBEAT_SECONDS)}
    timeoutSeconds: 600
    maxAttempts: 8
    settings: { vendor: stripe, baseUrl: '${billing.fake.url}', credentials: { secretKey: { env: LETHE_CHAOS_STRIPE_KEY } } }
  support:
    connector: webhook
    identities: [email]
    concurrency: 4
    heartbeatSeconds: ${String(HEARTBEAT_SECONDS)}
    timeoutSeconds: 600
    maxAttempts: 8
    settings: { url: '${support.url}', secret: { env: LETHE_CHAOS_WEBHOOK_SECRET }, callbackDeadlineSeconds: 600 }
  events:
    connector: lake
    identities: [email]
    concurrency: 4
    timeoutSeconds: 1800
    maxAttempts: 8
    settings:
      batch: { windowSeconds: 2 }
      tables: [{ bucket: ${LAKE_BUCKET}, prefix: events/, format: jsonl, columns: [{ identity: email, column: email }], partitions: [{ identity: email, key: email }] }]
`,
  );
  const secrets = { LETHE_CHAOS_STRIPE_KEY: billing.credentials.secretKey, LETHE_CHAOS_WEBHOOK_SECRET: WEBHOOK_SECRET };
  Object.assign(process.env, secrets, postgresUrl ? { LETHE_CHAOS_POSTGRES_URL: postgresUrl } : {});
  if (!postgresUrl) delete process.env['LETHE_CHAOS_POSTGRES_URL'];

  const logFile = join(stateDir, 'local.log');
  const log = createWriteStream(logFile);
  say(`local mode in ${stateDir}`);
  const local: LocalLethe = await startLocal({
    port: 0,
    dynamoDbPort: 0,
    stateDir,
    configPath,
    log,
    hooks: {
      preload: fileURLToPath(new URL('./faults.ts', import.meta.url)),
      environment: { LETHE_CHAOS_ORACLE: oracleUrl, LETHE_CHAOS_VERSIONED_S3: versioned.url, LETHE_CHAOS_LAKE_BUCKET: LAKE_BUCKET, ...secrets },
      deliveries: 3,
      interruptible: true,
    },
  });
  const { state } = local;
  const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
  const dynamo = DynamoDBDocumentClient.from(new DynamoDBClient({ endpoint: state.dynamoDbEndpoint, region: state.region, credentials }));
  const s3 = new S3Client({ endpoint: state.s3Endpoint, region: state.region, credentials, forcePathStyle: true });
  const sqs = new SQSClient({ endpoint: state.sqsEndpoint, region: state.region, credentials });
  const db = new pg.Client({ connectionString: postgresUrl ?? state.databases['LETHE_CHAOS_POSTGRES_URL'] });
  await db.connect();
  try {
    // Seed every system: each subject and each canary.
    await db.query(`DROP TABLE IF EXISTS chaos_orders; DROP TABLE IF EXISTS chaos_accounts;
      CREATE TABLE chaos_accounts (id SERIAL PRIMARY KEY, email TEXT NOT NULL);
      CREATE TABLE chaos_orders (id SERIAL PRIMARY KEY, account_id INT NOT NULL REFERENCES chaos_accounts(id));`);
    for (let i = 0; i < everyone.length; i += 500) {
      const slice = everyone.slice(i, i + 500);
      await db.query(`WITH a AS (INSERT INTO chaos_accounts (email) SELECT unnest($1::text[]) RETURNING id)
        INSERT INTO chaos_orders (account_id) SELECT id FROM a, generate_series(1, ${String(ROWS.orders)})`, [slice]);
    }
    for (let i = 0; i < everyone.length; i += 25) {
      const items = everyone.slice(i, i + 25).map((email, j) => ({ PutRequest: { Item: { id: `p-${String(i + j)}`, email } } }));
      await dynamo.send(new BatchWriteCommand({ RequestItems: { chaos_profiles: items } }));
    }
    await inBatches(everyone.flatMap((email) => ['a', 'b'].map((n) => ({ email, n }))), 32, ({ email, n }) =>
      s3.send(new PutObjectCommand({ Bucket: 'lethe-chaos-files', Key: `files/${email}/${n}.json`, Body: '{}' })),
    );

    // Submit, as a product backend would: at a steady rate, retrying what does not get an answer.
    const submitter = LetheApi.connect({ stateDir, role: 'SubmitterRole', apiUrl: undefined });
    const accepted = new Set<string>();
    const refused: string[] = [];
    let cut: Promise<void> | undefined;
    await inBatches(requestIds.map((id, i) => ({ id, i })), 16, async ({ id, i }) => {
      await sleep(Math.max(0, started + (i * 1000) / options.rate - Date.now()));
      if (i === Math.floor(options.requests * 0.4) && options.outageMs > 0) {
        say(`cutting off the SQS and S3 emulator for ${String(options.outageMs)} ms`);
        cut = local.interruptAws(options.outageMs);
      }
      const body = JSON.stringify({ type: 'erasure', regulation: 'gdpr', source, sourceEventId: `erase-${String(i)}`, identities: [{ type: 'email', value: subject(i) }] });
      for (let attempt = 1; ; attempt += 1) {
        const response = await submitter.fetch('/v1/requests', { method: 'POST', body }).catch(() => undefined);
        if (response && response.status < 300) {
          const answer = (await response.json()) as { requestId: string };
          if (answer.requestId === id) accepted.add(id);
          return;
        }
        if ((response && response.status < 500) || attempt === 10) {
          refused.push(`${id}: ${String(response?.status ?? 'no answer')}`);
          return;
        }
        await sleep(200 * attempt);
      }
    });
    await cut;
    say(`${String(accepted.size)} of ${String(options.requests)} accepted in ${String(Math.round((Date.now() - started) / 1000))} s; waiting for all to be final`);

    // Wait until every request is final (read from the table, 100 at a time).
    const statuses = new Map<string, string>();
    const deadline = Date.now() + options.timeoutMs;
    for (;;) {
      for (let i = 0; i < requestIds.length; i += 100) {
        const keys = requestIds.slice(i, i + 100).filter((id) => !isFinal(statuses.get(id) ?? '')).map((id) => ({ pk: `REQ#${id}`, sk: 'META' }));
        if (keys.length === 0) continue;
        const out = await dynamo.send(new BatchGetCommand({ RequestItems: { [state.requestsTable]: { Keys: keys, ProjectionExpression: 'requestId, #s', ExpressionAttributeNames: { '#s': 'status' } } } }));
        for (const item of out.Responses?.[state.requestsTable] ?? []) statuses.set(item['requestId'] as string, item['status'] as string);
      }
      const done = requestIds.filter((id) => isFinal(statuses.get(id) ?? '')).length;
      if (done === requestIds.length || Date.now() > deadline) break;
      say(`${String(done)} of ${String(requestIds.length)} final`);
      await sleep(2000);
    }

    // Reconcile, through the API a compliance team queries, and in the systems themselves.
    const lost: string[] = [...refused.map((r) => `not accepted: ${r}`)];
    const unexpected: string[] = [];
    const duplicated: string[] = [...oracle.duplicated];
    const compliance = LetheApi.connect({ stateDir, role: 'ComplianceRole', apiUrl: undefined });
    const outcomes: Record<string, number> = {};
    const expectedOutcomes: Record<string, number> = {};
    const alerts = readFileSync(join(stateDir, 'alerts.jsonl'), 'utf8').split('\n').filter(Boolean)
      .map((l) => (JSON.parse(l) as { message: { 'detail-type': string; detail: { requestId?: string; system?: string } } }).message)
      .filter((m) => m['detail-type'] === 'Privacy Task Failed')
      .map((m) => `${m.detail.requestId ?? ''}|${m.detail.system ?? ''}`);
    let injected = 0;
    let visible = 0;
    let alerted = 0;
    const remains = await remaining(db, dynamo, s3, billing.customers, support.records);
    const lakeRemains = lakeRemaining(lake, new Set(everyone.slice(0, requestIds.length)), everyone.slice(requestIds.length));
    unexpected.push(...lakeRemains.altered);
    await inBatches(requestIds.map((id, i) => ({ id, i })), 8, async ({ id, i }) => {
      const response = await compliance.fetch(`/v1/requests/${id}`);
      if (response.status !== 200) return void lost.push(`${id}: GET answered ${String(response.status)}`);
      const status = (await response.json()) as { status: string; systems: { system: string; action: string; status: TaskStatus; error?: { name: string; message: string } }[] };
      outcomes[status.status] = (outcomes[status.status] ?? 0) + 1;
      if (!isFinal(status.status)) lost.push(`${id}: still ${status.status}`);
      const expected: TaskStatus[] = [];
      for (const kind of KINDS) {
        const system = SYSTEMS[kind];
        const task = status.systems.find((s) => s.system === system && s.action === 'delete');
        const mustFail = oracle.failsPermanently(kind, id);
        expected.push(mustFail ? 'failed' : 'succeeded');
        if (!task) {
          unexpected.push(`${id}: no ${system} task`);
          continue;
        }
        if (mustFail) {
          injected += 1;
          if (task.status !== 'failed') unexpected.push(`${id}: ${system} ${task.status}, though its connector failed permanently`);
          if (task.error?.name === 'ConnectorPermanentError' && task.error.message.includes('chaos: injected permanent fault')) visible += 1;
          else unexpected.push(`${id}: ${system} failed without its cause (${JSON.stringify(task.error)})`);
          if (alerts.includes(`${id}|${system}`)) alerted += 1;
        } else if (task.status !== 'succeeded') {
          unexpected.push(`${id}: ${system} ${task.status} (${task.error ? `${task.error.name}: ${task.error.message}` : 'no error'})`);
        }
        // Gone where it succeeded (from the lake, from every version); the count Lethe reported is what was there.
        const left = (remains.get(`${system}|${subject(i)}`) ?? 0) + (kind === 'lake' ? (lakeRemains.rows.get(subject(i)) ?? 0) : 0);
        if (task.status === 'succeeded' && left > 0) lost.push(`${id}: ${system} says succeeded, ${String(left)} records remain`);
      }
      const outcome = outcomeOf(expected);
      expectedOutcomes[outcome] = (expectedOutcomes[outcome] ?? 0) + 1;
      if (status.status !== outcome && isFinal(status.status)) unexpected.push(`${id}: ${status.status}, expected ${outcome}`);
    });
    for (let i = 0; i < canaries; i += 1) {
      for (const system of Object.values(SYSTEMS)) {
        const want = system === 'accounts' ? ROWS.accounts + ROWS.orders : ROWS[system];
        const left = system === 'events' ? (lakeRemains.current.get(canary(i)) ?? 0) : (remains.get(`${system}|${canary(i)}`) ?? 0);
        if (left !== want) unexpected.push(`canary ${String(i)}: ${String(left)} of ${String(want)} records left in ${system}`);
      }
    }
    // The vendor's own view: no customer deleted twice. (A webhook task may be delivered again after
    // an attempt that died once the service had answered: the service deletes nothing the second
    // time, and the oracle's ledger, which sees what each delivery changed, judges it.)
    const deletes = new Map<string, number>();
    for (const c of billing.fake.calls.filter((c) => c.method === 'DELETE')) deletes.set(c.path, (deletes.get(c.path) ?? 0) + 1);
    for (const [path, n] of deletes) if (n > 1) duplicated.push(`billing: DELETE ${path} ${String(n)} times`);

    // The sequencer logs the last records within a few of its runs (every 5 s here).
    await sleep(15_000);
    const deadLetters = await deadLetterCount(sqs);
    if (deadLetters > 0) unexpected.push(`${String(deadLetters)} messages in dead-letter queues`);
    const audit = await verifyAudit(stateDir);
    if (!audit.ok) unexpected.push(...(audit.problems.length ? audit.problems : ['the audit log does not verify']).map((p) => `audit: ${p}`));
    // Nothing Lethe wrote down (its handlers' log, its events, its alerts) holds a subject's address.
    const written = ['local.log', 'events.jsonl', 'alerts.jsonl'].map((f) => readFileSync(join(stateDir, f), 'utf8')).join('\n');
    const leaks = (written.match(/(chaos|canary)-\d+@example\.com/g) ?? []).length;
    if (leaks > 0) unexpected.push(`${String(leaks)} e-mail addresses in what Lethe logged`);

    return {
      requests: options.requests,
      seed: options.seed,
      seconds: Math.round((Date.now() - started) / 1000),
      accepted: accepted.size,
      final: requestIds.filter((id) => isFinal(statuses.get(id) ?? '')).length,
      outcomes,
      expectedOutcomes,
      tasks: requestIds.length * KINDS.length,
      faults: oracle.faults,
      calls: [...oracle.ledger.values()].reduce((n, c) => n + c.length, 0),
      deliveries: 3,
      outageMs: options.outageMs,
      lost,
      duplicated,
      unexpected,
      permanentFailures: { injected, visible, alerted },
      deadLetters,
      audit: { ok: audit.ok, chains: audit.chains, leaves: audit.leaves },
      privacy: { leaks },
    };
  } finally {
    await db.end();
    await local.stop();
    await Promise.all([oracle.close(), billing.fake.close(), support.close(), versioned.close()]);
    log.end();
  }
}


const lakeKey = (email: string) => `events/email=${encodeURIComponent(email)}/part-0.jsonl`;
/** A lake row: a big integer and a decimal that a careless rewrite would not keep byte for byte. */
const lakeRow = (email: string, n: number) => `{"email":"${email}","n":${String(n)},"big":12345678901234567890,"price":1.50}\n`;

/**
 * The lake's rows per person: of the subjects, in any version of any object (`rows`); of
 * everyone, in current versions (`current`); and the canaries' objects whose versions are not
 * byte for byte as they were written (`altered`).
 */
function lakeRemaining(lake: VersionedStore, subjects: ReadonlySet<string>, canaries: readonly string[]): { rows: Map<string, number>; current: Map<string, number>; altered: string[] } {
  const rows = new Map<string, number>();
  const current = new Map<string, number>();
  for (const versions of lake.keys.values()) {
    versions.forEach((version, v) => {
      for (const line of version.body?.toString().split('\n').filter(Boolean) ?? []) {
        const email = (JSON.parse(line) as { email: string }).email;
        if (subjects.has(email)) rows.set(email, (rows.get(email) ?? 0) + 1);
        if (v === 0) current.set(email, (current.get(email) ?? 0) + 1);
      }
    });
  }
  const seeded = (email: string) => [lakeRow(email, 0) + lakeRow(email, 1), lakeRow(email, 0)];
  const altered = canaries.filter((email) => JSON.stringify(lake.bodies(lakeKey(email))) !== JSON.stringify(seeded(email))).map((email) => `lake: ${lakeKey(email)} (a canary's) changed`);
  return { rows, current, altered };
}

/** Records left per `<system>|<email>`, read from each system itself. */
async function remaining(
  db: pg.Client,
  dynamo: DynamoDBDocumentClient,
  s3: S3Client,
  customers: Map<string, string>,
  records: Map<string, number>,
): Promise<Map<string, number>> {
  const left = new Map<string, number>();
  const add = (system: string, email: string, n = 1) => left.set(`${system}|${email}`, (left.get(`${system}|${email}`) ?? 0) + n);
  const accounts = await db.query<{ email: string; n: string }>(
    'SELECT a.email, 1 + (SELECT count(*) FROM chaos_orders o WHERE o.account_id = a.id) AS n FROM chaos_accounts a',
  );
  for (const r of accounts.rows) add('accounts', r.email, Number(r.n));
  // Orders whose account is gone would be orphans: count them against nobody, so they show as lost nowhere but here.
  const orphans = await db.query<{ n: string }>('SELECT count(*) AS n FROM chaos_orders o WHERE NOT EXISTS (SELECT 1 FROM chaos_accounts a WHERE a.id = o.account_id)');
  if (Number(orphans.rows[0]?.n) > 0) add('accounts', 'orphaned orders', Number(orphans.rows[0]?.n));
  let start: Record<string, unknown> | undefined;
  do {
    const page = await dynamo.send(new ScanCommand({ TableName: 'chaos_profiles', ExclusiveStartKey: start }));
    for (const item of page.Items ?? []) add('profiles', item['email'] as string);
    start = page.LastEvaluatedKey;
  } while (start);
  let token: string | undefined;
  do {
    const page: ListObjectsV2CommandOutput = await s3.send(new ListObjectsV2Command({ Bucket: 'lethe-chaos-files', Prefix: 'files/', ContinuationToken: token }));
    for (const o of page.Contents ?? []) add('files', o.Key!.split('/')[1]!);
    token = page.NextContinuationToken;
  } while (token);
  for (const email of customers.values()) add('billing', email);
  for (const [email, n] of records) if (n > 0) add('support', email, n);
  return left;
}

/** Messages in the stack's dead-letter queues. */
async function deadLetterCount(sqs: SQSClient): Promise<number> {
  const { QueueUrls = [] } = await sqs.send(new ListQueuesCommand({}));
  let n = 0;
  for (const url of QueueUrls.filter((u) => /dlq|deadletter/i.test(u))) {
    const { Attributes } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }));
    n += Number(Attributes?.['ApproximateNumberOfMessages'] ?? 0) + Number(Attributes?.['ApproximateNumberOfMessagesNotVisible'] ?? 0);
  }
  return n;
}

/** `lethe audit verify --all`, as a user runs it, on local mode's state. */
async function verifyAudit(stateDir: string): Promise<{ ok: boolean; chains: number; leaves: number; problems: string[] }> {
  const run = promisify(execFile);
  const out = await run(process.execPath, ['cli/lethe.ts', 'audit', 'verify', '--all', '--json', '--state-dir', stateDir], { maxBuffer: 64 * 1024 * 1024 }).catch(
    (error: { stdout?: string }) => ({ stdout: error.stdout ?? '{}' }),
  );
  let parsed: unknown;
  try {
    parsed = JSON.parse(out.stdout || '{}');
  } catch {
    return { ok: false, chains: 0, leaves: 0, problems: [`lethe audit verify --json answered no JSON (${String(out.stdout.length)} characters)`] };
  }
  const result = parsed as { ok?: boolean; checked?: number; broken?: { requestId: string; problems: string[] }[]; log?: { leaves?: number; problems?: { where: string; problem: string }[] } };
  const problems = [
    ...(result.broken ?? []).flatMap((b) => b.problems.map((p) => `${b.requestId}: ${p}`)),
    ...(result.log?.problems ?? []).map((p) => `${p.where}: ${p.problem}`),
  ];
  return { ok: result.ok === true, chains: result.checked ?? 0, leaves: result.log?.leaves ?? 0, problems };
}

async function inBatches<T>(items: readonly T[], width: number, work: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

/** The reconciliation as a table. */
export function formatReport(r: ChaosReport): string {
  const row = (what: string, value: string | number) => `| ${what} | ${String(value)} |`;
  const count = (o: Record<string, number>) => Object.entries(o).sort().map(([k, v]) => `${k} ${String(v)}`).join(', ');
  return [
    `Chaos run: ${String(r.requests)} requests × ${String(KINDS.length)} systems, seed ${String(r.seed)}, ${String(r.seconds)} s`,
    '',
    '| | |',
    '| --- | --- |',
    row('accepted / final', `${String(r.accepted)} / ${String(r.final)}`),
    row('outcomes', count(r.outcomes)),
    row('outcomes the injected faults call for', count(r.expectedOutcomes)),
    row('connector calls (tasks)', `${String(r.calls)} (${String(r.tasks)})`),
    row('faults injected', `retryable ${String(r.faults.retryable)}, permanent ${String(r.faults.permanent)}, slower than the heartbeat ${String(r.faults.slow)}, environment killed mid-batch ${String(r.faults.crash)}, lake rewrite killed between its new version and the old one's delete ${String(r.faults.torn)}`),
    row('every SQS batch delivered', `${String(r.deliveries)} times at once`),
    row('SQS and S3 emulator cut off', `${String(r.outageMs)} ms, once`),
    row('**lost**', r.lost.length),
    row('**duplicated side effects**', r.duplicated.length),
    row('**unexpected**', r.unexpected.length),
    row('permanent failures visible with their cause / alerted', `${String(r.permanentFailures.visible)} / ${String(r.permanentFailures.alerted)} of ${String(r.permanentFailures.injected)}`),
    row('messages in dead-letter queues', r.deadLetters),
    row('audit log', `${r.audit.ok ? 'verifies' : 'DOES NOT VERIFY'}: ${String(r.audit.chains)} chains, ${String(r.audit.leaves)} leaves`),
    row('subject addresses in logs, events, alerts', r.privacy.leaks),
    ...[...r.lost.map((l) => `lost: ${l}`), ...r.duplicated.map((d) => `duplicated: ${d}`), ...r.unexpected.map((u) => `unexpected: ${u}`)].slice(0, 40).map((l) => `\n${l}`),
  ].join('\n');
}
