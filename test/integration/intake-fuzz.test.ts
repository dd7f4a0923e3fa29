import { CreateBucketCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { CreateQueueCommand, GetQueueAttributesCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient, paginateScan } from '@aws-sdk/lib-dynamodb';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, EventBridgeEvent } from 'aws-lambda';
import fc from 'fast-check';
import { startFauxqs } from 'fauxqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REGULATIONS, REQUEST_TYPES } from '#core/request';
import { handlerEnvironment, lambdaContext } from '../fixtures/lambda.ts';
import { createRequestsTable, createSuppressionsTable, credentials, dynamoDb, dynamoUnavailable, type DynamoEndpoint } from '../fixtures/servers.ts';

/**
 * Intake under hostile input (issue 8), on DynamoDB Local and fauxqs: fast-check sends
 * LETHE_FUZZ_RUNS cases (default 10,000: three fifths over HTTP, two fifths over EventBridge) of
 * raw bytes, arbitrary JSON and near-valid submissions. Nothing crashes and nothing answers 5xx;
 * every rejection is a 4xx naming the bad field; an invalid event is a dead letter naming its bad
 * fields. Afterwards the table holds exactly the requests that were accepted, and nothing of the
 * rejected ones was written.
 */
const RUNS = Number(process.env['LETHE_FUZZ_RUNS'] ?? 10_000);
const unavailable = dynamoUnavailable();
if (unavailable) console.warn(`skipping the intake fuzz test: ${unavailable}`);

/** Mostly near-valid submissions, so that validation is probed field by field, and some that pass. */
const identity = fc.record(
  {
    type: fc.oneof(fc.constantFrom('email', 'phone', 'user_id'), fc.string({ maxLength: 70 }), fc.anything()),
    value: fc.oneof(fc.emailAddress(), fc.string({ maxLength: 40, unit: 'grapheme' }), fc.string({ minLength: 500, maxLength: 600 }), fc.constantFrom('+44 20 7946 0018', '', ' ', '\u0000', '\ud800'), fc.anything()),
  },
  { requiredKeys: ['type', 'value'] },
);
const submission = fc.record(
  {
    type: fc.oneof(fc.constantFrom(...REQUEST_TYPES), fc.string({ maxLength: 12 }), fc.integer()),
    regulation: fc.oneof(fc.constantFrom(...REGULATIONS), fc.string({ maxLength: 8 })),
    identities: fc.oneof({ weight: 5, arbitrary: fc.array(identity, { maxLength: 3 }) }, fc.array(identity, { minLength: 19, maxLength: 22 }), fc.anything()),
    requestId: fc.oneof(fc.uuid(), fc.string({ maxLength: 40 })),
    source: fc.string({ maxLength: 140 }),
    sourceEventId: fc.string({ maxLength: 260 }),
    note: fc.anything(),
  },
  { requiredKeys: [] },
);
/** Valid submissions, with odd but acceptable values: these must be taken, once each. */
const valid = fc.record(
  {
    type: fc.constantFrom(...REQUEST_TYPES),
    regulation: fc.constantFrom(...REGULATIONS),
    identities: fc.array(
      fc.oneof(
        // Addresses without search syntax (*, ? and %), which intake refuses on purpose.
        fc.record({ type: fc.constant('email'), value: fc.emailAddress().filter((e) => !/[*?%]/.test(e)) }),
        fc.record({ type: fc.constantFrom('user_id', 'device_id', 'crm_contact_id'), value: fc.string({ minLength: 1, maxLength: 512, unit: 'grapheme' }) }),
      ),
      { minLength: 1, maxLength: 20 },
    ),
    requestId: fc.uuid(),
  },
  { requiredKeys: ['type', 'regulation', 'identities'] },
);
const body = fc.oneof(
  { weight: 3, arbitrary: valid.map((s) => JSON.stringify(s)) },
  { weight: 6, arbitrary: submission.map((s) => JSON.stringify(s)) },
  { weight: 2, arbitrary: fc.jsonValue().map((v) => JSON.stringify(v)) },
  { weight: 1, arbitrary: fc.string({ maxLength: 200, unit: 'binary' }) },
  { weight: 1, arbitrary: fc.constantFrom('', '{', '[]', 'null', '{"type":', '\uFEFF{}') },
);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const parse = (text: string): unknown => {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
};

describe.skipIf(unavailable)('Intake under hostile input (fast-check)', () => {
  let server: DynamoEndpoint;
  let fauxqs: Awaited<ReturnType<typeof startFauxqs>>;
  let sqs: SQSClient;
  let s3: S3Client;
  let rejectedQueueUrl: string;
  let intakeQueueUrl: string;
  let changesQueueUrl: string;
  let post: (body: string | null) => Promise<APIGatewayProxyResult>;
  let put: (detail: unknown) => Promise<unknown>;
  /** Request ids accepted (HTTP 202 or an event's answer), and the events rejected to the dead-letter queue. */
  const accepted = new Set<string>();
  let rejectedEvents = 0;

  beforeAll(async () => {
    server = await dynamoDb();
    fauxqs = await startFauxqs({ port: 0, logger: false });
    const aws = `http://127.0.0.1:${String(fauxqs.port)}`;
    sqs = new SQSClient({ endpoint: aws, region: 'us-east-1', credentials });
    s3 = new S3Client({ endpoint: aws, region: 'us-east-1', credentials, forcePathStyle: true });
    await s3.send(new CreateBucketCommand({ Bucket: 'audit' }));
    intakeQueueUrl = (await sqs.send(new CreateQueueCommand({ QueueName: 'intake' }))).QueueUrl!;
    rejectedQueueUrl = (await sqs.send(new CreateQueueCommand({ QueueName: 'rejected' }))).QueueUrl!;
    changesQueueUrl = (await sqs.send(new CreateQueueCommand({ QueueName: 'suppression-changes' }))).QueueUrl!;
    handlerEnvironment({
      AWS_ENDPOINT_URL_DYNAMODB: server.endpoint,
      AWS_ENDPOINT_URL_S3: aws,
      AWS_ENDPOINT_URL_SQS: aws,
      INTAKE_QUEUE_URL: intakeQueueUrl,
      REJECTED_EVENTS_QUEUE_URL: rejectedQueueUrl,
      SUPPRESSION_CHANGES_QUEUE_URL: changesQueueUrl,
    });
    await createRequestsTable(server.client);
    await createSuppressionsTable(server.client);
    const http = (await import('#functions/submit-request/handler')) as unknown as { handler: (e: APIGatewayProxyEvent, c: unknown) => Promise<APIGatewayProxyResult> };
    const events = (await import('#functions/receive-event/handler')) as unknown as { handler: (e: EventBridgeEvent<string, unknown>, c: unknown) => Promise<unknown> };
    post = (text) => http.handler({ body: text, isBase64Encoded: false, headers: {}, requestContext: { identity: { userArn: 'arn:aws:sts::1:assumed-role/SubmitterRole/fuzz' } } } as unknown as APIGatewayProxyEvent, lambdaContext('SubmitRequest'));
    let n = 0;
    put = (detail) =>
      events.handler(
        { version: '0', id: `evt-${String((n += 1))}`, 'detail-type': 'Privacy Request Submitted', source: 'com.example.fuzz', account: '0', time: new Date().toISOString(), region: 'us-east-1', resources: [], detail },
        lambdaContext('ReceiveEvent'),
      );
  }, 120_000);
  afterAll(async () => {
    await fauxqs.stop();
    await server.stop();
  });

  it(`answers ${String(Math.round(RUNS * 0.6))} HTTP bodies with a 2xx or a 4xx naming the field, never a 5xx`, async () => {
    await fc.assert(
      fc.asyncProperty(body, async (text) => {
        const answer = await post(text === '' ? null : text);
        const sent = parse(text);
        const reply = JSON.parse(answer.body) as { requestId?: string; error?: string; issues?: { path: string; message: string }[] };
        expect([202, 400, 409]).toContain(answer.statusCode);
        if (answer.statusCode === 202) accepted.add(reply.requestId!);
        // A conflict only for an id already taken (with another body).
        const taken = isObject(sent) && typeof sent['requestId'] === 'string' && accepted.has(sent['requestId'].toLowerCase());
        expect(answer.statusCode !== 409 || taken).toBe(true);
        if (answer.statusCode !== 400) return;
        expect(reply.error).toBe('ValidationError');
        expect(reply.issues!.length).toBeGreaterThan(0);
        // A field by its path; an unknown one by its name in the message; the body itself when it is not an object.
        const named = (i: { path: string; message: string }) => i.path !== '' || !isObject(sent) || Object.keys(sent).some((k) => i.message.includes(k));
        expect(reply.issues!.filter((i) => !named(i))).toEqual([]);
      }),
      { numRuns: Math.round(RUNS * 0.6), seed: Number(process.env['LETHE_FUZZ_SEED'] ?? Date.now() % 2 ** 31) },
    );
  }, 600_000);

  it(`takes ${String(Math.round(RUNS * 0.4))} events as requests or as dead letters naming the bad fields, never throwing`, async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof({ weight: 2, arbitrary: valid }, { weight: 4, arbitrary: submission }, fc.jsonValue()), async (detail) => {
        const answer = (await put(detail)) as { requestId: string } | undefined;
        if (answer) accepted.add(answer.requestId);
        else rejectedEvents += 1;
      }),
      { numRuns: Math.round(RUNS * 0.4), seed: Number(process.env['LETHE_FUZZ_SEED'] ?? Date.now() % 2 ** 31) },
    );
    const letters = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: rejectedQueueUrl, AttributeNames: ['ApproximateNumberOfMessages'] }));
    expect(Number(letters.Attributes?.['ApproximateNumberOfMessages'])).toBe(rejectedEvents);
    // Each names its event and its bad fields, and carries none of the event's detail.
    const sample = (await sqs.send(new ReceiveMessageCommand({ QueueUrl: rejectedQueueUrl, MaxNumberOfMessages: 10 }))).Messages ?? [];
    expect(sample.length).toBeGreaterThan(0);
    for (const m of sample) {
      const letter = JSON.parse(m.Body!) as Record<string, unknown>;
      expect(Object.keys(letter).sort()).toEqual(['eventId', 'invalidFields', 'rejected', 'source', 'time']);
      expect((letter['invalidFields'] as unknown[]).length).toBeGreaterThan(0);
    }
  }, 600_000);

  it('wrote the accepted requests, each with its audit record and one intake message, and nothing of the rejected ones', async () => {
    const stored = new Set<string>();
    let other = 0;
    for await (const page of paginateScan({ client: DynamoDBDocumentClient.from(server.client) }, { TableName: 'requests' })) {
      for (const item of page.Items ?? []) {
        const pk = String(item['pk']);
        if (item['sk'] === 'META') stored.add(String(item['requestId']));
        else if (!pk.startsWith('REQ#') && !pk.startsWith('SUBJECT#') && !pk.startsWith('UNLOGGED')) other += 1;
        if (pk.startsWith('REQ#') && !accepted.has(pk.slice(4))) other += 1;
      }
    }
    console.info(`intake fuzz: ${String(RUNS)} cases, ${String(accepted.size)} requests accepted, ${String(rejectedEvents)} events rejected to the dead-letter queue`);
    expect(accepted.size).toBeGreaterThan(RUNS / 10);
    expect([...stored].sort()).toEqual([...accepted].sort());
    expect(other).toBe(0);
    // Every suppression was set by an accepted request.
    const setBy = new Set<string>();
    const subjects = new Set<string>();
    for await (const page of paginateScan({ client: DynamoDBDocumentClient.from(server.client) }, { TableName: 'suppressions' })) {
      for (const item of page.Items ?? []) {
        // Each with its tag in the suppression filter and the key version it was made under.
        subjects.add(String(item['subject']));
        expect(item).toMatchObject({ tag: expect.stringMatching(/^[0-9a-f]{32}$/) as string, keyVersion: expect.any(String) as string });
        for (const [name, state] of Object.entries(item)) if (name.startsWith('scope_')) setBy.add((state as { requestId: string }).requestId);
      }
    }
    expect(setBy.size).toBeGreaterThan(0);
    expect([...setBy].filter((id) => !accepted.has(id))).toEqual([]);
    const chains = new Set<string>();
    for (let token: string | undefined, first = true; first || token; first = false) {
      const out = await s3.send(new ListObjectsV2Command({ Bucket: 'audit', Prefix: 'audit/', ...(token && { ContinuationToken: token }) }));
      for (const o of out.Contents ?? []) chains.add(o.Key!.split('/')[1]!);
      token = out.NextContinuationToken;
    }
    expect([...chains].sort()).toEqual([...accepted].sort());
    const queued = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: intakeQueueUrl, AttributeNames: ['ApproximateNumberOfMessages'] }));
    expect(Number(queued.Attributes?.['ApproximateNumberOfMessages'])).toBeGreaterThanOrEqual(accepted.size);
    // And the filter's publisher heard of each, by pseudonymous subject only.
    const changes = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: changesQueueUrl, AttributeNames: ['ApproximateNumberOfMessages'] }));
    expect(Number(changes.Attributes?.['ApproximateNumberOfMessages'])).toBeGreaterThanOrEqual(accepted.size);
    const noted = (await sqs.send(new ReceiveMessageCommand({ QueueUrl: changesQueueUrl, MaxNumberOfMessages: 10 }))).Messages ?? [];
    for (const m of noted) {
      const { subjects: named } = JSON.parse(m.Body!) as { subjects: string[] };
      expect(named.filter((s) => !subjects.has(s))).toEqual([]);
    }
  }, 120_000);
});
