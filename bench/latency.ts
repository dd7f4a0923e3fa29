/**
 * `npm run bench:latency`: end-to-end latency of erasures across three systems in local mode, from
 * intake to final, at 10, 50 and 100 requests a second (LETHE_LATENCY_SECONDS of each, default 10);
 * and the orchestration overhead: one erasure at a time through Lethe, intake to final, against the
 * same deletions done directly by a script (each subject's rows, item and objects found and deleted).
 */
import { DeleteObjectsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { DeleteCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { setTimeout as sleep } from 'node:timers/promises';
import { erasure, machine, percentile, records, seed, startBench, subject, waitFinal, type Bench } from './local.ts';

const seconds = Number(process.env['LETHE_LATENCY_SECONDS'] ?? 10);
const rates = (process.env['LETHE_LATENCY_RATES'] ?? '10,50,100').split(',').map(Number);
const say = (line: string) => console.error(`[latency] ${line}`);

const bench = await startBench();
const total = rates.reduce((n, r) => n + r * seconds, 0) + 23;
const direct = 200;
say(`seeding ${String(total + direct)} subjects`);
await seed(bench, 0, total + direct);

/** The same deletions without Lethe: what a script that knows the three systems would do. */
async function deleteDirectly(b: Bench, email: string): Promise<void> {
  await b.db.query('DELETE FROM bench_orders WHERE account_id IN (SELECT id FROM bench_accounts WHERE email = $1)', [email]);
  await b.db.query('DELETE FROM bench_accounts WHERE email = $1', [email]);
  const found = await b.dynamo.send(new QueryCommand({ TableName: 'bench_profiles', IndexName: 'byEmail', KeyConditionExpression: 'email = :e', ExpressionAttributeValues: { ':e': email } }));
  for (const item of found.Items ?? []) await b.dynamo.send(new DeleteCommand({ TableName: 'bench_profiles', Key: { id: item['id'] as string } }));
  const listed = await b.s3.send(new ListObjectsV2Command({ Bucket: 'lethe-bench-files', Prefix: `files/${email}/` }));
  if (listed.Contents?.length) await b.s3.send(new DeleteObjectsCommand({ Bucket: 'lethe-bench-files', Delete: { Objects: listed.Contents.map((o) => ({ Key: o.Key! })) } }));
}

// Baseline, in the same run: the direct script, one subject after another.
const d0 = performance.now();
for (let i = total; i < total + direct; i += 1) await deleteDirectly(bench, subject(i));
const directMs = (performance.now() - d0) / direct;
say(`direct deletion: ${directMs.toFixed(1)} ms a subject`);

// Unloaded: one erasure at a time, each submitted once the one before is final (after a few to warm up).
const sequential = Number(process.env['LETHE_LATENCY_SEQUENTIAL'] ?? 20);
let next = 0;
const alone: number[] = [];
for (let k = 0; k < sequential + 3; k += 1) {
  const { requestId, body } = erasure(next++, 'latency-alone');
  const response = await bench.submitter.fetch('/v1/requests', { method: 'POST', body });
  if (response.status !== 202) throw new Error(`intake answered ${String(response.status)}`);
  await waitFinal(bench, [requestId], 5 * 60_000);
  const r = (await records(bench, [requestId])).get(requestId)!;
  if (k >= 3 && r.completedAt) alone.push(Date.parse(r.completedAt) - Date.parse(r.receivedAt));
}
const aloneMean = alone.reduce((a, b) => a + b, 0) / alone.length;
say(`one at a time: mean ${aloneMean.toFixed(0)} ms, p50 ${String(percentile(alone, 50))} ms`);

// Lethe at each rate, open loop; the rates follow each other once the one before is final.
const rows: { rate: number; n: number; p50: number; p99: number; mean: number; final: number }[] = [];
for (const rate of rates) {
  const n = rate * seconds;
  const ids: string[] = [];
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: n }, async (_, k) => {
      const { requestId, body } = erasure(next + k, `latency-${String(rate)}`);
      ids.push(requestId);
      await sleep(t0 + (k * 1000) / rate - performance.now());
      const response = await bench.submitter.fetch('/v1/requests', { method: 'POST', body });
      if (response.status !== 202) throw new Error(`intake answered ${String(response.status)}`);
    }),
  );
  next += n;
  const final = await waitFinal(bench, ids, 30 * 60_000);
  const ms = [...(await records(bench, ids)).values()].filter((r) => r.completedAt).map((r) => Date.parse(r.completedAt!) - Date.parse(r.receivedAt));
  const row = { rate, n, p50: percentile(ms, 50), p99: percentile(ms, 99), mean: ms.reduce((a, b) => a + b, 0) / ms.length, final };
  rows.push(row);
  say(`${String(rate)}/s: p50 ${String(row.p50)} ms, p99 ${String(row.p99)} ms, ${String(final)} of ${String(n)} final`);
}

// Overhead: one erasure at a time, intake to final, against the direct script's time for one subject.
console.log(
  JSON.stringify(
    {
      date: new Date().toISOString().slice(0, 10),
      machine: machine(),
      systems: 3,
      secondsPerRate: seconds,
      latency: rows,
      directMsPerSubject: +directMs.toFixed(1),
      oneAtATime: { n: alone.length, meanMs: Math.round(aloneMean), p50Ms: percentile(alone, 50), p99Ms: percentile(alone, 99) },
      overhead: { letheMeanMs: Math.round(aloneMean), directMs: +directMs.toFixed(1), ratio: +(aloneMean / directMs).toFixed(1) },
    },
    null,
    2,
  ),
);
await bench.stop();
