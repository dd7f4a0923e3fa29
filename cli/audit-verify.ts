import { DynamoDBClient, GetItemCommand, paginateQuery, paginateScan } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { verifyChain, type AuditRecord } from '../core/audit.ts';
import { recordKey, UNLOGGED_INDEX, UNLOGGED_SHARDS, verifyLog } from '../core/log.ts';
import { p256PublicKey } from '../core/signing.ts';
import { auditPrefix, readAuditLog, readAuditRecords } from '../functions/commons/audit-log.ts';
import { LocalReceiptSigner } from '../functions/commons/receipts.ts';
import { localCredentials, readLocalState } from './local-state.ts';

const USAGE = `usage: lethe audit verify --request <id> | --all [--since <date>] [--until <date>]
                          [--known-head <file>]... [--bucket <name> --table <name> --public-key <key.pem>]
                          [--endpoint <url>] [--state-dir <dir>] [--json]

  Verifies the audit store and says where it was altered. Exits 0 when all is intact, 1 when
  anything is broken or missing, 2 on a usage error.

  --request <id>  that request's hash chain, against the chain head the requests table recorded,
                  and the audit log: each of its records is a leaf (or waiting to become one).
  --all           every request's chain, or those received from --since until before --until
                  (ISO dates): every request the table knows and every chain the bucket holds, so
                  a deleted chain and a chain of no request are found too.

  Both check the whole audit log: each batch of leaves follows the one before, names records the
  bucket holds with their hashes; each tree head is signed by the receipt key, has the root of
  the leaves before it, and is consistent with the head before it; the newest is the one the
  table recorded; and every record is a leaf or waiting to be one.

  --known-head <file>  a tree head kept outside the bucket (a tree head JSON, or a receipt, whose
                  tree head is taken): the log must be consistent with it (RFC 9162 consistency
                  proof), so a log rewritten and re-signed since is found. Repeatable.

  Without --bucket it reads local mode's state (<state-dir>/local.json, default .lethe) and key.
  With --bucket, --table and --public-key (lethe receipt public-key) it reads them in AWS through
  the standard credential chain (--endpoint overrides the S3 endpoint).`;

/** `lethe audit verify`. Exit codes: 0 intact, 1 broken or missing, 2 usage or setup error. */
export async function auditVerify(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      request: { type: 'string' },
      all: { type: 'boolean', default: false },
      since: { type: 'string' },
      until: { type: 'string' },
      bucket: { type: 'string' },
      table: { type: 'string' },
      'public-key': { type: 'string' },
      'known-head': { type: 'string', multiple: true, default: [] },
      endpoint: { type: 'string' },
      'state-dir': { type: 'string', default: process.env['LETHE_STATE_DIR'] ?? '.lethe' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const period = { since: values.since, until: values.until };
  const badDate = [period.since, period.until].find((d) => d !== undefined && Number.isNaN(Date.parse(d)));
  if (positionals.length > 0 || (!values.request === !values.all) || badDate !== undefined || (!values.all && (period.since ?? period.until))) {
    console.error(badDate === undefined ? USAGE : `lethe audit verify: ${badDate} is not a date\n\n${USAGE}`);
    return 2;
  }
  const target = await resolveTarget(values);
  if (typeof target === 'string') {
    console.error(target);
    return 2;
  }
  const known: { source: string; head: unknown }[] = [];
  for (const file of values['known-head']) {
    try {
      const saved = JSON.parse(readFileSync(file, 'utf8')) as { log?: { treeHead?: unknown } };
      known.push({ source: file, head: saved.log?.treeHead ?? saved });
    } catch (error) {
      console.error(`lethe audit verify: cannot read ${file} as JSON (${(error as Error).name})`);
      return 2;
    }
  }
  // Records first, then what waits to be logged, then the log: a record the sequencer takes meanwhile is in the log read last.
  const { chains, records } = await readAuditRecords(target.s3, target.bucket);
  const pending = await readPending(target.dynamo, target.table);
  const log = verifyLog({ ...(await readAuditLog(target.s3, target.bucket)), records, pending, latest: await readLatest(target.dynamo, target.table), publicKey: target.publicKey, known });
  const requestId = values.request?.toLowerCase();
  const logProblems = requestId === undefined ? log.problems : log.problems.filter((p) => !p.where.startsWith('audit/') || p.where.startsWith(auditPrefix(requestId)));
  const { checked, broken } = requestId === undefined ? await verifyAll(target, chains, period) : await verifyOne(target, chains, requestId);
  const ok = broken.length === 0 && logProblems.length === 0;
  if (values.json) {
    console.log(
      JSON.stringify(
        { ok, checked, broken, log: { leaves: log.leaves, heads: log.heads, treeSize: log.latest?.treeSize ?? 0, rootHash: log.latest?.rootHash ?? null, ok: logProblems.length === 0, problems: logProblems } },
        null,
        2,
      ),
    );
    return ok ? 0 : 1;
  }
  for (const b of broken) {
    console.error(`audit chain of ${b.requestId}: BROKEN`);
    for (const p of b.problems) console.error(`  ${p}`);
  }
  if (requestId !== undefined && broken.length === 0) {
    const last = chains.get(requestId)?.at(-1);
    console.log(`audit chain of ${requestId}: ${String(chains.get(requestId)?.length ?? 0)} records, intact (head ${last?.hash.slice(0, 16) ?? ''}…, last event ${last?.event ?? ''})`);
  } else if (requestId === undefined) {
    const line = `${String(checked)} audit chains checked: ${broken.length === 0 ? 'all intact' : `${String(broken.length)} broken`}`;
    if (broken.length === 0) console.log(line);
    else console.error(line);
  }
  const newest = log.latest ? `, newest of ${String(log.latest.treeSize)} leaves (root ${log.latest.rootHash.slice(0, 16)}…, ${log.latest.timestamp})` : '';
  const summary = `audit log: ${String(log.leaves)} leaves, ${String(log.heads)} signed tree heads${newest}, ${String(pending.size)} records waiting to be logged`;
  if (logProblems.length === 0) console.log(`${summary}: intact`);
  else {
    console.error(`${summary}: BROKEN`);
    for (const p of logProblems) console.error(`  ${p.where}: ${p.problem}`);
  }
  return ok ? 0 : 1;
}

type Target = Exclude<Awaited<ReturnType<typeof resolveTarget>>, string>;
type Chains = ReadonlyMap<string, AuditRecord[]>;
type Broken = { requestId: string; problems: string[] }[];

const chainProblems = (requestId: string, records: readonly AuditRecord[], head: { seq: number; hash: string } | undefined) =>
  verifyChain(requestId, records, head).map((p) => `${recordKey(requestId, p.at)}: ${p.problem}`);

async function verifyOne(target: Target, chains: Chains, requestId: string): Promise<{ checked: number; broken: Broken }> {
  const problems = chainProblems(requestId, chains.get(requestId) ?? [], await readHead(target.dynamo, target.table, requestId));
  return { checked: 1, broken: problems.length > 0 ? [{ requestId, problems }] : [] };
}

/**
 * Every chain at once: the requests the table knows (with when they were received) and the chains
 * the bucket holds, each verified against its recorded head. Reads the table with a Scan: an
 * auditor's occasional check, not a request path.
 */
async function verifyAll(target: Target, chains: Chains, period: { since?: string | undefined; until?: string | undefined }): Promise<{ checked: number; broken: Broken }> {
  const known = new Map<string, { receivedAt: string; head?: { seq: number; hash: string } }>();
  for await (const page of paginateScan(
    { client: target.dynamo },
    { TableName: target.table, FilterExpression: 'sk = :meta', ExpressionAttributeValues: { ':meta': { S: 'META' } }, ProjectionExpression: 'requestId, receivedAt, auditSeq, auditHead', ConsistentRead: true },
  )) {
    for (const item of page.Items ?? []) {
      const seq = item['auditSeq']?.N;
      const hash = item['auditHead']?.S;
      if (!item['requestId']?.S) continue;
      known.set(item['requestId'].S, { receivedAt: item['receivedAt']?.S ?? '', ...(seq && hash ? { head: { seq: Number(seq), hash } } : {}) });
    }
  }
  const inPeriod = (at: string) => (!period.since || at >= new Date(period.since).toISOString()) && (!period.until || at < new Date(period.until).toISOString());
  const broken: Broken = [];
  let checked = 0;
  for (const requestId of [...new Set([...known.keys(), ...chains.keys()])].sort()) {
    const request = known.get(requestId);
    const records = chains.get(requestId) ?? [];
    if (!inPeriod(request?.receivedAt ?? records[0]?.at ?? '')) continue;
    checked += 1;
    const problems = chainProblems(requestId, records, request?.head);
    if (!request) problems.unshift('the bucket holds a chain for a request the table does not know');
    if (problems.length > 0) broken.push({ requestId, problems });
  }
  return { checked, broken };
}

/** Object keys of the records Lethe has staged and not yet logged: the Unlogged index, every shard. */
async function readPending(dynamo: DynamoDBClient, table: string): Promise<Set<string>> {
  const pending = new Set<string>();
  for (let shard = 0; shard < UNLOGGED_SHARDS; shard += 1) {
    for await (const page of paginateQuery(
      { client: dynamo },
      { TableName: table, IndexName: UNLOGGED_INDEX, KeyConditionExpression: '#shard = :s', ExpressionAttributeNames: { '#shard': 'unlogged' }, ExpressionAttributeValues: { ':s': { S: `U#${String(shard)}` } } },
    )) {
      for (const item of page.Items ?? []) {
        const [, requestId, seq] = (item['unloggedAt']?.S ?? '').split('#');
        if (requestId && seq) pending.add(recordKey(requestId, Number(seq)));
      }
    }
  }
  return pending;
}

/** The newest tree head Lethe recorded publishing. */
async function readLatest(dynamo: DynamoDBClient, table: string): Promise<{ treeSize: number; rootHash: string } | undefined> {
  const out = await dynamo.send(new GetItemCommand({ TableName: table, Key: { pk: { S: 'LOG' }, sk: { S: 'HEAD' } }, ProjectionExpression: 'treeHead', ConsistentRead: true }));
  const head = out.Item?.['treeHead']?.M;
  return head?.['treeSize']?.N && head['rootHash']?.S ? { treeSize: Number(head['treeSize'].N), rootHash: head['rootHash'].S } : undefined;
}

/** The chain head Lethe recorded for the request, if the request exists. */
async function readHead(dynamo: DynamoDBClient, table: string, requestId: string) {
  const out = await dynamo.send(
    new GetItemCommand({
      TableName: table,
      Key: { pk: { S: `REQ#${requestId}` }, sk: { S: 'META' } },
      ProjectionExpression: 'auditSeq, auditHead',
      ConsistentRead: true,
    }),
  );
  const seq = out.Item?.['auditSeq']?.N;
  const hash = out.Item?.['auditHead']?.S;
  return seq && hash ? { seq: Number(seq), hash } : undefined;
}

async function resolveTarget(options: { bucket?: string | undefined; table?: string | undefined; endpoint?: string | undefined; 'public-key'?: string | undefined; 'state-dir': string }) {
  const { bucket, table, endpoint } = options;
  const keyFile = options['public-key'];
  let pem: string;
  let place: { bucket: string; table: string; s3: S3Client; dynamo: DynamoDBClient };
  if (bucket || table) {
    if (!bucket || !table || !keyFile) return 'name --bucket (the audit bucket), --table (the requests table) and --public-key (the receipt key, PEM)';
    place = { bucket, table, s3: new S3Client(endpoint ? { endpoint, forcePathStyle: true } : {}), dynamo: new DynamoDBClient({}) };
  } else {
    const state = readLocalState(options['state-dir']);
    if (!state) return `no --bucket given and no local mode state in ${options['state-dir']}: start local mode (npm start) or name the audit bucket`;
    place = {
      bucket: state.auditBucket,
      table: state.requestsTable,
      s3: new S3Client({ endpoint: endpoint ?? state.s3Endpoint, region: state.region, forcePathStyle: true, credentials: localCredentials }),
      dynamo: new DynamoDBClient({ endpoint: state.dynamoDbEndpoint, region: state.region, credentials: localCredentials }),
    };
  }
  try {
    pem = keyFile ? readFileSync(keyFile, 'utf8') : await LocalReceiptSigner.fromFile(join(options['state-dir'], 'receipt-key.pem')).publicKeyPem();
  } catch (error) {
    return `cannot read the public key (${(error as Error).message})`;
  }
  const publicKey = p256PublicKey(pem);
  if (typeof publicKey === 'string') return publicKey;
  return { ...place, publicKey };
}
