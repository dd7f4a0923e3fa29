import { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LakeConnector } from '#connectors/lake/connector';
import { lakeSettingsSchema } from '#connectors/lake/settings';
import type { ConnectorCommand } from '#core/ports';
import { versionedS3Server } from '../fixtures/versioned-s3.ts';

/**
 * The lake connector through the AWS SDK against versioned buckets served over S3's REST API (the
 * chaos suite's lake): versions listed two to a page, an old version and one behind a delete
 * marker holding the subject, a rewrite cut short and finished by the next run, and neighbours one
 * character apart and sharing a prefix left byte for byte.
 */
let server: Awaited<ReturnType<typeof versionedS3Server>>;
beforeAll(async () => {
  server = await versionedS3Server(2);
});
afterAll(() => server.close());

const subject = '{"email":"ada@example.com","n":1}\n';
const neighbours = '{"email":"adam@example.com","n":12345678901234567890}\n{"email":"ada@example.co","n":1.50}\n';
const command: ConnectorCommand = { requestId: 'r', action: 'delete', identities: [{ type: 'email', value: 'ada@example.com' }], keyedHash: (v) => v };
const connector = (bucket: string) =>
  new LakeConnector(
    new S3Client({ endpoint: server.url, region: 'eu-west-1', forcePathStyle: true, credentials: { accessKeyId: 'local', secretAccessKey: 'local' } }),
    lakeSettingsSchema.parse({ tables: [{ bucket, prefix: 'clicks/', format: 'jsonl', columns: [{ identity: 'email', column: 'email' }] }] }),
  );

describe('Class: LakeConnector, over S3 REST with versions', () => {
  it('removes the subject from every version and behind delete markers, and counts what it found', async () => {
    const b = server.bucket('rest-versions');
    b.put('clicks/a.jsonl', neighbours);
    b.put('clicks/a.jsonl', subject + neighbours);
    b.put('clicks/b.jsonl', subject + subject + neighbours);
    b.hide('clicks/b.jsonl');
    b.put('clicks/c.jsonl', neighbours);
    b.put('clicks-other/d.jsonl', subject); // outside the prefix
    expect(await connector('rest-versions').verify(command)).toEqual({ remaining: 3 });

    expect(await connector('rest-versions').run(command)).toEqual({ affected: 3 });

    expect(b.bodies('clicks/a.jsonl')).toEqual([neighbours, neighbours]);
    expect(b.bodies('clicks/b.jsonl')).toEqual(['marker']);
    expect(b.bodies('clicks/c.jsonl')).toEqual([neighbours]);
    expect(b.bodies('clicks-other/d.jsonl')).toEqual([subject]);
    expect(await connector('rest-versions').verify(command)).toEqual({ remaining: 0 });
  });

  it('finishes on the next run a rewrite cut short after its new version was written', async () => {
    const b = server.bucket('rest-torn');
    b.put('clicks/a.jsonl', subject + neighbours);
    // What the cut-short run left: its new version on top, the old one with the subject below.
    b.put('clicks/a.jsonl', neighbours);
    expect(await connector('rest-torn').verify(command)).toEqual({ remaining: 1 });

    expect(await connector('rest-torn').run(command)).toEqual({ affected: 1 });

    expect(b.bodies('clicks/a.jsonl')).toEqual([neighbours]);
    expect(await connector('rest-torn').verify(command)).toEqual({ remaining: 0 });
  });
});
