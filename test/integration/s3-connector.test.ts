import { CreateBucketCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { startFauxqs } from 'fauxqs';
import fc from 'fast-check';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { S3Connector } from '#connectors/s3/connector';
import { s3SettingsSchema } from '#connectors/s3/settings';
import type { Identity } from '#core/identity';
import { HOSTILE_RUNS, hostileIdentifier, NEIGHBOUR_USER_IDS, SUBJECT_EMAIL, SUBJECT_EMAIL_STORED, SUBJECT_USER_ID } from '../fixtures/hostile.ts';
import { credentials } from '../fixtures/servers.ts';

/** Unversioned buckets on fauxqs; versions, Object Lock and tags (which fauxqs lacks) are in test/unit/connectors/s3.test.ts. */
describe('Class: S3Connector (fauxqs)', () => {
  let fauxqs: Awaited<ReturnType<typeof startFauxqs>>;
  let s3: S3Client;
  let bucket: string;
  let n = 0;

  beforeAll(async () => {
    fauxqs = await startFauxqs({ port: 0, logger: false });
    s3 = new S3Client({ endpoint: fauxqs.address, region: 'us-east-1', credentials, forcePathStyle: true });
  });
  afterAll(async () => fauxqs.stop());

  beforeEach(async () => {
    bucket = `exports-${String((n += 1))}`;
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    for (const Key of ['exports/u1.json', 'exports/u2.json', 'exports/u1.json.bak', 'uploads/u1/a.txt', 'uploads/u1/b.txt', 'uploads/u10/c.txt', 'uploads/*/d.txt']) {
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key, Body: 'x' }));
    }
  });

  const connector = () =>
    new S3Connector(s3, s3SettingsSchema.parse({ bucket, objects: [{ key: 'exports/{user_id}.json' }, { prefix: 'uploads/{user_id}/' }] }));
  const command = (identities: Identity[]) => ({ requestId: 'r', action: 'delete' as const, identities, keyedHash: (v: string) => v });
  const keys = async () => ((await s3.send(new ListObjectsV2Command({ Bucket: bucket }))).Contents ?? []).map((o) => o.Key).sort();

  it('deletes the subject’s object and everything under its prefix, and nothing else', async () => {
    const u1 = [{ type: 'user_id', value: 'u1' }];

    expect(await connector().run(command(u1))).toEqual({ affected: 3 });

    expect(await keys()).toEqual(['exports/u1.json.bak', 'exports/u2.json', 'uploads/*/d.txt', 'uploads/u10/c.txt']);
    expect(await connector().verify(command(u1))).toEqual({ remaining: 0 });
    expect(await connector().run(command(u1))).toEqual({ affected: 0 });
  });

  it('reports the subject’s objects under another case or Unicode form as near-misses, and touches no neighbour', async () => {
    const subjectKeys = [`exports/${SUBJECT_USER_ID}.json`, `uploads/${SUBJECT_USER_ID}/a.txt`];
    const near = [`exports/${SUBJECT_USER_ID.toUpperCase()}.json`, `uploads/${SUBJECT_USER_ID.toUpperCase()}/b.txt`, `exports/${SUBJECT_EMAIL_STORED.nfd}.json`];
    const neighbours = NEIGHBOUR_USER_IDS.filter((id) => !id.includes('*')).flatMap((id) => [`exports/${id}.json`, `uploads/${id}/n.txt`]);
    for (const Key of [...subjectKeys, ...near, ...neighbours]) await s3.send(new PutObjectCommand({ Bucket: bucket, Key, Body: Key }));
    const before = (await keys()).filter((k) => neighbours.includes(k!));
    const subject = [{ type: 'user_id', value: SUBJECT_USER_ID }, { type: 'email_key', value: SUBJECT_EMAIL }];
    const withEmail = new S3Connector(s3, s3SettingsSchema.parse({ bucket, objects: [{ key: 'exports/{user_id}.json' }, { prefix: 'uploads/{user_id}/' }, { key: 'exports/{email_key}.json' }] }));

    expect(await withEmail.run(command(subject))).toEqual({ affected: 2 });
    expect(await withEmail.verify(command(subject))).toEqual({ remaining: 0, nearMisses: { case: 2, unicode: 1 } });
    expect((await keys()).filter((k) => neighbours.includes(k!))).toEqual(before);
    expect(before).toHaveLength(neighbours.length);
  });

  it('deletes nothing for hostile identities', async () => {
    const before = await keys();
    for (const value of ['*', '../u2', 'u', '%', "' OR '1'='1", 'u1/../u2']) {
      expect(await connector().run(command([{ type: 'user_id', value }]))).toEqual({ affected: value === '*' ? 1 : 0 });
    }
    expect(await keys()).toEqual(before.filter((k) => k !== 'uploads/*/d.txt'));
  });

  it(`deletes nothing for ${String(HOSTILE_RUNS)} generated hostile identities (fast-check)`, async () => {
    const before = await keys();
    // Literal names of objects here (`*` names uploads/*/): those a subject of that name rightly owns.
    const own = new Set(['u1', 'u2', 'u10', '*']);
    await fc.assert(
      fc.asyncProperty(hostileIdentifier, async (value) => {
        fc.pre(!own.has(value));
        expect(await connector().run(command([{ type: 'user_id', value }]))).toEqual({ affected: 0 });
      }),
      { numRuns: HOSTILE_RUNS },
    );
    expect(await keys()).toEqual(before);
  }, 600_000);

  it('refuses a prefix that would let one identity match another’s', () => {
    expect(() => s3SettingsSchema.parse({ bucket: 'b-1', objects: [{ prefix: 'uploads/{user_id}' }] })).toThrow(/so that u1 does not also match u10/);
  });
});
