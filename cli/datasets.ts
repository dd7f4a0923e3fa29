import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { filterDataset, type IdentityColumn } from '../connectors/lake/filter.ts';
import type { PseudonymKey } from '../core/identity.ts';
import { LocalKeyService, parsePseudonymSecret } from '../functions/commons/keys.ts';
import type { RequestStore } from '../functions/commons/request-store.ts';
import { loadDataMap } from '../infra/data-map.ts';
import { localCredentials, readLocalState } from './local-state.ts';

const FILTER_USAGE = `usage: lethe filter-dataset <file> --out <file> --column <identity>=<column> [--column …]
                           [--format parquet|jsonl] [--state-dir <dir> | --table <name> --pseudonym-secret <arn>] [--json]

  Writes <file> without the rows of subjects who asked for erasure, or opted out and did not
  withdraw, for training or any other use. Rows are matched by pseudonym: each identity column's
  value is normalized and keyed-hashed as intake does, and looked up in the requests table's
  subject index; no identity leaves the file or this process. Parquet keeps every type and setting.
  Local mode's table and key by default (<state-dir>, default .lethe); a deployed stack's with
  --table and --pseudonym-secret, through the standard AWS credential chain.
  Prints counts only. Exit codes: 0 written, 2 usage or input error.`;

const DATASETS_USAGE = `usage: lethe datasets [--config <file>] [--state-dir <dir> | --table <name>] [--json]
       lethe datasets rebuilt <dataset> [--state-dir <dir> | --table <name>]

  Lists the data map's derived datasets with the number of subjects erased from their sources
  since each was last rebuilt (a Dataset Retrain Required event announces each new one).
  'rebuilt' records that a dataset was rebuilt without them, and starts its count again.`;

/** The requests table of local mode, or of a stack named by --table. */
async function storeFor(stateDir: string, table: string | undefined): Promise<RequestStore | string> {
  const local = table ? undefined : readLocalState(stateDir);
  if (!table && !local) return `no local mode state in ${stateDir}: start local mode (npm start), or give --table`;
  if (local) {
    // Local mode's DynamoDB, for the store's client, which reads its endpoint from the environment.
    process.env['AWS_ENDPOINT_URL_DYNAMODB'] ??= local.dynamoDbEndpoint;
    process.env['AWS_REGION'] ??= local.region;
    process.env['AWS_ACCESS_KEY_ID'] ??= localCredentials.accessKeyId;
    process.env['AWS_SECRET_ACCESS_KEY'] ??= localCredentials.secretAccessKey;
  }
  const { RequestStore } = await import('../functions/commons/request-store.ts');
  return new RequestStore(table ?? local!.requestsTable);
}

/** `lethe filter-dataset`. */
export async function filterDatasetCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      out: { type: 'string' },
      column: { type: 'string', multiple: true, default: [] },
      format: { type: 'string' },
      table: { type: 'string' },
      'pseudonym-secret': { type: 'string' },
      'state-dir': { type: 'string', default: process.env['LETHE_STATE_DIR'] ?? '.lethe' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(FILTER_USAGE);
    return 0;
  }
  const [input] = positionals;
  const columns: IdentityColumn[] = values.column.map((c) => {
    const [identity = '', column = ''] = c.split('=');
    return { identity, column };
  });
  const format = values.format ?? (input && /\.jsonl?(\.gz)?$|\.ndjson(\.gz)?$/.test(input) ? 'jsonl' : 'parquet');
  const problems = [
    ...(input && positionals.length === 1 ? [] : ['give one input file']),
    ...(values.out ? [] : ['give --out']),
    ...(columns.length > 0 && columns.every((c) => /^[a-z][a-z0-9_]{1,63}$/.test(c.identity) && c.column) ? [] : ['give --column <identity>=<column>, e.g. --column email=user_email']),
    ...(format === 'parquet' || format === 'jsonl' ? [] : ['--format is parquet or jsonl']),
    ...(values.table && !values['pseudonym-secret'] ? ['--table needs --pseudonym-secret (the stack\'s pseudonym key secret)'] : []),
  ];
  if (problems.length > 0) {
    console.error(`lethe filter-dataset: ${problems.join('; ')}\n\n${FILTER_USAGE}`);
    return 2;
  }
  const store = await storeFor(values['state-dir'], values.table);
  if (typeof store === 'string') {
    console.error(`lethe filter-dataset: ${store}`);
    return 2;
  }
  const key: PseudonymKey = values['pseudonym-secret']
    ? parsePseudonymSecret((await new SecretsManagerClient({}).send(new GetSecretValueCommand({ SecretId: values['pseudonym-secret'] }))).SecretString)
    : await LocalKeyService.fromFile(join(values['state-dir'], 'keys.json')).pseudonymKey();
  const suppressed = await store.suppressedSubjects();
  const result = filterDataset(new Uint8Array(readFileSync(input!)), format as 'parquet' | 'jsonl', columns, suppressed, key);
  writeFileSync(values.out!, result.bytes);
  const summary = { kept: result.kept, removed: result.removed, suppressedSubjects: suppressed.size };
  if (values.json) console.log(JSON.stringify(summary));
  else console.log(`${values.out!}: kept ${String(result.kept)} rows, removed ${String(result.removed)} of subjects who asked for erasure or opted out (${String(suppressed.size)} such subjects known)`);
  return 0;
}

/** `lethe datasets` and `lethe datasets rebuilt <name>`. */
export async function datasetsCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', default: process.env['LETHE_CONFIG'] ?? 'lethe.config.yaml' },
      table: { type: 'string' },
      'state-dir': { type: 'string', default: process.env['LETHE_STATE_DIR'] ?? '.lethe' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(DATASETS_USAGE);
    return 0;
  }
  const datasets = loadDataMap(values.config).datasets ?? [];
  const [verb, name] = positionals;
  if ((verb !== undefined && verb !== 'rebuilt') || (verb === 'rebuilt' && (!name || !datasets.some((d) => d.name === name)))) {
    console.error(`lethe datasets: ${verb === 'rebuilt' ? `no dataset ${name ?? ''} in ${values.config}` : `unknown command ${verb ?? ''}`}\n\n${DATASETS_USAGE}`);
    return 2;
  }
  const store = await storeFor(values['state-dir'], values.table);
  if (typeof store === 'string') {
    console.error(`lethe datasets: ${store}`);
    return 2;
  }
  if (verb === 'rebuilt') {
    await store.datasetRebuilt(name!, new Date().toISOString());
    console.log(`${name!}: rebuilt; its count starts again`);
    return 0;
  }
  const states = await Promise.all(datasets.map(async (d) => ({ ...d, ...(await store.datasetState(d.name)) })));
  if (values.json) {
    console.log(JSON.stringify(states, null, 2));
    return 0;
  }
  if (states.length === 0) console.log(`no datasets in ${values.config}`);
  for (const d of states) {
    const state = d.subjects > 0 ? `${String(d.subjects)} ${d.subjects === 1 ? 'subject' : 'subjects'} erased from its sources since ${d.since ?? '?'}: rebuild it` : 'up to date';
    console.log(`  ${d.name.padEnd(24)} ${d.kind.padEnd(14)} from ${d.derivedFrom.join(', ')}: ${state}`);
  }
  return 0;
}
