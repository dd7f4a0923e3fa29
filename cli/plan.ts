import { AthenaClient } from '@aws-sdk/client-athena';
import { CognitoIdentityProviderClient } from '@aws-sdk/client-cognito-identity-provider';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { parseArgs } from 'node:util';
import { connectorFor } from '../connectors/index.ts';
import { ValidationError } from '../core/errors.ts';
import { normalizeIdentities, type Identity } from '../core/identity.ts';
import { describeNearMisses, nearMissTotal, type NearMisses } from '../core/near-miss.ts';
import { planStages, unreachableSystems } from '../core/plan.ts';
import { REQUEST_TYPES, type RequestType } from '../core/request.ts';
import { loadDataMap } from '../infra/data-map.ts';
import { localCredentials, readLocalState } from './local-state.ts';

const USAGE = `usage: lethe plan --type <type> (--email <e> | --phone <p> | --user-id <id> | --identity <type>=<value>)... [--config <file>] [--state-dir <dir>] [--json]

  Shows, without changing anything, what a request would do: each stage, each system, its action
  and how many records it would touch (linked identities are read, as the saga reads them first).
  Types: ${REQUEST_TYPES.join(', ')}. Prints identity types and counts, never values. Reads the
  systems through local mode when it runs (<state-dir>/local.json), else through your AWS
  credentials.`;

interface Line {
  readonly stage: number;
  readonly system: string;
  readonly action: string;
  /** null: the system cannot count them before it acts (a vendor without a lookup, a webhook service). */
  readonly records: number | null;
  readonly linked?: Record<string, number>;
  /** What the wider net finds that the action would not match, by reason: these would end the task needs_review. */
  readonly nearMisses?: NearMisses;
  /** How the system matches: which index serves a case-insensitive match. */
  readonly notes?: string[];
}

/** `lethe plan`. Exit codes: 0 planned, 2 usage, input or setup error. */
export async function plan(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      type: { type: 'string' },
      email: { type: 'string', multiple: true, default: [] },
      phone: { type: 'string', multiple: true, default: [] },
      'user-id': { type: 'string', multiple: true, default: [] },
      identity: { type: 'string', multiple: true, default: [] },
      config: { type: 'string', default: process.env['LETHE_CONFIG'] ?? 'lethe.config.yaml' },
      'state-dir': { type: 'string', default: process.env['LETHE_STATE_DIR'] ?? '.lethe' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const type = values.type as RequestType | undefined;
  const given: Identity[] = [
    ...values.email.map((value) => ({ type: 'email', value })),
    ...values.phone.map((value) => ({ type: 'phone', value })),
    ...values['user-id'].map((value) => ({ type: 'user_id', value })),
    ...values.identity.map((pair) => ({ type: pair.split('=')[0] ?? '', value: pair.slice(pair.indexOf('=') + 1) })),
  ];
  const badType = given.find((i) => !/^[a-z][a-z0-9_]{1,63}$/.test(i.type));
  if (positionals.length > 0 || !type || !REQUEST_TYPES.includes(type) || given.length === 0 || badType) {
    console.error(USAGE);
    return 2;
  }
  let identities: Identity[];
  try {
    identities = normalizeIdentities(given);
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    console.error(`lethe plan: ${error.message}`);
    return 2;
  }

  const dataMap = loadDataMap(values.config);
  const local = readLocalState(values['state-dir']);
  // Local mode's databases (its PGlite servers, or the servers it was given) for connection variables not set here.
  for (const [name, url] of Object.entries(local?.databases ?? {})) process.env[name] ??= url;
  const aws = (endpoint: string) => (local ? { endpoint, region: local.region, credentials: localCredentials } : {});
  const clients = {
    dynamo: DynamoDBDocumentClient.from(new DynamoDBClient(aws(local?.dynamoDbEndpoint ?? ''))),
    s3: () => new S3Client({ ...aws(local?.s3Endpoint ?? ''), forcePathStyle: Boolean(local) }),
    cognito: () => new CognitoIdentityProviderClient({}),
    athena: () => new AthenaClient({}),
    secret: async (arn: string) => (await new SecretsManagerClient({}).send(new GetSecretValueCommand({ SecretId: arn }))).SecretString,
    parameter: async (name: string) =>
      (await new SSMClient({}).send(new GetParameterCommand({ Name: name, WithDecryption: true }))).Parameter?.Value,
  };
  const systems = new Map(dataMap.systems.map((s) => [s.name, s]));
  const connectorOf = (name: string) => connectorFor(systems.get(name)!, clients);

  const lines: Line[] = [];
  const stages = planStages(type, dataMap, [...new Set(identities.map((i) => i.type))]);
  for (const [index, stage] of stages.entries()) {
    if (stage.kind === 'resolve') {
      const found: Identity[] = [];
      for (const system of stage.systems) {
        const linked = await (await connectorOf(system)).resolve(identities);
        found.push(...linked);
        const byType: Record<string, number> = {};
        for (const l of linked) byType[l.type] = (byType[l.type] ?? 0) + 1;
        lines.push({ stage: index + 1, system, action: 'resolve', records: linked.length, linked: byType });
      }
      identities = [...identities, ...found];
    } else {
      for (const { system, action } of stage.tasks) {
        const command = { requestId: 'plan', action, identities, keyedHash: () => '' };
        const connector = await connectorOf(system);
        const verification = connector.describe().counts === false ? undefined : await connector.verify(command);
        const notes = (await connector.notes?.()) ?? [];
        lines.push({
          stage: index + 1,
          system,
          action,
          records: verification?.remaining ?? null,
          ...(nearMissTotal(verification?.nearMisses) > 0 && { nearMisses: verification!.nearMisses! }),
          ...(notes.length > 0 && { notes }),
        });
      }
    }
  }
  const unreachable = unreachableSystems(type, dataMap, [...new Set(identities.map((i) => i.type))]);

  if (values.json) {
    console.log(JSON.stringify({ type, stages: lines, unreachable, changed: false }, null, 2));
    return 0;
  }
  console.log(`Plan for ${type} of ${[...new Set(given.map((i) => i.type))].join(', ')} (nothing will be changed):`);
  if (lines.length === 0) console.log('  no system has anything to do for this request type');
  for (const l of lines) {
    const what =
      l.records === null
        ? 'records not counted here: the system reports its count when it acts'
        : l.action === 'resolve'
          ? `${String(l.records)} linked ${l.records === 1 ? 'identity' : 'identities'}${l.records ? ` (${Object.entries(l.linked ?? {}).map(([t, n]) => `${t}: ${String(n)}`).join(', ')})` : ''}`
          : `${l.action === 'lift' ? 'at most ' : ''}${String(l.records)} ${l.records === 1 ? 'record' : 'records'}${l.action === 'lift' ? ' (a lift undoes only what Lethe restricted)' : ''}`;
    console.log(`  stage ${String(l.stage)}  ${l.action.padEnd(9)} ${l.system.padEnd(20)} ${what}`);
    if (l.nearMisses) console.log(`           needs review after it: ${describeNearMisses(l.nearMisses)}`);
    for (const note of l.notes ?? []) console.log(`           ${note}`);
  }
  if (unreachable.length) console.log(`  not reached by these identities: ${unreachable.join(', ')}`);
  return 0;
}
