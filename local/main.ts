import { createWriteStream, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PassThrough } from 'node:stream';
import { startLocal, type LocalLethe } from './runtime.ts';

/**
 * `npm start`: Lethe on this machine. Ctrl-C stops everything it started.
 *   LETHE_PORT            API port on 127.0.0.1 (default 3000)
 *   LETHE_DYNAMODB_PORT   DynamoDB Local's port (default: any free one)
 *   LETHE_STATE_DIR       keys, handler log and local.json (default .lethe)
 *   LETHE_CONFIG          the data map (default lethe.config.yaml)
 *   LETHE_VERBOSE=1       also print the handlers' logs here
 */
const port = Number(process.env['LETHE_PORT'] ?? 3000);
const stateDir = resolve(process.env['LETHE_STATE_DIR'] ?? '.lethe');
const logPath = join(stateDir, 'local.log');
const verbose = process.env['LETHE_VERBOSE'] === '1';

mkdirSync(stateDir, { recursive: true, mode: 0o700 });
const file = createWriteStream(logPath, { flags: 'a' });
const log = new PassThrough();
log.pipe(file);
if (verbose) log.pipe(process.stdout);

const started = Date.now();
console.log('Lethe local mode: starting DynamoDB Local, fauxqs and the synthesized stack...');
let lethe: LocalLethe;
try {
  lethe = await startLocal({
    port,
    dynamoDbPort: Number(process.env['LETHE_DYNAMODB_PORT'] ?? 0),
    stateDir,
    configPath: process.env['LETHE_CONFIG'] ?? 'lethe.config.yaml',
    log,
    onExecution: (change) => {
      if (change.status !== 'RUNNING') console.log(`saga ${change.name}: ${change.status.toLowerCase()}${change.error ? ` (${change.error})` : ''}`);
    },
  });
} catch (error) {
  console.error(`Lethe local mode could not start: ${(error as Error).message}`);
  process.exit(1);
}

const { apiUrl } = lethe.state;
const submitter = lethe.state.credentials['SubmitterRole'];
console.log(`
Lethe is running on ${apiUrl} (ready in ${String(Math.round((Date.now() - started) / 100) / 10)} s)
  systems:  ${lethe.dataMap.systems.map((s) => `${s.name} (${s.connector})`).join(', ')}
  logs:     ${logPath}   (LETHE_VERBOSE=1 to print them here)

Forget someone (the sample systems hold ada@example.com and grace@example.com) and follow it:

  npx lethe submit --type erasure --regulation gdpr --identity email=ada@example.com --watch

The API checks SigV4 signatures and the stack's roles, as API Gateway does. Local keys per role
are in ${join(stateDir, 'credentials.json')} (and, as AWS profiles lethe-compliance, lethe-operator
and lethe-submitter, in ${join(stateDir, 'aws-credentials')}). With curl, as the submitter:

  curl -s --aws-sigv4 aws:amz:${lethe.state.region}:execute-api --user "${submitter?.accessKeyId ?? '<key>'}:${submitter?.secretAccessKey ?? '<secret>'}" \\
    -X POST ${apiUrl}/v1/requests -H 'content-type: application/json' \\
    -d '{"type":"erasure","regulation":"gdpr","identities":[{"type":"email","value":"grace@example.com"}]}'

See every request, its systems and deadlines: ${apiUrl}/dashboard/   (or npx lethe list, npx lethe report)
Check a request's audit chain: npx lethe audit verify --request <requestId>

Ctrl-C stops everything.
`);

let stopping = false;
const shutdown = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  console.log(`\n${signal}: stopping Lethe local mode...`);
  await lethe.stop();
  log.end();
  console.log('stopped.');
  process.exit(0);
};
process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));
