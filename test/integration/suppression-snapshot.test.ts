import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { CreateQueueCommand, GetQueueAttributesCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, FirehoseTransformationEvent, FirehoseTransformationResult } from 'aws-lambda';
import { startFauxqs } from 'fauxqs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { decodeFilter, mayContain, type FuseFilter } from '#core/filter';
import { normalizeIdentity, pseudonymize, type PseudonymKey } from '#core/identity';
import { FILTER_KEY, filterKeyOf, filterTag, type Scope } from '#core/suppression';
import { LocalKeyService } from '#functions/commons/keys';
import type { PublishResult } from '#functions/commons/suppression-snapshot';
import type { SuppressionStore } from '#functions/commons/suppression-store';
import { handlerEnvironment, lambdaContext } from '../fixtures/lambda.ts';
import { createSuppressionsTable, credentials, dynamoDb, dynamoUnavailable, type DynamoEndpoint } from '../fixtures/servers.ts';

/**
 * The filter snapshot on DynamoDB Local and fauxqs: the first run builds the filter from the
 * table, later runs merge what intake announced, and a product backend that fetches the filter the
 * API links to finds every suppressed identity in it and few others.
 */
const unavailable = dynamoUnavailable();
if (unavailable) console.warn(`skipping the suppression snapshot test: ${unavailable}`);

const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats.default(ajv);
ajv.addSchema({ ...(parse(readFileSync('docs/openapi.yaml', 'utf8')) as object), $id: 'openapi' });
const documented = ajv.getSchema('openapi#/paths/~1v1~1suppressions~1filter/get/responses/200/content/application~1json/schema')!;

describe.skipIf(unavailable)('Function: publish-suppressions and get-suppression-filter handlers (DynamoDB Local, fauxqs)', () => {
  let server: DynamoEndpoint;
  let fauxqs: Awaited<ReturnType<typeof startFauxqs>>;
  let sqs: SQSClient;
  let s3: S3Client;
  let queueUrl: string;
  let store: SuppressionStore;
  let key: PseudonymKey;
  let publish: (e: unknown, c: unknown) => Promise<PublishResult>;
  let getFilter: (e: APIGatewayProxyEvent, c: unknown) => Promise<APIGatewayProxyResult>;
  let transform: (e: FirehoseTransformationEvent, c: unknown) => Promise<FirehoseTransformationResult>;
  let n = 0;

  beforeAll(async () => {
    server = await dynamoDb();
    fauxqs = await startFauxqs({ port: 0, logger: false });
    const aws = `http://127.0.0.1:${String(fauxqs.port)}`;
    sqs = new SQSClient({ endpoint: aws, region: 'us-east-1', credentials });
    s3 = new S3Client({ endpoint: aws, region: 'us-east-1', credentials, forcePathStyle: true });
    await s3.send(new CreateBucketCommand({ Bucket: 'snapshots' }));
    queueUrl = (await sqs.send(new CreateQueueCommand({ QueueName: 'suppression-changes' }))).QueueUrl!;
    handlerEnvironment({
      AWS_ENDPOINT_URL_DYNAMODB: server.endpoint,
      AWS_ENDPOINT_URL_S3: aws,
      AWS_ENDPOINT_URL_SQS: aws,
      SNAPSHOT_BUCKET: 'snapshots',
      SUPPRESSION_CHANGES_QUEUE_URL: queueUrl,
      STREAM_FILTERS: JSON.stringify({
        'product-events': { fields: [{ path: 'user.email', identity: 'email' }], action: 'drop' },
        'profile-updates': { fields: [{ path: 'user.email', identity: 'email' }], action: 'redact', redact: ['user.name'] },
      }),
    });
    await createSuppressionsTable(server.client);
    store = new (await import('#functions/commons/suppression-store')).SuppressionStore('suppressions');
    key = await LocalKeyService.fromFile(process.env['LOCAL_KEY_FILE']!).pseudonymKey();
    ({ handler: publish } = (await import('#functions/publish-suppressions/handler')) as unknown as { handler: typeof publish });
    ({ handler: getFilter } = (await import('#functions/get-suppression-filter/handler')) as unknown as { handler: typeof getFilter });
    ({ handler: transform } = (await import('#functions/filter-stream/handler')) as unknown as { handler: typeof transform });
  });
  afterAll(async () => {
    await fauxqs.stop();
    await server.stop();
  });

  const email = (i: number) => normalizeIdentity({ type: 'email', value: `person-${String(i)}@example.com` });
  /** What intake does: apply the change with each identity's tag, and tell the publisher. */
  const change = async (ids: number[], scopes: Scope[], on: boolean, announce = true) => {
    const subjects = ids.map((i) => ({
      ...pseudonymize(email(i), key),
      tag: Buffer.from(filterTag(email(i), filterKeyOf(key))).toString('hex'),
      keyVersion: key.version,
    }));
    n += 1;
    await store.apply(subjects, scopes, { on, at: new Date(Date.UTC(2026, 10, 30, 0, 0, n)).toISOString(), requestId: `request-${String(n)}` });
    const { announceChange } = await import('#functions/commons/suppression-snapshot');
    if (announce) await announceChange(queueUrl, { subjects: subjects.map((s) => `${s.type}:${s.pseudonym}`) });
  };
  const run = () => publish({}, lambdaContext('PublishSuppressions'));
  /** What a product backend does: ask the API for the filter, download it, and look identities up. */
  const fetchFilter = async (): Promise<{ filter: FuseFilter; has: (i: number) => boolean; body: Record<string, unknown> }> => {
    const response = await getFilter({ headers: {}, requestContext: { identity: {} } } as unknown as APIGatewayProxyEvent, lambdaContext('GetSuppressionFilter'));
    expect(response.statusCode).toBe(200);
    const body = JSON.parse(response.body) as { url: string; filterKey: string; keyVersion: string };
    expect(documented(body), JSON.stringify(documented.errors)).toBe(true);
    const download = await fetch(body.url);
    expect(download.status).toBe(200);
    const filter = decodeFilter(new Uint8Array(await download.arrayBuffer()));
    const filterKey = { version: body.keyVersion, key: new Uint8Array(Buffer.from(body.filterKey, 'base64url')) };
    return { filter, body, has: (i) => mayContain(filter, filterTag(email(i), filterKey)) };
  };
  const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);
  const queued = async () =>
    Number((await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }))).Attributes?.['ApproximateNumberOfMessages']);

  it('answers 503 until the first run, which builds the filter from the whole table', async () => {
    const before = await getFilter({ headers: {}, requestContext: { identity: {} } } as unknown as APIGatewayProxyEvent, lambdaContext('GetSuppressionFilter'));
    expect(before.statusCode).toBe(503);
    // Suppressed before the publisher ever ran, and never announced: only a scan finds them.
    await change(range(0, 300), ['sale', 'sharing'], true, false);
    await change(range(300, 310), ['all'], true, false);
    await change(range(300, 305), ['sale'], false, false); // `all` still holds for these

    expect(await run()).toMatchObject({ published: true, rebuilt: true, count: 310, untagged: 0, bytes: expect.any(Number) as number });

    const { has, body, filter } = await fetchFilter();
    expect(body).toMatchObject({ format: 'lethe-binary-fuse-8/1', keyVersion: key.version, count: 310, falsePositiveRate: 1 / 256 });
    expect(body['bytes']).toBeGreaterThan(310); // about 9 bits each, and the header
    expect(filter.size).toBe(310);
    expect(range(0, 310).filter((i) => !has(i))).toEqual([]);
    // 1 in 256 of the others, give or take: well under 1 in 50.
    expect(range(10_000, 15_000).filter(has).length).toBeLessThan(100);
  });

  it('merges what intake announced: an opt-out in, a withdrawal out, and deletes the messages', async () => {
    await change([1000, 1001], ['marketing'], true);
    await change([0, 1], ['sale', 'sharing', 'marketing', 'processing'], false);

    expect(await run()).toMatchObject({ published: true, rebuilt: false, changes: 2, count: 310 });

    const { has } = await fetchFilter();
    expect([has(1000), has(1001), has(2)]).toEqual([true, true, true]);
    // Out of the filter (a false positive may still say yes, 1 time in 256: the table decides).
    expect([0, 1].filter(has).length).toBeLessThanOrEqual(1);
    expect(await queued()).toBe(0);
  });

  it('does nothing when nothing changed, drops a malformed message, and rebuilds a filter behind its tag set', async () => {
    expect(await run()).toMatchObject({ published: false, changes: 0 });
    await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: 'not json' }));
    expect(await run()).toMatchObject({ published: true, changes: 1, count: 310 });
    expect(await queued()).toBe(0);

    // A run that wrote the tag set and died before the filter left this behind.
    await s3.send(new PutObjectCommand({ Bucket: 'snapshots', Key: FILTER_KEY, Body: new Uint8Array(8), Metadata: { 'key-version': key.version, 'tags-etag': 'stale' } }));
    expect(await run()).toMatchObject({ published: true, changes: 0, count: 310 });
    const { has, filter } = await fetchFilter();
    expect(filter.size).toBe(310);
    expect([has(1000), has(309)]).toEqual([true, true]);
  });

  it("drops or redacts the records of suppressed subjects in a Firehose batch, keeps the others', and fails what it cannot read", async () => {
    const records = [
      ...[2, 150, 305, 1000].map((i) => ({ user: { email: `person-${String(i)}@example.com`, name: 'A Person' }, event: 'view' })), // suppressed
      ...[0, 1, 5000, 5001].map((i) => ({ user: { email: `PERSON-${String(i)}@example.com` }, event: 'view' })), // withdrawn, or never suppressed
      { event: 'anonymous' },
    ];
    const batch = (stream: string, extra: string[] = []): FirehoseTransformationEvent => ({
      invocationId: 'test',
      deliveryStreamArn: `arn:aws:firehose:us-east-1:000000000000:deliverystream/${stream}`,
      region: 'us-east-1',
      records: [...records.map((r) => `${JSON.stringify(r)}\n`), ...extra].map((text, i) => ({ recordId: String(i), approximateArrivalTimestamp: Date.now(), data: Buffer.from(text).toString('base64') })),
    });
    const text = (r: { data?: string }) => Buffer.from(r.data ?? '', 'base64').toString('utf8');
    const decoded = (r: { data?: string }) => JSON.parse(text(r)) as unknown;

    const dropped = await transform(batch('product-events', ['not json']), lambdaContext('StreamFilter'));
    expect(dropped.records.map((r) => r.result)).toEqual([...Array<string>(4).fill('Dropped'), ...Array<string>(5).fill('Ok'), 'ProcessingFailed']);
    expect(dropped.records.map((r) => r.recordId)).toEqual(records.map((_, i) => String(i)).concat('9'));
    expect(dropped.records.slice(4, 9).map(decoded)).toEqual(records.slice(4));
    expect(text(dropped.records[9]!)).toBe('not json');

    const redacted = await transform(batch('profile-updates'), lambdaContext('StreamFilter'));
    expect(redacted.records.every((r) => r.result === 'Ok')).toBe(true);
    expect(redacted.records.slice(0, 4).map(decoded)).toEqual(Array<unknown>(4).fill({ user: {}, event: 'view' }));
    expect(redacted.records.slice(4).map(decoded)).toEqual(records.slice(4));
    expect(text(redacted.records[0]!).endsWith('}\n')).toBe(true);

    // A stream the data map does not name: nothing passes unchecked.
    const unknown = await transform(batch('elsewhere'), lambdaContext('StreamFilter'));
    expect(new Set(unknown.records.map((r) => r.result))).toEqual(new Set(['ProcessingFailed']));
  });
});
