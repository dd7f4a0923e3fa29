import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildFilter, encodeFilter, mayContain } from '#core/filter';
import { handlerEnvironment } from '../../fixtures/lambda.ts';

/**
 * The stream filter's hold on the published filter (S3 mocked): fetched once a minute, kept
 * through a passing S3 failure, and let go after ten minutes without a refresh, or as soon as it
 * is gone or made under another key version — after which every identity is asked of the table.
 */
handlerEnvironment();
const s3 = mockClient(S3Client);
let FilterCache: typeof import('#functions/commons/suppression-snapshot').FilterCache;
const tag = new Uint8Array(16).fill(7);
/** What the SDK's Body offers, as far as the cache reads it. */
const body = () => ({ transformToByteArray: () => Promise.resolve(encodeFilter(buildFilter([tag]))) });
const published = (keyVersion = 'v1', etag = '"a"') => ({ Body: body(), ETag: etag, Metadata: { 'key-version': keyVersion } });

beforeAll(async () => {
  ({ FilterCache } = await import('#functions/commons/suppression-snapshot'));
});
afterEach(() => {
  s3.reset();
  vi.useRealTimers();
});

describe('Class: FilterCache', () => {
  it('fetches once a minute, asking only for a change (If-None-Match), and keeps it on 304', async () => {
    vi.useFakeTimers({ now: 0 });
    s3.on(GetObjectCommand).resolvesOnce(published() as never).rejects(Object.assign(new Error('not modified'), { name: 'NotModified', $metadata: { httpStatusCode: 304 } }));
    const cache = new FilterCache('snapshots');
    const first = await cache.get('v1');
    expect(first && mayContain(first, tag)).toBe(true);
    await cache.get('v1');
    expect(s3.commandCalls(GetObjectCommand)).toHaveLength(1);
    vi.setSystemTime(61_000);
    expect(await cache.get('v1')).toBe(first);
    expect(s3.commandCalls(GetObjectCommand)[1]!.args[0].input.IfNoneMatch).toBe('"a"');
  });

  it('keeps the filter through S3 failures for ten minutes, then lets it go', async () => {
    vi.useFakeTimers({ now: 0 });
    s3.on(GetObjectCommand).resolvesOnce(published() as never).rejects(Object.assign(new Error('slow down'), { name: 'SlowDown', $metadata: { httpStatusCode: 503 } }));
    const cache = new FilterCache('snapshots');
    const held = await cache.get('v1');
    vi.setSystemTime(5 * 60_000);
    expect(await cache.get('v1')).toBe(held);
    vi.setSystemTime(11 * 60_000);
    expect(await cache.get('v1')).toBeUndefined();
  });

  it('holds nothing when none is published, or one made under another key version', async () => {
    s3.on(GetObjectCommand).rejectsOnce(Object.assign(new Error('no such key'), { name: 'NoSuchKey', $metadata: { httpStatusCode: 404 } })).resolves(published('v0') as never);
    expect(await new FilterCache('snapshots').get('v1')).toBeUndefined();
    expect(await new FilterCache('snapshots').get('v1')).toBeUndefined();
  });
});
