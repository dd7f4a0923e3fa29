import { GetObjectCommand, ListObjectsV2Command, ListObjectVersionsCommand, PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { LakeConnector } from '#connectors/lake/connector';
import { lakeSettingsSchema } from '#connectors/lake/settings';
import { ConfigError, ConnectorPermanentError, ConnectorRetryableError } from '#core/errors';
import type { ConnectorCommand } from '#core/ports';
import { VersionedBucket } from '../../fixtures/versioned-s3.ts';

/**
 * Versioned buckets, which no S3 emulator here keeps (an in-memory versioned bucket stands in):
 * every version and delete marker is a candidate; the new version must directly follow the one
 * read, or it is taken back and the rewrite starts over; the version read and older ones holding
 * the subject go, also when a rewrite was cut short before; Object Lock is a permanent error.
 */
let bucket: VersionedBucket | undefined;
afterEach(() => {
  bucket?.stub.restore();
  bucket = undefined;
});

const KEY = 'clicks/part-0.jsonl';
const OTHER_KEY = 'clicks/part-1.jsonl';
// The subject, and neighbours one character apart and sharing a prefix.
const withSubject = '{"email":"ada@example.com"}\n{"email":"adam@example.com"}\n{"email":"ada@example.co"}\n';
const without = '{"email":"adam@example.com"}\n{"email":"ada@example.co"}\n';
const connector = () =>
  new LakeConnector(new S3Client({ region: 'eu-west-1' }), lakeSettingsSchema.parse({ tables: [{ bucket: 'lake', prefix: 'clicks/', format: 'jsonl', columns: [{ identity: 'email', column: 'email' }] }] }));
const command: ConnectorCommand = { requestId: 'r', action: 'delete', identities: [{ type: 'email', value: 'ada@example.com' }], keyedHash: (v) => v };
const versioned = () => (bucket = new VersionedBucket());

describe('Class: LakeConnector, versioned buckets', () => {
  it('deletes the version it read and older versions holding the subject, and keeps the rest', async () => {
    const b = versioned();
    b.put(KEY, without); // an old version without the subject: kept
    b.put(KEY, withSubject);
    b.put(KEY, withSubject);
    b.put(OTHER_KEY, without);
    expect(await connector().verify(command)).toEqual({ remaining: 2 });

    expect(await connector().run(command)).toEqual({ affected: 1 });

    expect(b.bodies(KEY)).toEqual([without, without]);
    expect(b.bodies(OTHER_KEY)).toEqual([without]);
    expect(await connector().verify(command)).toEqual({ remaining: 0 });
  });

  it('finishes a rewrite that was cut short between writing the new version and deleting the old one', async () => {
    const b = versioned();
    b.put(KEY, withSubject);
    // The worker dies right after writing its version: the delete of the old one never happens.
    b.onDelete = () => {
      b.onDelete = undefined;
      throw new S3ServiceException({ name: 'InternalError', $fault: 'server', $metadata: { httpStatusCode: 500 }, message: 'worker killed' });
    };
    expect(await connector().run(command).catch((e: unknown) => e)).toBeInstanceOf(ConnectorRetryableError);
    expect(b.bodies(KEY)).toEqual([without, withSubject]);
    // The current version has none of the subject's rows; an older one does: not done.
    expect(await connector().verify(command)).toEqual({ remaining: 1 });

    // The retry finds the rows in the old version, removes them, and counts them: found, not "nothing found".
    expect(await connector().run(command)).toEqual({ affected: 1 });

    expect(b.bodies(KEY)).toEqual([without]);
    expect(await connector().verify(command)).toEqual({ remaining: 0 });
  });

  it('finds the subject behind a delete marker, and deletes those versions, the marker staying', async () => {
    const b = versioned();
    b.put(KEY, withSubject);
    b.put(KEY, without);
    b.put(KEY, withSubject);
    b.hide(KEY);
    expect(await connector().verify(command)).toEqual({ remaining: 2 });

    expect(await connector().run(command)).toEqual({ affected: 1 });

    expect(b.bodies(KEY)).toEqual(['marker', without]);
    expect(await connector().verify(command)).toEqual({ remaining: 0 });
  });

  it('takes its version back and starts over when another writer came in between', async () => {
    const b = versioned();
    b.put(KEY, withSubject);
    b.beforePut = () => b.put(KEY, `${withSubject}{"email":"new@example.com"}\n`);

    expect(await connector().run(command)).toEqual({ affected: 1 });

    // The other writer's line survives; every version with the subject is gone.
    expect(b.bodies(KEY)).toEqual([`${without}{"email":"new@example.com"}\n`]);
    expect(await connector().verify(command)).toEqual({ remaining: 0 });
  });

  it('fails permanently when Object Lock keeps a version holding the subject', async () => {
    const b = versioned();
    b.put(KEY, withSubject);
    b.keys.get(KEY)![0]!.locked = true;

    const error = await connector().run(command).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectorPermanentError);
    expect((error as Error).message).toMatch(/^lake lake\/clicks\/: version v\d+ is retained by Object Lock; it still holds the subject's rows$/);
  });

  it('refuses a prefix holding a Delta Lake or Hudi table, naming it, before rewriting anything', async () => {
    for (const log of ['_delta_log', '.hoodie']) {
      const b = versioned();
      b.put(KEY, withSubject);
      b.put(`clicks/${log}/00000000000000000000.json`, '{}');
      const error = await connector().run(command).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).issues[0]!.message).toMatch(new RegExp(`^s3://lake/clicks/ holds a (Delta Lake|Hudi) table \\(${log.replace('.', '\\.')}/\\): rewriting its files underneath`));
      expect(b.bodies(KEY)).toEqual([withSubject]);
      b.stub.restore();
    }
  });
});

describe('Class: LakeConnector, unversioned buckets', () => {
  it('writes conditionally on the ETag, and reads again when it changed', async () => {
    const s3 = mockClient(S3Client);
    onTestFinished(() => s3.restore());
    // A store that lists no versions (an emulator) is listed by object.
    s3.on(ListObjectVersionsCommand).resolves({});
    s3.on(ListObjectsV2Command).resolves({ Contents: [{ Key: KEY }] });
    s3.on(GetObjectCommand).callsFake(() => ({ Body: { transformToByteArray: () => Promise.resolve(new Uint8Array(Buffer.from(withSubject))) }, ETag: '"e1"' }));
    s3.on(PutObjectCommand)
      .rejectsOnce(new S3ServiceException({ name: 'PreconditionFailed', $fault: 'client', $metadata: { httpStatusCode: 412 }, message: 'At least one of the pre-conditions you specified did not hold' }))
      .resolves({});

    expect(await connector().run(command)).toEqual({ affected: 1 });

    expect(s3.commandCalls(PutObjectCommand).map((c) => c.args[0].input.IfMatch)).toEqual(['"e1"', '"e1"']);
    expect(s3.commandCalls(GetObjectCommand)).toHaveLength(2);
  });
});
