/**
 * `npm run bench:burst`: 10,000 erasures sent to local mode within 10 seconds, open loop, while
 * Step Functions' StartExecution quota is emulated. Intake must accept every one, the intake
 * buffer must hold what the starter cannot start yet, and every request must end final.
 *
 *   LETHE_BURST_REQUESTS (10000)  LETHE_BURST_SECONDS (10)  LETHE_BURST_STARTS (100: the starter's rate)
 *   LETHE_BURST_QUOTA (300: StartExecution refill a second; bucket 1,300) — set it below the
 *   starter's rate to see it back off
 */
import { Agent, request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { depth, erasure, machine, percentile, records, startBench, waitFinal } from './local.ts';

const n = Number(process.env['LETHE_BURST_REQUESTS'] ?? 10_000);
const seconds = Number(process.env['LETHE_BURST_SECONDS'] ?? 10);
const startsPerSecond = Number(process.env['LETHE_BURST_STARTS'] ?? 100);
const refill = Number(process.env['LETHE_BURST_QUOTA'] ?? 300);
const say = (line: string) => console.error(`[burst] ${line}`);

/**
 * One signed POST over node:http, which waits as long as the server takes: local mode's intake
 * answers a few requests a second on a small machine, so most of a 10,000-request burst waits
 * minutes for its answer, longer than fetch's 300 s for response headers. At most 1,000 on the
 * wire at once (client and server share this process's file descriptors), each signed when it
 * goes, so that no signature is older than SigV4 allows when it arrives.
 */
const CONNECTIONS = 1000;
const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS });
let free = CONNECTIONS;
const waiting: (() => void)[] = [];
async function submit(path: string, body: string): Promise<string> {
  if (free > 0) free -= 1;
  else await new Promise<void>((ok) => waiting.push(ok));
  try {
    const signed = await bench.submitter.sign(path, { method: 'POST', body });
    return await new Promise((resolve) => {
      const req = request(signed.url, { method: 'POST', headers: signed.headers, agent }, (response) => {
        response.resume();
        response.on('end', () => resolve(String(response.statusCode)));
        response.on('error', (error) => resolve(`error ${error.name}`));
      });
      req.on('error', (error) => resolve(`error ${(error as NodeJS.ErrnoException).code ?? error.name}`));
      req.end(body);
    });
  } finally {
    const next = waiting.shift();
    if (next) next();
    else free += 1;
  }
}

const bench = await startBench({ startsPerSecond, startQuota: { size: Math.round(refill * (1300 / 300)), perSecond: refill } });
const throttled = /saga start throttled/;
bench.count(throttled);
const run = `burst-${String(Date.now())}`;
const requests = Array.from({ length: n }, (_, i) => erasure(i, run));

let peak = 0;
let sampling = true;
const sampler = (async () => {
  while (sampling) {
    peak = Math.max(peak, await depth(bench, 'IntakeBuffer').catch(() => 0));
    await sleep(500);
  }
})();

say(`sending ${String(n)} erasures within ${String(seconds)} s`);
const t0 = performance.now();
let lastSent = 0;
const answers = await Promise.all(
  requests.map(async ({ body }, i) => {
    await sleep((i * seconds * 1000) / n);
    lastSent = Math.max(lastSent, performance.now() - t0);
    return submit('/v1/requests', body);
  }),
);
const answered = performance.now() - t0;
const codes = new Map<string, number>();
for (const a of answers) codes.set(a, (codes.get(a) ?? 0) + 1);
say(`issued in ${(lastSent / 1000).toFixed(1)} s, all answered in ${(answered / 1000).toFixed(1)} s: ${JSON.stringify(Object.fromEntries(codes))}`);

const ids = requests.map((r) => r.requestId);
const final = await waitFinal(bench, ids, 60 * 60_000, (f) => say(`${String(f)} of ${String(n)} final`));
const drained = performance.now() - t0;
sampling = false;
await sampler;
const seen = await records(bench, ids);
const latencies = [...seen.values()].filter((r) => r.completedAt).map((r) => Date.parse(r.completedAt!) - Date.parse(r.receivedAt));
const statuses = new Map<string, number>();
for (const r of seen.values()) statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
const accepted = codes.get('202') ?? 0;
const result = {
  date: new Date().toISOString().slice(0, 10),
  machine: machine(),
  requests: n,
  sentWithinSeconds: +(lastSent / 1000).toFixed(1),
  answeredWithinSeconds: +(answered / 1000).toFixed(1),
  accepted,
  rejected: n - accepted,
  answers: Object.fromEntries(codes),
  lost: n - seen.size,
  final,
  statuses: Object.fromEntries(statuses),
  peakIntakeBufferDepth: peak,
  startsThrottled: bench.count(throttled),
  starterRatePerSecond: startsPerSecond,
  emulatedQuota: { bucket: Math.round(refill * (1300 / 300)), refillPerSecond: refill },
  allFinalAfterSeconds: +(drained / 1000).toFixed(1),
  requestsPerSecondEndToEnd: +(n / (drained / 1000)).toFixed(1),
  secondsReceivedToFinal: { p50: +(percentile(latencies, 50) / 1000).toFixed(1), p99: +(percentile(latencies, 99) / 1000).toFixed(1) },
};
console.log(JSON.stringify(result, null, 2));
agent.destroy();
await bench.stop();
process.exitCode = result.rejected === 0 && result.lost === 0 && final === n ? 0 : 1;
