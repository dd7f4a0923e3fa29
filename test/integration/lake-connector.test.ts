import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { startFauxqs } from 'fauxqs';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { LakeConnector } from '#connectors/lake/connector';
import { readParquet } from '#connectors/lake/parquet';
import { int, struct, structs } from '#connectors/lake/thrift';
import { lakeSettingsSchema } from '#connectors/lake/settings';
import { ConnectorPermanentError } from '#core/errors';
import type { ConnectorCommand } from '#core/ports';
import { duckdbParquet, rowsOf, shapeOf } from '../fixtures/lake.ts';
import { HOSTILE_RUNS, hostileIdentifier } from '../fixtures/hostile.ts';
import { credentials } from '../fixtures/servers.ts';

/**
 * The lake connector on fauxqs S3 (unversioned buckets; versions are in the unit tests): a
 * partitioned Parquet table and a gzip JSON Lines table.
 */
describe('Class: LakeConnector (fauxqs)', () => {
  let fauxqs: Awaited<ReturnType<typeof startFauxqs>>;
  let s3: S3Client;
  let bucket: string;
  let n = 0;
  let parquet: Uint8Array;
  const jsonl = ['{"user":{"email":"user7@example.com"},"event":"login"}', '{"user":{"email":"grace@example.com"},"event":"login"}', '', '{"user":{"id":7},"event":"view"}', ''].join('\n');

  beforeAll(async () => {
    fauxqs = await startFauxqs({ port: 0, logger: false });
    s3 = new S3Client({ endpoint: fauxqs.address, region: 'us-east-1', credentials, forcePathStyle: true });
    const path = join(mkdtempSync(join(tmpdir(), 'lethe-lake-s3-')), 'part.parquet');
    await duckdbParquet(path, { rows: 5000, users: 50, codec: 'snappy' });
    parquet = new Uint8Array(readFileSync(path));
  });
  afterAll(async () => fauxqs.stop());

  beforeEach(async () => {
    bucket = `lake-${String((n += 1))}`;
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    const put = (Key: string, Body: Uint8Array | string, extra = {}) => s3.send(new PutObjectCommand({ Bucket: bucket, Key, Body, ...extra }));
    await put('events/dt=2024-01-01/part-0.parquet', parquet, { ContentType: 'application/vnd.apache.parquet', Metadata: { writer: 'spark' } });
    await put('events/dt=2024-01-02/part-0.parquet', parquet);
    await put('clicks/user_id=7/part-0.jsonl.gz', gzipSync(jsonl));
    await put('clicks/user_id=8/part-0.jsonl.gz', 'not json, and never read: another partition');
  });

  const tables = () => [
    { bucket, prefix: 'events/', format: 'parquet', columns: [{ identity: 'email', column: 'email' }] },
    {
      bucket,
      prefix: 'clicks/',
      format: 'jsonl',
      columns: [
        { identity: 'email', column: 'user.email' },
        { identity: 'user_id', column: 'user.id' },
      ],
      partitions: [{ identity: 'user_id', key: 'user_id' }],
    },
  ];
  const connector = () => new LakeConnector(s3, lakeSettingsSchema.parse({ tables: tables() }));
  const command = (): ConnectorCommand => ({
    requestId: 'r',
    action: 'delete',
    identities: [
      { type: 'email', value: 'user7@example.com' },
      { type: 'user_id', value: '7' },
    ],
    keyedHash: (v) => v,
  });
  const object = async (Key: string) => {
    const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key }));
    return new Uint8Array(await out.Body!.transformToByteArray());
  };

  it('rewrites every object holding the subject without their rows, and keeps the rest and the object’s settings', async () => {
    expect(await connector().verify(command())).toEqual({ remaining: 202 });

    expect(await connector().run(command())).toEqual({ affected: 202 });

    const after = await object('events/dt=2024-01-01/part-0.parquet');
    expect(shapeOf(after)).toBe(shapeOf(parquet));
    expect(await rowsOf(after)).toEqual((await rowsOf(parquet)).filter((r) => r['email'] !== 'user7@example.com'));
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'events/dt=2024-01-01/part-0.parquet' }));
    expect(head).toMatchObject({ ContentType: 'application/vnd.apache.parquet', Metadata: { writer: 'spark' } });
    expect(gunzipSync(await object('clicks/user_id=7/part-0.jsonl.gz')).toString()).toBe('{"user":{"email":"grace@example.com"},"event":"login"}\n\n');
    expect(await connector().verify(command())).toEqual({ remaining: 0 });
    expect(await connector().run(command())).toEqual({ affected: 0 });
  });

  it('removes 1,000 subjects in one pass, reading and writing each object once, and counts each one’s rows', async () => {
    const calls: string[] = [];
    s3.middlewareStack.add((next, context) => (args) => (calls.push(context.commandName ?? ''), next(args)), { step: 'initialize', name: 'count' });
    // Each known by e-mail and by a user_id that no clicks partition holds: only the Parquet objects are read.
    const subjects = new Map(
      Array.from({ length: 1000 }, (_, i) => [
        `r-${String(i)}`,
        [
          { type: 'email', value: `user${String(i)}@example.com` },
          { type: 'user_id', value: String(1000 + i) },
        ],
      ]),
    );
    try {
      const counts = await connector().runBatch(subjects);
      expect(counts.get('r-7')).toBe(200); // 100 rows in each of two Parquet objects
      expect(counts.get('r-49')).toBe(200);
      expect(counts.get('r-50')).toBe(0);
      expect([...counts.values()].reduce((a, b) => a + b, 0)).toBe(10_000);
      expect(calls.filter((c) => c === 'GetObjectCommand')).toHaveLength(2);
      expect(calls.filter((c) => c === 'PutObjectCommand')).toHaveLength(2);
      expect([...(await connector().verifyBatch(subjects)).values()].every((v) => v.remaining === 0)).toBe(true);
    } finally {
      s3.middlewareStack.remove('count');
    }
  });

  it('reads every partition for a subject known by no identity the partitions are keyed by', async () => {
    const error = await connector().run({ ...command(), identities: [{ type: 'email', value: 'user7@example.com' }] }).catch((e: unknown) => e);
    // The user_id=8 object is read now (and is not JSON): the subject's rows could be anywhere.
    expect((error as Error).message).toBe(`lake ${bucket}/clicks/: line 1 is not JSON; the object is left as it is`);
  });

  it('does not decode a row group whose statistics rule the subject out', async () => {
    // Sorted by e-mail, two rows a group, with statistics; the second group's pages are damaged,
    // so reading it would fail: only its min and max (c… to d…) may be consulted.
    const emails = ['a@example.com', 'b@example.com', 'c@example.com', 'd@example.com'];
    const file = new Uint8Array(parquetWriteBuffer({ columnData: [{ name: 'email', data: emails, type: 'STRING' }], rowGroupSize: 2, codec: 'UNCOMPRESSED' }));
    const second = struct(structs(structs(readParquet(file).meta, 4)[1]!, 1)[0]!, 3)!;
    file.fill(0xff, int(second, 9), int(second, 9)! + 4);
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'events/sorted.parquet', Body: file }));
    const sorted = () =>
      new LakeConnector(s3, lakeSettingsSchema.parse({ tables: [{ bucket, prefix: 'events/sorted', format: 'parquet', columns: [{ identity: 'email', column: 'email' }] }] }));

    expect(await sorted().run({ ...command(), identities: [{ type: 'email', value: 'a@example.com' }] })).toEqual({ affected: 1 });
    await expect(sorted().run({ ...command(), identities: [{ type: 'email', value: 'c@example.com' }] })).rejects.toThrow(
      `lake ${bucket}/events/sorted: an object cannot be read as Parquet (RangeError); it is left as it is`,
    );
  });

  it('leaves alone a table whose identity columns the subject has no value for', async () => {
    const before = await object('events/dt=2024-01-01/part-0.parquet');
    expect(await connector().run({ ...command(), identities: [{ type: 'phone', value: '+441234567890' }] })).toEqual({ affected: 0 });
    expect(Buffer.from(await object('events/dt=2024-01-01/part-0.parquet')).equals(Buffer.from(before))).toBe(true);
  });

  it(`removes nothing for ${String(HOSTILE_RUNS)} generated hostile identities (fast-check): every object stays byte for byte`, async () => {
    // Canary rows whose identities are the syntax hostile values are made of.
    const canaries = ['*', '%', '_', "' OR '1'='1", '.*', '\\', '"', 'USER7@EXAMPLE.COM', 'user7@example.com.evil', ' user7@example.com'];
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'canaries/part-0.jsonl', Body: canaries.map((email, id) => JSON.stringify({ email, id })).join('\n') }));
    const withCanaries = () =>
      new LakeConnector(
        s3,
        lakeSettingsSchema.parse({
          tables: [
            ...tables(),
            { bucket, prefix: 'canaries/', format: 'jsonl', columns: [{ identity: 'email', column: 'email' }, { identity: 'user_id', column: 'id' }] },
          ],
        }),
      );
    const keys = ['events/dt=2024-01-01/part-0.parquet', 'events/dt=2024-01-02/part-0.parquet', 'clicks/user_id=7/part-0.jsonl.gz', 'clicks/user_id=8/part-0.jsonl.gz', 'canaries/part-0.jsonl'];
    const before = await Promise.all(keys.map(object));
    // A subject's own values may rightly match: the table's e-mails and user ids, and the canaries themselves.
    const own = new Set([...Array.from({ length: 50 }, (_, i) => `user${String(i)}@example.com`), 'grace@example.com', '7', '8', ...canaries, ...canaries.map((_, i) => String(i))]);
    await fc.assert(
      fc.asyncProperty(hostileIdentifier, async (value) => {
        fc.pre(!own.has(value));
        expect(await withCanaries().run({ ...command(), identities: [{ type: 'email', value }, { type: 'user_id', value }] })).toEqual({ affected: 0 });
      }),
      { numRuns: HOSTILE_RUNS },
    );
    const after = await Promise.all(keys.map(object));
    after.forEach((bytes, i) => expect(Buffer.from(bytes).equals(Buffer.from(before[i]!)), keys[i]).toBe(true));
  }, 600_000);

  it('fails permanently on an object it cannot read as its table’s format, naming the table and not the key', async () => {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'clicks/user_id=7/part-1.jsonl', Body: 'user7@example.com was here\n' }));
    const error = await connector().run(command()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectorPermanentError);
    expect((error as Error).message).toBe(`lake ${bucket}/clicks/: line 1 is not JSON; the object is left as it is`);
  });
});
