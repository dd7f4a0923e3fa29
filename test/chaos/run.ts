/**
 * `npm run chaos`: the chaos suite at full size (1,000 requests × 5 systems), printing the
 * reconciliation. Exits 1 when anything was lost, duplicated or unexpected.
 *
 *   LETHE_CHAOS_REQUESTS (1000)  LETHE_CHAOS_SEED (1)  LETHE_CHAOS_RATE (25 a second)
 *   LETHE_CHAOS_OUTAGE_MS (3000)  LETHE_CHAOS_POSTGRES_URL (else LETHE_TEST_POSTGRES_URL, else PGlite)
 */
import { formatReport, runChaos } from './harness.ts';

const number = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const report = await runChaos({
  requests: number('LETHE_CHAOS_REQUESTS', 1000),
  seed: number('LETHE_CHAOS_SEED', 1),
  rate: number('LETHE_CHAOS_RATE', 25),
  outageMs: number('LETHE_CHAOS_OUTAGE_MS', 3000),
  timeoutMs: number('LETHE_CHAOS_TIMEOUT_MS', 30 * 60_000),
  progress: (line) => console.error(`[chaos] ${line}`),
});
console.log(formatReport(report));
process.exitCode = report.lost.length + report.duplicated.length + report.unexpected.length === 0 ? 0 : 1;
