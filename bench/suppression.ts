/**
 * `npm run bench:suppression`: "is this identity suppressed?" against 10 million suppressed
 * identities, on one core. Measured in the same run, and each given as a ratio to a plain `Set`
 * lookup and to the HMAC alone that every check must compute:
 *
 * - the binary fuse filter Lethe publishes (core/filter.ts): build time, size, false positives;
 * - a Bloom filter at the same false-positive rate (bloom-filters, the most used on npm), the
 *   other candidate;
 * - a `Set` of the tags as hex strings (exact; its heap is the size to beat);
 * - a whole check as a client makes it: normalize, HMAC, filter lookup;
 * - the publisher's rebuild: sorting every suppressed identity's tag into the tag set;
 * - the stream filter as the Firehose transformation runs it: base64 and JSON, the identity
 *   field, normalize, HMAC, filter lookup, in 500-record batches (1 event in 100 suppressed; the
 *   table's confirmation of the hits is not timed).
 *
 *   LETHE_SUPPRESSED (10000000)  LETHE_LOOKUPS (1000000)
 */
import bloomFilters from 'bloom-filters';
import { createHmac } from 'node:crypto';
import { buildPackedFilter, encodeFilter, mayContain } from '#core/filter';
import { normalizeIdentity } from '#core/identity';
import type { Identity } from '#core/identity';
import { filterRecords, snapshotCheck, streamFilterSchema } from '#core/stream-filter';
import { filterKeyOf, filterTag } from '#core/suppression';
import { sortTags } from '#core/tag-set';
import { machine } from './local.ts';

const { BloomFilter } = bloomFilters; // CommonJS
const n = Number(process.env['LETHE_SUPPRESSED'] ?? 10_000_000);
const lookups = Number(process.env['LETHE_LOOKUPS'] ?? 1_000_000);
const say = (line: string) => console.error(`[suppression] ${line}`);
const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);
const heapMb = () => {
  gc();
  return process.memoryUsage().heapUsed / 2 ** 20;
};
const perSecond = (count: number, ms: number) => Math.round(count / (ms / 1000));
const time = <T>(work: () => T): { value: T; ms: number } => {
  const t0 = performance.now();
  const value = work();
  return { value, ms: performance.now() - t0 };
};

const filterKey = filterKeyOf({ version: 'bench', key: new Uint8Array(32).fill(7) });
const identity = (i: number) => ({ type: 'email', value: `subject-${String(i)}@example.com` });
const tagOf = (i: number) => filterTag(identity(i), filterKey);

say(`tagging ${String(n)} suppressed identities`);
const packed = new Uint8Array(n * 16);
for (let i = 0; i < n; i += 1) packed.set(tagOf(i), i * 16);
const tagAt = (i: number) => packed.subarray(i * 16, i * 16 + 16);
const hexAt = (i: number) => Buffer.from(packed.buffer, packed.byteOffset + i * 16, 16).toString('hex');

// The queries: half suppressed, half not, their tags and hex made beforehand for the lookup-only rows.
const queries = Array.from({ length: lookups }, (_, q) => (q % 2 === 0 ? (q * 7919) % n : n + q));
const queryTags = queries.map((i) => (i < n ? tagAt(i) : tagOf(i)));
const queryHex = queryTags.map((t) => Buffer.from(t).toString('hex'));
const outsiders = Array.from({ length: lookups }, (_, q) => tagOf(n + lookups + q));

say('HMAC alone');
const hmac = time(() => {
  let x = 0;
  for (const i of queries) x ^= createHmac('sha256', filterKey.key).update(`email:${identity(i).value}`).digest()[0]!;
  return x;
});

say('Set of hex tags');
const heap0 = heapMb();
const built = time(() => {
  const set = new Set<string>();
  for (let i = 0; i < n; i += 1) set.add(hexAt(i));
  return set;
});
const set = built.value;
const setHeapMb = heapMb() - heap0;
const setLookup = time(() => queryHex.reduce((hits, h) => hits + (set.has(h) ? 1 : 0), 0));
set.clear();

say('sorting the tag set, as a rebuild from the table does');
const sortedTags = time(() => sortTags(packed));
if (sortedTags.value.length !== packed.length) throw new Error('the tag set lost or gained tags');

say('binary fuse filter');
const fuseBuild = time(() => buildPackedFilter(packed));
const fuse = fuseBuild.value;
const fuseBytes = encodeFilter(fuse).length;
const fuseLookup = time(() => queryTags.reduce((hits, t) => hits + (mayContain(fuse, t) ? 1 : 0), 0));
const fuseFalse = outsiders.filter((t) => mayContain(fuse, t)).length;
const fuseMissed = queries.filter((i, q) => i < n && !mayContain(fuse, queryTags[q]!)).length;
const check = time(() => queries.reduce((hits, i) => hits + (mayContain(fuse, filterTag(normalizeIdentity(identity(i)), filterKey)) ? 1 : 0), 0));

say('stream filter');
const events = queries.map((_, q) =>
  Buffer.from(JSON.stringify({ event: 'page_view', at: '2026-11-30T00:00:00Z', user: { email: identity(q % 100 === 0 ? (q * 7919) % n : n + q).value }, page: '/pricing' })).toString('base64'),
);
const streamConfig = streamFilterSchema.parse({ fields: [{ path: 'user.email', identity: 'email' }], action: 'drop' });
const confirm = (ids: readonly Identity[]) => Promise.resolve(ids.map((i) => Number(/^subject-(\d+)@/.exec(i.value)?.[1]) < n));
const streamCheck = snapshotCheck(() => ({ filter: fuse, filterKey }), confirm);
let dropped = 0;
const stream0 = performance.now();
for (let b = 0; b < events.length; b += 500) {
  const records = events.slice(b, b + 500).map((e) => JSON.parse(Buffer.from(e, 'base64').toString('utf8')) as unknown);
  dropped += (await filterRecords(records, streamConfig, streamCheck)).filter((o) => o.result === 'drop').length;
}
const streamMs = performance.now() - stream0;
if (dropped !== Math.ceil(lookups / 100)) throw new Error(`the stream filter dropped ${String(dropped)} of ${String(Math.ceil(lookups / 100))} suppressed events`);

say('Bloom filter at the same rate');
const bloomBuild = time(() => {
  const bloom = BloomFilter.create(n, 1 / 256);
  for (let i = 0; i < n; i += 1) bloom.add(hexAt(i));
  return bloom;
});
const bloom = bloomBuild.value;
const bloomLookup = time(() => queryHex.reduce((hits, h) => hits + (bloom.has(h) ? 1 : 0), 0));
const bloomFalse = outsiders.filter((t) => bloom.has(Buffer.from(t).toString('hex'))).length;

const setRate = perSecond(lookups, setLookup.ms);
const hmacRate = perSecond(lookups, hmac.ms);
const row = (what: string, ms: number) => {
  const rate = perSecond(lookups, ms);
  return { what, perSecond: rate, vsSet: +(rate / setRate).toFixed(2), vsHmac: +(rate / hmacRate).toFixed(2) };
};
const result = {
  date: new Date().toISOString().slice(0, 10),
  machine: machine(),
  suppressed: n,
  lookups,
  perCore: [
    row('Set.has (hex tag made beforehand)', setLookup.ms),
    row('HMAC-SHA256 alone', hmac.ms),
    row('binary fuse lookup (tag made beforehand)', fuseLookup.ms),
    row('Bloom lookup (hex tag made beforehand)', bloomLookup.ms),
    row('a whole check: normalize, HMAC, binary fuse lookup', check.ms),
    row('stream filter: base64, JSON, normalize, HMAC, binary fuse lookup (500-record batches)', streamMs),
  ],
  rebuild: { what: `sort ${String(n)} packed tags into the tag set (core/tag-set.ts sortTags)`, seconds: +(sortedTags.ms / 1000).toFixed(1), megabytes: +(packed.length / 2 ** 20).toFixed(1) },
  structures: [
    { what: 'Set of hex tags', bytes: Math.round(setHeapMb * 2 ** 20), bitsPerKey: +((setHeapMb * 2 ** 20 * 8) / n).toFixed(1), falsePositiveRate: 0, buildSeconds: +(built.ms / 1000).toFixed(1) },
    { what: 'binary fuse (8-bit)', bytes: fuseBytes, bitsPerKey: +((fuseBytes * 8) / n).toFixed(2), falsePositiveRate: +(fuseFalse / lookups).toFixed(5), buildSeconds: +(fuseBuild.ms / 1000).toFixed(1), missed: fuseMissed },
    { what: 'Bloom (bloom-filters)', bytes: Math.ceil(bloom.size / 8), bitsPerKey: +(bloom.size / n).toFixed(2), falsePositiveRate: +(bloomFalse / lookups).toFixed(5), buildSeconds: +(bloomBuild.ms / 1000).toFixed(1) },
  ],
};
console.log(JSON.stringify(result, null, 2));
