import {
  DeleteObjectsCommand,
  GetBucketVersioningCommand,
  GetObjectTaggingCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { S3Connector } from '#connectors/s3/connector';
import { s3SettingsSchema } from '#connectors/s3/settings';
import { ConnectorPermanentError } from '#core/errors';

/** What fauxqs cannot show: versioned buckets, Object Lock and object tags (recorded S3 answers). */
const s3 = new S3Client({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
const mock = mockClient(s3);
afterEach(() => mock.reset());

const command = { requestId: 'r', action: 'delete' as const, identities: [{ type: 'email', value: 'ada@example.com' }], keyedHash: (v: string) => v };
const connector = (objects: unknown[]) => new S3Connector(s3, s3SettingsSchema.parse({ bucket: 'exports', objects }));

describe('Class: S3Connector (versioned bucket)', () => {
  it('deletes every version and delete marker of the subject’s object, across pages', async () => {
    mock.on(GetBucketVersioningCommand).resolves({ Status: 'Enabled' });
    mock
      .on(ListObjectVersionsCommand)
      .resolvesOnce({
        IsTruncated: true,
        NextKeyMarker: 'exports/ada@example.com.json',
        NextVersionIdMarker: 'v2',
        Versions: [
          { Key: 'exports/ada@example.com.json', VersionId: 'v1' },
          { Key: 'exports/ada@example.com.json', VersionId: 'v2' },
        ],
      })
      .resolves({
        Versions: [{ Key: 'exports/ada@example.com.json.old', VersionId: 'v9' }],
        DeleteMarkers: [{ Key: 'exports/ada@example.com.json', VersionId: 'dm1' }],
      });
    mock.on(DeleteObjectsCommand).resolves({});

    expect(await connector([{ key: 'exports/{email}.json' }]).run(command)).toEqual({ affected: 3 });

    expect(mock.commandCalls(ListObjectVersionsCommand)[1]!.args[0].input).toMatchObject({ KeyMarker: 'exports/ada@example.com.json', VersionIdMarker: 'v2' });
    expect(mock).toHaveReceivedCommandWith(DeleteObjectsCommand, {
      Bucket: 'exports',
      Delete: {
        Quiet: true,
        Objects: [
          { Key: 'exports/ada@example.com.json', VersionId: 'v1' },
          { Key: 'exports/ada@example.com.json', VersionId: 'v2' },
          { Key: 'exports/ada@example.com.json', VersionId: 'dm1' },
        ],
      },
    });
  });

  it('fails permanently on an object Object Lock retains, naming its entry and version but not the key', async () => {
    mock.on(GetBucketVersioningCommand).resolves({ Status: 'Enabled' });
    mock.on(ListObjectVersionsCommand).resolves({ Versions: [{ Key: 'exports/ada@example.com.json', VersionId: 'v1' }] });
    mock.on(DeleteObjectsCommand).resolves({
      Errors: [{ Key: 'exports/ada@example.com.json', VersionId: 'v1', Code: 'AccessDenied', Message: 'Access Denied because object protected by object lock.' }],
    });

    const error = await connector([{ key: 'exports/{email}.json' }]).run(command).then(() => undefined, (e: unknown) => e as Error);

    expect(error).toBeInstanceOf(ConnectorPermanentError);
    expect(error?.message).toBe('s3 bucket exports: exports/{email}.json (version v1) is under Object Lock retention or legal hold and cannot be deleted');
  });
});

describe('Class: S3Connector (tags)', () => {
  it('deletes only the objects whose tag holds the subject’s identity', async () => {
    mock.on(GetBucketVersioningCommand).resolves({});
    mock.on(ListObjectsV2Command).resolves({ Contents: [{ Key: 'reports/1.csv' }, { Key: 'reports/2.csv' }] });
    mock.on(GetObjectTaggingCommand, { Key: 'reports/1.csv' }).resolves({ TagSet: [{ Key: 'subject', Value: 'ada@example.com' }] });
    mock.on(GetObjectTaggingCommand, { Key: 'reports/2.csv' }).resolves({ TagSet: [{ Key: 'subject', Value: 'grace@example.com' }] });
    mock.on(DeleteObjectsCommand).resolves({});

    expect(await connector([{ within: 'reports/', tag: 'subject', value: '{email}' }]).run(command)).toEqual({ affected: 1 });

    expect(mock).toHaveReceivedCommandWith(DeleteObjectsCommand, { Delete: { Quiet: true, Objects: [{ Key: 'reports/1.csv' }] } });
  });
});
