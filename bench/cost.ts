/**
 * `npm run bench:cost`: the AWS operations one erasure takes, counted in local mode: every AWS
 * call each function makes (bench/count-calls.ts, loaded into each environment), the SQS calls
 * the event sources and the state machine make, Lambda invocations and their time, and state
 * transitions. Runs one system and three (LETHE_COST_REQUESTS each, default 100, subjects found in
 * every system), fits a fixed part and a part per system, and prices them (core/cost.ts).
 * What the schedules do while idle (the sequencer, the poller; every 5 s locally, every minute in
 * AWS) is measured first and taken out: it is a fixed monthly cost, not a cost per request.
 */
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { BroadcastChannel } from 'node:worker_threads';
import { parse, stringify } from 'yaml';
import { readFileSync } from 'node:fs';
import { costOf, USAGE_KEYS, type Usage } from '#core/cost';
import { CHANNEL, type Counted } from './count-calls.ts';
import { CONFIG, erasure, machine, seed, startBench, waitFinal } from './local.ts';

const n = Number(process.env['LETHE_COST_REQUESTS'] ?? 100);
const idleSeconds = 20;
const say = (line: string) => console.error(`[cost] ${line}`);
const preload = fileURLToPath(new URL('./count-calls.ts', import.meta.url));

type Tally = Record<string, number>;
const channel = new BroadcastChannel(CHANNEL);
const tally: Tally = {};
channel.onmessage = (event) => {
  const { fn, op, units } = (event as { data: Counted }).data;
  // The benchmark's own thread counts only what local mode does there for AWS: the event sources' and the state machine's SQS calls.
  if (fn === 'local-mode' && !op.startsWith('SQS.')) return;
  tally[`op ${op}`] = (tally[`op ${op}`] ?? 0) + 1;
  for (const [k, v] of Object.entries(units)) tally[k] = (tally[k] ?? 0) + v;
};
await import('./count-calls.ts'); // this thread's SQS clients too

async function measure(systems: string[]): Promise<{ usage: Usage; ops: Record<string, number>; functions: Record<string, { invocations: number; meanMs: number }> }> {
  const config = join(tmpdir(), `lethe-cost-${String(systems.length)}.yaml`);
  const full = parse(readFileSync(CONFIG, 'utf8')) as { systems: Record<string, unknown> };
  full.systems = Object.fromEntries(Object.entries(full.systems).filter(([name]) => systems.includes(name)));
  writeFileSync(config, stringify(full));
  const bench = await startBench({ configPath: config, hooks: { preload } });
  const run = `cost-${String(systems.length)}-${String(Date.now())}`;
  await seed(bench, 0, n);
  // Idle: what the schedules do with nothing to do.
  const snapshot = () => ({ tally: { ...tally }, usage: bench.local.usage(), log: bench.logBytes(), at: performance.now() });
  const minus = (a: Tally, b: Tally) => Object.fromEntries(Object.keys({ ...a, ...b }).map((k) => [k, (a[k] ?? 0) - (b[k] ?? 0)]));
  await sleep(3000);
  const idle0 = snapshot();
  await sleep(idleSeconds * 1000);
  const idle1 = snapshot();
  const idleRate = (k: string) => ((idle1.tally[k] ?? 0) - (idle0.tally[k] ?? 0)) / (idle1.at - idle0.at);
  // The requests, 10 a second.
  const start = snapshot();
  const ids: string[] = [];
  for (let i = 0; i < n; i += 1) {
    const { requestId, body } = erasure(i, run);
    ids.push(requestId);
    const response = await bench.submitter.fetch('/v1/requests', { method: 'POST', body });
    if (response.status !== 202) throw new Error(`intake answered ${String(response.status)}`);
    await sleep(100);
  }
  const final = await waitFinal(bench, ids, 10 * 60_000);
  if (final !== n) throw new Error(`${String(n - final)} requests did not finish`);
  await sleep(12_000); // the sequencer logs the last records
  const end = snapshot();
  const counted = minus(end.tally, start.tally);
  const elapsed = end.at - start.at;
  const busy = Object.fromEntries(Object.entries(counted).map(([k, v]) => [k, Math.max(0, v - idleRate(k) * elapsed)]));
  // Each function's invocations and GB-seconds, less what it does idle in as long.
  let invocations = 0;
  let gbSeconds = 0;
  const functions: Record<string, { invocations: number; meanMs: number }> = {};
  for (const [id, f] of Object.entries(end.usage.functions)) {
    const idleShare = elapsed / (idle1.at - idle0.at);
    const idleCalls = (idle1.usage.functions[id]!.invocations - idle0.usage.functions[id]!.invocations) * idleShare;
    const idleMs = (idle1.usage.functions[id]!.ms - idle0.usage.functions[id]!.ms) * idleShare;
    const calls = Math.max(0, f.invocations - start.usage.functions[id]!.invocations - idleCalls);
    const ms = Math.max(0, f.ms - start.usage.functions[id]!.ms - idleMs);
    invocations += calls;
    gbSeconds += (ms / 1000) * (f.memoryMb / 1024);
    if (calls > 0) functions[id] = { invocations: +(calls / n).toFixed(2), meanMs: Math.round(ms / calls) };
  }
  const usage = {
    stateTransitions: (end.usage.stateTransitions - start.usage.stateTransitions) / n,
    lambdaRequests: invocations / n,
    lambdaGbSeconds: gbSeconds / n,
    sqsRequests: (busy['sqsRequests'] ?? 0) / n,
    dynamoWriteUnits: (busy['dynamoWriteUnits'] ?? 0) / n,
    dynamoReadUnits: (busy['dynamoReadUnits'] ?? 0) / n,
    s3PutRequests: (busy['s3PutRequests'] ?? 0) / n,
    s3GetRequests: (busy['s3GetRequests'] ?? 0) / n,
    kmsRequests: (busy['kmsRequests'] ?? 0) / n,
    kmsSignRequests: (busy['kmsSignRequests'] ?? 0) / n,
    eventBridgeEvents: (busy['eventBridgeEvents'] ?? 0) / n,
    apiRequests: 1,
    logGb: (end.log - start.log) / n / 2 ** 30,
  };
  say(`${String(systems.length)} system(s): ${JSON.stringify(usage)}`);
  const opsPerRequest = Object.fromEntries(
    Object.entries(busy).filter(([k, v]) => k.startsWith('op ') && v >= 0.005 * n).sort().map(([k, v]) => [k.slice(3), +(v / n).toFixed(2)]),
  );
  await bench.stop();
  return { usage, ops: opsPerRequest, functions };
}

const one = await measure(['profiles']);
const three = await measure(['accounts', 'profiles', 'files']);
const round = (x: number) => +x.toPrecision(4);
// Neither part can be negative: a negative fit is timing noise (Lambda time, the sequencer's signatures), taken as 0.
const perSystem = Object.fromEntries(USAGE_KEYS.map((k) => [k, Math.max(0, round((three.usage[k] - one.usage[k]) / 2))])) as unknown as Usage;
const base = Object.fromEntries(USAGE_KEYS.map((k) => [k, Math.max(0, round(one.usage[k] - perSystem[k]))])) as unknown as Usage;
const five = Object.fromEntries(USAGE_KEYS.map((k) => [k, base[k] + 5 * perSystem[k]])) as unknown as Usage;
console.log(
  JSON.stringify(
    {
      date: new Date().toISOString().slice(0, 10),
      machine: machine(),
      requestsPerRun: n,
      measured: { oneSystem: one.usage, threeSystems: three.usage },
      operationsPerRequestWithThreeSystems: three.ops,
      functionsPerRequestWithThreeSystems: three.functions,
      model: { base, perSystem },
      costPer1000WithFiveSystems: +costOf(five, 1000).total.toFixed(4),
    },
    null,
    2,
  ),
);
channel.close();
