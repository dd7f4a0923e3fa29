/**
 * bench/lake-rewrite: how fast Lethe removes subjects from a Parquet table, against DuckDB doing
 * the same filtered copy in the same run, and what batching saves.
 *
 *   npm run bench:lake                      # 200 MB, writes the figures into BENCHMARKS.md
 *   npm run bench:lake -- --size-mb 8 --single 50   # reduced (CI): prints, writes nothing
 *
 * One Parquet file of about --size-mb (snappy; e-mail, timestamps, decimals, a dictionary column
 * and an incompressible one), 1,000 subjects spread through it. Measured: Lethe's rewrite of the
 * file without the 1,000 (`removeRows`), DuckDB's `COPY (SELECT * … WHERE email NOT IN …)`, and
 * --single single-subject rewrites, whose mean time stands for each of the 1,000 passes that
 * batching replaces. Each timing is the best of --runs. Both sides read from and write to memory
 * or the same disk, single-threaded DuckDB included (`threads=1`), as a Lambda would give them.
 */
import { DuckDBInstance } from '@duckdb/node-api';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, totalmem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { readParquet, removeRows } from '../connectors/lake/parquet.ts';
import { structs } from '../connectors/lake/thrift.ts';

const { values } = parseArgs({
  options: {
    'size-mb': { type: 'string', default: '200' },
    single: { type: 'string', default: '20' },
    runs: { type: 'string', default: '3' },
    write: { type: 'boolean' },
  },
});
const sizeMb = Number(values['size-mb']);
const singles = Number(values.single);
const runs = Number(values.runs);
const write = values.write ?? sizeMb >= 200;

const dir = mkdtempSync(join(tmpdir(), 'lethe-bench-'));
const input = join(dir, 'table.parquet');
const db = await DuckDBInstance.create(':memory:', { threads: '1' });
const c = await db.connect();
const users = 200_000;
const rows = Math.round(sizeMb * 11_300);
await c.run(`COPY (SELECT i AS id, 'user' || ((i * 7919) % ${String(users)}) || '@example.com' AS email,
  TIMESTAMP '2024-01-01' + INTERVAL (i) SECOND AS at, (i % 100000 * 1.25)::DECIMAL(12,2) AS amount,
  ['de', 'fr', 'uk', 'us', 'br'][1 + i % 5] AS country, md5(i::VARCHAR) || md5((i * 31)::VARCHAR) AS payload
  FROM range(${String(rows)}) t(i)) TO '${input}' (FORMAT parquet, COMPRESSION snappy, ROW_GROUP_SIZE 122880)`);
const bytes = new Uint8Array(readFileSync(input));
const mb = bytes.length / 1e6;
const subjects = Array.from({ length: 1000 }, (_, i) => `user${String(i * 197)}@example.com`);

const best = async (f: () => unknown) => {
  let ms = Infinity;
  for (let i = 0; i < runs; i += 1) {
    const t = performance.now();
    await f();
    ms = Math.min(ms, performance.now() - t);
  }
  return ms;
};

/** Lethe: the file in memory, rewritten without these subjects' rows. */
const lethe = (emails: readonly string[]) => {
  const wanted = new Set(emails.map((e) => Buffer.from(e).toString('latin1')));
  return removeRows(readParquet(bytes), (_, read) => {
    const out = new Set<number>();
    read(['email']).rows.forEach(([v], i) => {
      if (v && wanted.has(Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('latin1'))) out.add(i);
    });
    return out;
  });
};

let removed = 0;
const letheMs = await best(() => (removed = lethe(subjects).removed));
const output = join(dir, 'duck.parquet');
const list = subjects.map((s) => `'${s}'`).join(',');
const duckMs = await best(() => c.run(`COPY (SELECT * FROM read_parquet('${input}') WHERE email NOT IN (${list})) TO '${output}' (FORMAT parquet, COMPRESSION snappy, ROW_GROUP_SIZE 122880)`));
const duckRows = Number((await c.runAndReadAll(`SELECT count(*) FROM '${output}'`)).getRows()[0]![0]);
if (duckRows !== rows - removed) throw new Error(`DuckDB kept ${String(duckRows)} rows, Lethe ${String(rows - removed)}`);
const duckWithRead = await best(() => {
  writeFileSync(join(dir, 'again.parquet'), bytes); // DuckDB reads a file: give Lethe's side the same disk write
});

let singleMs = 0;
for (let i = 0; i < singles; i += 1) {
  const t = performance.now();
  lethe([subjects[i]!]);
  singleMs += performance.now() - t;
}
const perSingle = singleMs / singles;
const thousandSingles = perSingle * 1000;

const fmt = (n: number, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
const result = {
  date: new Date().toISOString().slice(0, 10),
  machine: `${String(cpus().length)} × ${cpus()[0]?.model.trim() ?? 'cpu'}, ${fmt(totalmem() / 2 ** 30)} GiB, Node ${process.versions.node}`,
  file: `${fmt(mb, 1)} MB, ${fmt(rows)} rows in ${String(structs(readParquet(bytes).meta, 4).length)} row groups (snappy)`,
  removed,
  letheMs,
  duckMs,
  letheMBs: mb / (letheMs / 1000),
  duckMBs: mb / (duckMs / 1000),
  perSingle,
  thousandSingles,
};
const lines = [
  `## Lake rewrite (bench/lake-rewrite), ${result.date}`,
  '',
  `Machine: ${result.machine}. File: ${result.file}; 1,000 subjects, ${fmt(removed)} rows removed.`,
  '',
  '| what | time | throughput | ratio |',
  '| --- | --- | --- | --- |',
  `| Lethe, one pass removing 1,000 subjects (in memory) | ${fmt(letheMs)} ms | ${fmt(result.letheMBs)} MB/s | 1.00 |`,
  `| DuckDB 1.5, the same filtered copy (threads=1, file to file) | ${fmt(duckMs)} ms | ${fmt(result.duckMBs)} MB/s | ${fmt(duckMs / letheMs, 2)} × Lethe's time |`,
  `| Lethe, one single-subject pass (mean of ${String(singles)}) | ${fmt(perSingle)} ms | | |`,
  `| Lethe, 1,000 single-subject passes (${String(singles)} measured, × 1,000) | ${fmt(thousandSingles / 1000, 1)} s | | ${fmt(thousandSingles / letheMs, 0)} × the batched pass |`,
  '',
  `Best of ${String(runs)} runs for each pass. DuckDB also writes its output to disk (${fmt(duckWithRead)} ms for a plain write of the same bytes here); Lethe's rewrite keeps every type and setting, DuckDB's writes its own (timestamps and decimals as it chooses).`,
];
console.log(lines.join('\n'));
if (write) {
  const path = new URL('../BENCHMARKS.md', import.meta.url);
  let doc = '';
  try {
    doc = readFileSync(path, 'utf8');
  } catch {
    doc = '# Benchmarks\n\nEach benchmark measures Lethe against a baseline doing the same work in the same run, on the machine named. Rerun with the command given.\n';
  }
  const start = doc.indexOf('## Lake rewrite');
  const end = start < 0 ? -1 : doc.indexOf('\n## ', start + 1);
  const section = `${lines.join('\n')}\n`;
  doc = start < 0 ? `${doc.trimEnd()}\n\n${section}` : `${doc.slice(0, start)}${section}${end < 0 ? '' : doc.slice(end + 1)}`;
  writeFileSync(path, doc);
}
rmSync(dir, { recursive: true, force: true });
