import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, ListObjectVersionsCommand, PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { LakeConnector } from '#connectors/lake/connector';
import { lakeSettingsSchema } from '#connectors/lake/settings';
import { ConnectorPermanentError } from '#core/errors';
import type { ConnectorCommand } from '#core/ports';

/**
 * Versioned buckets, which fauxqs lacks: the new version must directly follow the one read, or it
 * is taken back and the rewrite starts over; the version read and older ones holding the subject
 * are deleted; Object Lock is a permanent error.
 */
const s3 = mockClient(S3Client);
afterEach(() => s3.reset());

const KEY = 'clicks/part-0.jsonl';
const withSubject = '{"email":"ada@example.com"}\n{"email":"grace@example.com"}\n';
const without = '{"email":"grace@example.com"}\n';
/** The one call of a body the connector makes. */
const body = (text: string) => ({ transformToByteArray: () => Promise.resolve(new Uint8Array(Buffer.from(text))) }) as never;
const connector = () =>
  new LakeConnector(new S3Client({ region: 'eu-west-1' }), lakeSettingsSchema.parse({ tables: [{ bucket: 'lake', prefix: 'clicks/', format: 'jsonl', columns: [{ identity: 'email', column: 'email' }] }] }));
const command: ConnectorCommand = { requestId: 'r', action: 'delete', identities: [{ type: 'email', value: 'ada@example.com' }], keyedHash: (v) => v };
const deleted = () => s3.commandCalls(DeleteObjectCommand).map((c) => c.args[0].input.VersionId);

describe('Class: LakeConnector, versioned buckets', () => {
  it('deletes the version it read and older versions holding the subject, once its own follows the one read', async () => {
    s3.on(ListObjectsV2Command).resolves({ Contents: [{ Key: KEY }] });
    s3.on(GetObjectCommand, { Key: KEY }).callsFake(() => ({ Body: body(withSubject), VersionId: 'v2', ETag: '"e2"', ContentType: 'application/x-ndjson' }));
    s3.on(GetObjectCommand, { Key: KEY, VersionId: 'v1' }).callsFake(() => ({ Body: body(withSubject), VersionId: 'v1' }));
    s3.on(GetObjectCommand, { Key: KEY, VersionId: 'v0' }).callsFake(() => ({ Body: body(without), VersionId: 'v0' }));
    s3.on(PutObjectCommand).resolves({ VersionId: 'v3' });
    s3.on(ListObjectVersionsCommand).resolves({ Versions: [{ Key: KEY, VersionId: 'v3' }, { Key: KEY, VersionId: 'v2' }, { Key: KEY, VersionId: 'v1' }, { Key: KEY, VersionId: 'v0' }] });
    s3.on(DeleteObjectCommand).resolves({});

    expect(await connector().run(command)).toEqual({ affected: 1 });

    const put = s3.commandCalls(PutObjectCommand)[0]!.args[0].input;
    expect(Buffer.from(put.Body as Uint8Array).toString()).toBe(without);
    expect(put).toMatchObject({ ContentType: 'application/x-ndjson' });
    expect(put.IfMatch).toBeUndefined();
    expect(deleted()).toEqual(['v2', 'v1']);
  });

  it('takes its version back and starts over when another writer came in between', async () => {
    s3.on(ListObjectsV2Command).resolves({ Contents: [{ Key: KEY }] });
    s3.on(GetObjectCommand).callsFakeOnce(() => ({ Body: body(withSubject), VersionId: 'v1' })).callsFake(() => ({ Body: body(withSubject), VersionId: 'v2' }));
    s3.on(PutObjectCommand).resolvesOnce({ VersionId: 'v3' }).resolves({ VersionId: 'v4' });
    s3.on(ListObjectVersionsCommand)
      .resolvesOnce({ Versions: [{ Key: KEY, VersionId: 'v3' }, { Key: KEY, VersionId: 'v2' }, { Key: KEY, VersionId: 'v1' }] })
      .resolves({ Versions: [{ Key: KEY, VersionId: 'v4' }, { Key: KEY, VersionId: 'v2' }] });
    s3.on(DeleteObjectCommand).resolves({});

    expect(await connector().run(command)).toEqual({ affected: 1 });

    expect(s3.commandCalls(PutObjectCommand)).toHaveLength(2);
    expect(deleted()).toEqual(['v3', 'v2']);
  });

  it('writes conditionally on the ETag in an unversioned bucket, and reads again when it changed', async () => {
    s3.on(ListObjectsV2Command).resolves({ Contents: [{ Key: KEY }] });
    s3.on(GetObjectCommand).callsFake(() => ({ Body: body(withSubject), ETag: '"e1"' }));
    s3.on(PutObjectCommand)
      .rejectsOnce(new S3ServiceException({ name: 'PreconditionFailed', $fault: 'client', $metadata: { httpStatusCode: 412 }, message: 'At least one of the pre-conditions you specified did not hold' }))
      .resolves({});

    expect(await connector().run(command)).toEqual({ affected: 1 });

    expect(s3.commandCalls(PutObjectCommand).map((c) => c.args[0].input.IfMatch)).toEqual(['"e1"', '"e1"']);
    expect(s3.commandCalls(GetObjectCommand)).toHaveLength(2);
  });

  it('fails permanently when Object Lock keeps a version holding the subject', async () => {
    s3.on(ListObjectsV2Command).resolves({ Contents: [{ Key: KEY }] });
    s3.on(GetObjectCommand).callsFake(() => ({ Body: body(withSubject), VersionId: 'v1' }));
    s3.on(PutObjectCommand).resolves({ VersionId: 'v2' });
    s3.on(ListObjectVersionsCommand).resolves({ Versions: [{ Key: KEY, VersionId: 'v2' }, { Key: KEY, VersionId: 'v1' }] });
    s3.on(DeleteObjectCommand).rejects(new S3ServiceException({ name: 'AccessDenied', $fault: 'client', $metadata: { httpStatusCode: 403 }, message: 'Access Denied because object protected by object lock.' }));

    const error = await connector().run(command).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectorPermanentError);
    expect((error as Error).message).toBe("lake lake/clicks/: version v1 is retained by Object Lock; it still holds the subject's rows");
  });
});
