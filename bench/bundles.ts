/**
 * `npm run bench:bundles`: each Lambda function bundled as the stack bundles it (esbuild, ESM,
 * node22, minified), its size and largest inputs from esbuild's metafile, and its cold-start module
 * load time: a fresh Node process importing the bundle, median of LETHE_BUNDLE_RUNS (default 7),
 * against a one-line handler bundled and loaded the same way in the same run.
 */
import { build, type Metafile } from 'esbuild';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import { machine, percentile } from './local.ts';

const runs = Number(process.env['LETHE_BUNDLE_RUNS'] ?? 7);
const root = process.cwd();
const out = mkdtempSync(join(tmpdir(), 'lethe-bundles-'));
const run = promisify(execFile);

/** What every handler's module scope may read; values that only need to look right. */
const ENV = {
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'x',
  AWS_SECRET_ACCESS_KEY: 'x',
  REQUESTS_TABLE: 'requests',
  AUDIT_BUCKET: 'audit',
  INTAKE_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/000000000000/intake',
  REJECTED_EVENTS_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/000000000000/rejected',
  STATE_MACHINE_ARN: 'arn:aws:states:us-east-1:000000000000:stateMachine:saga',
  STARTS_PER_SECOND: '50',
  EVENT_BUS_NAME: 'lethe',
  KEY_PROVIDER: 'kms',
  KMS_KEY_ID: 'arn:aws:kms:us-east-1:000000000000:key/00000000-0000-0000-0000-000000000000',
  PSEUDONYM_SECRET_ID: 'arn:aws:secretsmanager:us-east-1:000000000000:secret:pseudonym',
  LETHE_SYSTEM_QUEUES: '{}',
  LETHE_WEBHOOKS: '{}',
  LETHE_DATASETS: '[]',
  RECEIPT_SIGNER: 'kms',
  RECEIPT_KEY_ID: 'arn:aws:kms:us-east-1:000000000000:key/00000000-0000-0000-0000-000000000001',
  LETHE_SYSTEMS: '[]',
  CONNECTOR_KIND: 'postgres',
  POWERTOOLS_SERVICE_NAME: 'lethe-bench',
  POWERTOOLS_METRICS_NAMESPACE: 'Lethe',
};

async function bundle(name: string, entry: string): Promise<{ file: string; bytes: number; gzip: number; inputs: [string, number][] }> {
  const file = join(out, name, 'index.mjs');
  const result = await build({
    entryPoints: [entry],
    outfile: file,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node22',
    minify: true,
    mainFields: ['module', 'main'],
    banner: { js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" },
    metafile: true,
    logLevel: 'silent',
  });
  const meta: Metafile = result.metafile;
  const output = Object.values(meta.outputs)[0]!;
  // Inputs grouped by package (node_modules/<pkg>) or by Lethe's own folder.
  const byPackage = new Map<string, number>();
  for (const [path, { bytesInOutput }] of Object.entries(output.inputs)) {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
    const key = m ? m[1]! : `lethe ${path.split('/')[0] ?? path}/`;
    byPackage.set(key, (byPackage.get(key) ?? 0) + bytesInOutput);
  }
  const inputs = [...byPackage].sort((a, b) => b[1] - a[1]).slice(0, 3);
  return { file, bytes: statSync(file).size, gzip: gzipSync(readFileSync(file)).length, inputs };
}

/** Milliseconds a fresh process takes to import the bundle (its module scope run), median of `runs`. */
async function loadMs(file: string): Promise<number> {
  const probe = `const t = performance.now(); await import(${JSON.stringify(`file://${file}`)}); console.log(performance.now() - t);`;
  const times: number[] = [];
  for (let i = 0; i < runs; i += 1) {
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', probe], { env: { ...ENV, PATH: process.env['PATH'] ?? '' } }).catch((error: { stderr?: string }) => {
      throw new Error(`${file} does not load: ${(error.stderr ?? '').split('\n').filter((l) => /Error/.test(l)).slice(-1).join('')}`);
    });
    times.push(Number(stdout.trim()));
  }
  return percentile(times, 50);
}

const baselineEntry = join(out, 'baseline.mjs');
writeFileSync(baselineEntry, 'export const handler = async () => ({});\n');
const baseline = await bundle('baseline', baselineEntry);
const baselineMs = await loadMs(baseline.file);

const rows = [];
for (const name of readdirSync(join(root, 'functions')).filter((d) => d !== 'commons').sort()) {
  const b = await bundle(name, join(root, 'functions', name, 'handler.ts'));
  const ms = await loadMs(b.file);
  rows.push({ function: name, kb: +(b.bytes / 1024).toFixed(0), gzipKb: +(b.gzip / 1024).toFixed(0), loadMs: +ms.toFixed(1), loadRatio: +(ms / baselineMs).toFixed(1), largest: b.inputs.map(([k, v]) => `${k} ${String(Math.round(v / 1024))} KB`).join(', ') });
  console.error(`[bundles] ${name}: ${String(rows.at(-1)!.kb)} KB, ${ms.toFixed(1)} ms`);
}
console.log(
  JSON.stringify(
    { date: new Date().toISOString().slice(0, 10), machine: machine(), runs, baseline: { kb: +(baseline.bytes / 1024).toFixed(1), loadMs: +baselineMs.toFixed(2) }, functions: rows, out: relative(root, out) },
    null,
    2,
  ),
);
