import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { buildSync, transformSync } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LetheError, SuppressionSnapshot, type FilterLink, type Identity, type Scope, type SnapshotSource, type Verdict } from '@lethe/client';
import { filterStream } from '@lethe/client/stream';
import { buildFilter, encodeFilter } from '#core/filter';
import { normalizeIdentity } from '#core/identity';
import { filterTag } from '#core/suppression';

/**
 * The client's snapshot against a stand-in for the API (the filter served over HTTP as S3 would):
 * a miss never reaches the API, a hit is confirmed, and without a filter everything is asked.
 */
const filterKey = { version: 'v1', key: new Uint8Array(randomBytes(32)) };
const suppressed = Array.from({ length: 100 }, (_, i) => normalizeIdentity({ type: 'email', value: `s${String(i)}@example.com` }));
const bytes = encodeFilter(buildFilter(suppressed.map((i) => filterTag(i, filterKey))));
let server: Server;
let url: string;

beforeAll(async () => {
  server = createServer((_req, res) => res.end(bytes));
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  url = `http://127.0.0.1:${String((server.address() as AddressInfo).port)}/filter.bin`;
});
afterAll(() => new Promise<void>((ok) => server.close(() => ok())));

/** The API as the snapshot sees it: the filter link (or a 503), and verdicts that record what was asked. */
function source(options: { published?: boolean; format?: string } = {}) {
  const asked: Identity[][] = [];
  const links = { count: 0 };
  const api: SnapshotSource = {
    link: () => {
      links.count += 1;
      if (options.published === false) return Promise.reject(new LetheError(503, { message: 'not yet' }, 'fetch the suppression filter'));
      const link: FilterLink = { format: options.format ?? 'lethe-binary-fuse-8/1', keyVersion: 'v1', filterKey: Buffer.from(filterKey.key).toString('base64url'), count: 100, bytes: bytes.length, falsePositiveRate: 1 / 256, builtAt: '2026-11-30T00:00:00.000Z', url };
      return Promise.resolve(link);
    },
    confirm: (identities: readonly Identity[], _scope?: Scope) => {
      asked.push([...identities]);
      return Promise.resolve(identities.map((i): Verdict => ({ suppressed: suppressed.some((s) => s.value === i.value), scopes: [] })));
    },
  };
  return { api, asked, links };
}
const others = Array.from({ length: 1000 }, (_, i) => ({ type: 'email', value: `other-${String(i)}@example.com` }));

describe('Class: SuppressionSnapshot (@lethe/client)', () => {
  it('answers misses itself and asks the API once, about its hits only, with identities normalized first', async () => {
    const { api, asked, links } = source();
    const snapshot = new SuppressionSnapshot(api);
    const answers = await snapshot.check([...others, { type: 'email', value: ' S7@Example.COM ' }]);
    expect(answers.flatMap((a, i) => (a ? [i] : []))).toEqual([1000]);
    expect(asked).toHaveLength(1);
    expect(asked[0]!.length).toBeLessThan(1 + 20); // s7, and about 4 in 1,000 false positives
    expect(snapshot.info).toEqual({ builtAt: '2026-11-30T00:00:00.000Z', count: 100 });
    await snapshot.check(others.slice(0, 10));
    expect(links.count).toBe(1); // within its maximum age, the same filter
  });

  it('asks the API about everything while Lethe has published no filter, and refuses a format it does not know', async () => {
    const none = source({ published: false });
    expect(await new SuppressionSnapshot(none.api).check(others.slice(0, 50))).toEqual(Array<boolean>(50).fill(false));
    expect(none.asked[0]).toHaveLength(50);

    const future = source({ format: 'lethe-binary-fuse-16/2' });
    const snapshot = new SuppressionSnapshot(future.api);
    await expect(snapshot.refresh()).rejects.toThrow(/unknown suppression filter format/);
    // And a check meanwhile falls back to the API rather than failing or guessing.
    expect(await snapshot.check([suppressed[3]!])).toEqual([true]);
    expect(future.asked[0]).toHaveLength(1);
  });

  it('fetches the filter again once it is older than its maximum age', async () => {
    const { api, links } = source();
    const snapshot = new SuppressionSnapshot(api, 0);
    await snapshot.check(others.slice(0, 1));
    await snapshot.check(others.slice(0, 1));
    expect(links.count).toBe(2);
  });

  it('filters a stream of records with the same client (filterStream)', async () => {
    const { api } = source();
    const snapshot = new SuppressionSnapshot(api);
    const client = { areSuppressed: (ids: readonly Identity[], scope?: Scope) => snapshot.check(ids, scope) };
    const events = [{ email: 's1@example.com' }, { email: 'other-1@example.com' }, { email: 'S2@example.com', ip: '192.0.2.7' }];
    const outcomes = await filterStream(events, { fields: [{ path: 'email', identity: 'email' }], action: 'redact', redact: ['ip'] }, client);
    expect(outcomes).toEqual([{ result: 'redact', record: {} }, { result: 'keep' }, { result: 'redact', record: {} }]);
  });

  it('is tree-shakeable: the signals entry bundles without the signer or the filter, the root entry without GPP', () => {
    const bundle = (entry: string) =>
      buildSync({ stdin: { contents: `import { ${entry === 'signals' ? 'toRequest' : 'LetheClient'} as x } from '@lethe/client${entry === 'signals' ? '/signals' : ''}'; console.log(x);`, resolveDir: process.cwd() }, bundle: true, write: false, format: 'esm', platform: 'node', external: ['@smithy/*', '@aws-sdk/*', '@iabgpp/*', 'libphonenumber-js', 'libphonenumber-js/*', 'zod'], minify: false }).outputFiles[0]!.text;
    const signals = bundle('signals');
    expect(signals).toContain('Sec-GPC'.toLowerCase());
    expect(signals).not.toMatch(/SignatureV4|buildPackedFilter|decodeFilter/);
    const root = bundle('root');
    expect(root).toContain('decodeFilter');
    expect(root).not.toContain('@iabgpp/cmpapi');
  });

  it("is what README's product backend uses, in ten lines that parse", () => {
    const block = readFileSync('README.md', 'utf8').split('### In a product backend')[1]?.split('```ts')[1]?.split('```')[0] ?? '';
    const lines = block.split('\n').filter((l) => l.trim() !== '');
    expect(lines.length).toBeGreaterThan(5);
    expect(lines.length).toBeLessThanOrEqual(10);
    expect(block).toMatch(/from '@lethe\/client'/);
    expect(() => transformSync(block, { loader: 'ts' })).not.toThrow();
  });
});
