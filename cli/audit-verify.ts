import { DynamoDBClient, GetItemCommand, paginateScan } from '@aws-sdk/client-dynamodb';
import { paginateListObjectsV2, S3Client } from '@aws-sdk/client-s3';
import { parseArgs } from 'node:util';
import { verifyChain } from '../core/audit.ts';
import { readAuditChain } from '../functions/commons/audit-log.ts';
import { readLocalState } from './local-state.ts';

const USAGE = `usage: lethe audit verify --request <id> | --all [--since <date>] [--until <date>]
                          [--bucket <name> --table <name>] [--endpoint <url>] [--state-dir <dir>] [--json]

  Verifies the hash chain of one request's audit records against the chain head recorded in the
  requests table, and exits 0 when it is intact, 1 when it is broken or missing, 2 on a usage
  error. --all verifies every request's chain, or those received from --since until before
  --until (ISO dates): every request the table knows, and every chain the bucket holds, so a
  deleted chain and a chain of no request are found too. Without --bucket it reads local mode's state (<state-dir>/local.json, default .lethe);
  with --bucket and --table it reads them in AWS through the standard credential chain
  (--endpoint overrides the S3 endpoint).`;

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
  const target = resolveTarget(values.bucket, values.table, values.endpoint, values['state-dir']);
  if (typeof target === 'string') {
    console.error(target);
    return 2;
  }
  if (values.all) return verifyAll(target, period, values.json);
  const requestId = (values.request ?? '').toLowerCase();
  const records = await readAuditChain(target.s3, target.bucket, requestId);
  const head = await readHead(target.dynamo, target.table, requestId);
  const problems = verifyChain(requestId, records, head);
  if (values.json) {
    console.log(JSON.stringify({ requestId, records: records.length, ok: problems.length === 0, problems }, null, 2));
  } else if (problems.length === 0) {
    const last = records.at(-1);
    console.log(`audit chain of ${requestId}: ${String(records.length)} records, intact (head ${last?.hash.slice(0, 16) ?? ''}…, last event ${last?.event ?? ''})`);
  } else {
    console.error(`audit chain of ${requestId}: BROKEN (${String(records.length)} records)`);
    for (const p of problems) console.error(`  record #${String(p.index + 1)} (expected seq ${String(p.expectedSeq)}): ${p.problem}`);
  }
  return problems.length === 0 ? 0 : 1;
}

type Target = Exclude<ReturnType<typeof resolveTarget>, string>;

/**
 * Every chain at once: the requests the table knows (with when they were received) and the chains
 * the bucket holds, each verified against its recorded head. Reads the table with a Scan: an
 * auditor's occasional check, not a request path.
 */
async function verifyAll(target: Target, period: { since?: string | undefined; until?: string | undefined }, json: boolean): Promise<number> {
  const known = new Map<string, { receivedAt: string; head?: { seq: number; hash: string } }>();
  for await (const page of paginateScan(
    { client: target.dynamo },
    { TableName: target.table, FilterExpression: 'sk = :meta', ExpressionAttributeValues: { ':meta': { S: 'META' } }, ProjectionExpression: 'requestId, receivedAt, auditSeq, auditHead', ConsistentRead: true },
  )) {
    for (const item of page.Items ?? []) {
      const seq = item['auditSeq']?.N;
      const hash = item['auditHead']?.S;
      known.set(item['requestId']!.S!, { receivedAt: item['receivedAt']?.S ?? '', ...(seq && hash ? { head: { seq: Number(seq), hash } } : {}) });
    }
  }
  const stored = new Set<string>();
  for await (const page of paginateListObjectsV2({ client: target.s3 }, { Bucket: target.bucket, Prefix: 'audit/', Delimiter: '/' })) {
    for (const p of page.CommonPrefixes ?? []) if (p.Prefix) stored.add(p.Prefix.slice('audit/'.length, -1));
  }
  const inPeriod = (at: string) => (!period.since || at >= new Date(period.since).toISOString()) && (!period.until || at < new Date(period.until).toISOString());
  const broken: { requestId: string; problems: string[] }[] = [];
  let checked = 0;
  for (const requestId of [...new Set([...known.keys(), ...stored])].sort()) {
    const request = known.get(requestId);
    const records = stored.has(requestId) ? await readAuditChain(target.s3, target.bucket, requestId) : [];
    if (!inPeriod(request?.receivedAt ?? records[0]?.at ?? '')) continue;
    checked += 1;
    const problems = verifyChain(requestId, records, request?.head).map((p) => `record #${String(p.index + 1)} (expected seq ${String(p.expectedSeq)}): ${p.problem}`);
    if (!request) problems.unshift('the bucket holds a chain for a request the table does not know');
    if (problems.length > 0) broken.push({ requestId, problems });
  }
  if (json) console.log(JSON.stringify({ checked, ok: broken.length === 0, broken }, null, 2));
  else {
    for (const b of broken) {
      console.error(`audit chain of ${b.requestId}: BROKEN`);
      for (const p of b.problems) console.error(`  ${p}`);
    }
    const line = `${String(checked)} audit chains checked: ${broken.length === 0 ? 'all intact' : `${String(broken.length)} broken`}`;
    if (broken.length === 0) console.log(line);
    else console.error(line);
  }
  return broken.length === 0 ? 0 : 1;
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

function resolveTarget(bucket: string | undefined, table: string | undefined, endpoint: string | undefined, stateDir: string) {
  if (bucket || table) {
    if (!bucket || !table) return 'name both --bucket (the audit bucket) and --table (the requests table)';
    return { bucket, table, s3: new S3Client(endpoint ? { endpoint, forcePathStyle: true } : {}), dynamo: new DynamoDBClient({}) };
  }
  const state = readLocalState(stateDir);
  if (!state) {
    return `no --bucket given and no local mode state in ${stateDir}: start local mode (npm start) or name the audit bucket`;
  }
  const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
  return {
    bucket: state.auditBucket,
    table: state.requestsTable,
    s3: new S3Client({ endpoint: endpoint ?? state.s3Endpoint, region: state.region, forcePathStyle: true, credentials }),
    dynamo: new DynamoDBClient({ endpoint: state.dynamoDbEndpoint, region: state.region, credentials }),
  };
}
