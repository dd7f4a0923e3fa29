import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient, GetCommand, PutCommand, TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { handlerEnvironment, lambdaContext } from '../../fixtures/lambda.ts';

handlerEnvironment({ INTAKE_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/000000000000/intake' });
const dynamo = mockClient(DynamoDBDocumentClient);
const sqs = mockClient(SQSClient);
const s3 = mockClient(S3Client);
let handler: (e: APIGatewayProxyEvent, c: unknown) => Promise<APIGatewayProxyResult>;

beforeAll(async () => {
  ({ handler } = (await import('#functions/submit-request/handler')) as unknown as { handler: typeof handler });
});
afterEach(() => {
  dynamo.reset();
  sqs.reset();
  s3.reset();
});

const post = (body: unknown) =>
  handler(
    {
      body: typeof body === 'string' ? body : JSON.stringify(body),
      isBase64Encoded: false,
      requestContext: { identity: { userArn: 'arn:aws:iam::000000000000:user/backend' } },
    } as unknown as APIGatewayProxyEvent,
    lambdaContext('SubmitRequest'),
  );

const erasure = {
  type: 'erasure',
  regulation: 'gdpr',
  identities: [{ type: 'email', value: 'Ada@Example.com' }],
  requestId: '0b7c6f1e-3c4d-4e5f-8a9b-0c1d2e3f4a5b',
};

describe('Function: submit-request handler', () => {
  it('sets the deadline and the acknowledgement by the law and the request type', async () => {
    dynamo.on(GetCommand).resolves({});
    dynamo.on(PutCommand).resolves({});
    dynamo.on(TransactWriteCommand).resolves({});
    const at = Date.now();
    const stored = async (body: object) => {
      dynamo.resetHistory();
      expect((await post(body)).statusCode).toBe(202);
      return dynamo.commandCalls(PutCommand)[0]!.args[0].input.Item as { dueAt: string; acknowledgeBy?: string };
    };
    const days = (iso: string) => (Date.parse(iso) - at) / 86_400_000;
    const ccpa = await stored({ ...erasure, requestId: undefined, regulation: 'ccpa' });
    expect(days(ccpa.dueAt)).toBeCloseTo(45, 1);
    expect(days(ccpa.acknowledgeBy!)).toBeGreaterThanOrEqual(12); // 10 business days: 12 to 14 days, by the weekday
    expect(days(ccpa.acknowledgeBy!)).toBeLessThan(14.1);
    const optOut = await stored({ ...erasure, requestId: undefined, type: 'opt_out', regulation: 'ccpa' });
    expect(days(optOut.dueAt)).toBeGreaterThanOrEqual(19); // 15 business days: 19 to 21 days
    expect(days(optOut.dueAt)).toBeLessThan(21.1);
    expect(optOut.acknowledgeBy).toBeUndefined();
    expect(days((await stored({ ...erasure, requestId: undefined, regulation: 'lgpd' })).dueAt)).toBeCloseTo(15, 1);
    expect(days((await stored({ ...erasure, requestId: undefined, regulation: 'vcdpa' })).dueAt)).toBeCloseTo(45, 1);
  });

  it('counts the deadline from when the subject asked elsewhere (submittedAt), never from the future', async () => {
    dynamo.on(GetCommand).resolves({});
    dynamo.on(PutCommand).resolves({});
    dynamo.on(TransactWriteCommand).resolves({});
    const asked = new Date(Date.now() - 10 * 86_400_000).toISOString();
    expect((await post({ ...erasure, requestId: undefined, submittedAt: asked })).statusCode).toBe(202);
    const stored = dynamo.commandCalls(PutCommand)[0]!.args[0].input.Item as { dueAt: string; submittedAt: string; receivedAt: string };
    expect(stored.submittedAt).toBe(asked);
    // GDPR's month, from ten days ago: about twenty days left.
    expect((Date.parse(stored.dueAt) - Date.now()) / 86_400_000).toBeLessThan(22);
    expect((Date.parse(stored.dueAt) - Date.now()) / 86_400_000).toBeGreaterThan(17);

    const future = await post({ ...erasure, requestId: undefined, submittedAt: new Date(Date.now() + 3600_000).toISOString() });
    expect(future.statusCode).toBe(400);
    expect(JSON.parse(future.body)).toMatchObject({ issues: [{ path: 'submittedAt', message: 'must not be in the future' }] });
  });

  it('answers 202 and stores, audits and enqueues the request without the raw identity', async () => {
    dynamo.on(GetCommand).resolves({});
    dynamo.on(PutCommand).resolves({});
    dynamo.on(TransactWriteCommand).resolves({});

    const response = await post(erasure);

    expect(response.statusCode).toBe(202);
    expect(JSON.parse(response.body)).toMatchObject({ requestId: erasure.requestId, status: 'received' });
    const stored = dynamo.commandCalls(PutCommand)[0]!.args[0].input.Item!;
    expect(stored).toMatchObject({ requestId: erasure.requestId, status: 'received', dueAt: expect.any(String) as string });
    expect(sqs).toHaveReceivedCommandWith(SendMessageCommand, { MessageBody: JSON.stringify({ requestId: erasure.requestId }) });
    expect(s3).toHaveReceivedCommandTimes(PutObjectCommand, 1);
    const everything = JSON.stringify([
      dynamo.calls().map((c) => c.args[0].input),
      sqs.calls().map((c) => c.args[0].input),
      s3.calls().map((c) => c.args[0].input),
    ]);
    expect(everything.toLowerCase()).not.toContain('ada@example.com');
  });

  it('answers a replay with the same request and stores nothing new', async () => {
    dynamo.on(GetCommand).resolves({});
    dynamo.on(PutCommand).resolves({});
    dynamo.on(TransactWriteCommand).resolves({});
    await post(erasure);
    const stored = dynamo.commandCalls(PutCommand)[0]!.args[0].input.Item!;
    dynamo.reset();
    dynamo.on(GetCommand).resolves({ Item: { ...stored, status: 'completed' } });

    const response = await post(erasure);

    expect(response.statusCode).toBe(202);
    expect(JSON.parse(response.body)).toMatchObject({ requestId: erasure.requestId, status: 'completed' });
    expect(dynamo).not.toHaveReceivedCommand(PutCommand);
  });

  it('answers 409 when the same request id arrives with another body', async () => {
    dynamo.on(GetCommand).resolves({ Item: { requestId: erasure.requestId, bodyHash: 'something else', status: 'received' } });

    const response = await post({ ...erasure, type: 'anonymize' });

    expect(response.statusCode).toBe(409);
    expect(dynamo).not.toHaveReceivedCommand(PutCommand);
  });

  it('answers 400 naming the bad fields, and writes nothing', async () => {
    const response = await post({ type: 'erasure', regulation: 'hipaa', identities: [{ type: 'email', value: 'nope' }] });

    expect(response.statusCode).toBe(400);
    const body = JSON.parse(response.body) as { issues: { path: string }[] };
    expect(body.issues.map((i) => i.path).sort()).toEqual(['regulation']);
    expect(dynamo.calls()).toHaveLength(0);
    expect(sqs.calls()).toHaveLength(0);
    expect(s3.calls()).toHaveLength(0);

    const second = await post({ type: 'erasure', regulation: 'gdpr', identities: [{ type: 'email', value: 'nope' }] });
    expect(JSON.parse(second.body)).toMatchObject({ issues: [{ path: 'identities.0.value' }] });
  });

  it('answers 400 to an e-mail address that is search syntax (*, ?, %), naming it, and writes nothing', async () => {
    for (const value of ['*@example.com', 'a*@example.com', '%@example.com']) {
      const response = await post({ type: 'erasure', regulation: 'gdpr', identities: [{ type: 'email', value: 'ada@example.com' }, { type: 'email', value }] });
      expect(response.statusCode).toBe(400);
      expect(JSON.parse(response.body)).toMatchObject({ issues: [{ path: 'identities.1.value', message: 'must not contain *, ? or %: they are search syntax in the systems it is looked up in' }] });
    }
    expect(dynamo.calls()).toHaveLength(0);
    expect(sqs.calls()).toHaveLength(0);
  });

  it('keeps the address as the subject typed it, sealed, and pseudonymizes one subject typed two ways (NFC, NFD) alike', async () => {
    dynamo.on(GetCommand).resolves({});
    dynamo.on(PutCommand).resolves({});
    dynamo.on(TransactWriteCommand).resolves({});
    await post({ type: 'erasure', regulation: 'gdpr', requestId: '0b0b0b0b-0000-4000-8000-000000000001', identities: [{ type: 'email', value: 'J\u00fcrgen@Example.com' }] });
    await post({ type: 'erasure', regulation: 'gdpr', requestId: '0b0b0b0b-0000-4000-8000-000000000002', identities: [{ type: 'email', value: 'Ju\u0308rgen@example.com' }] });
    const [first, second] = dynamo
      .commandCalls(PutCommand)
      .map((c) => c.args[0].input.Item as { pseudonyms?: unknown; sealedIdentities?: string })
      .filter((item) => item.sealedIdentities !== undefined);
    expect(first!.pseudonyms).toEqual(second!.pseudonyms);
    expect(JSON.stringify([first, second])).not.toMatch(/rgen/);
  });

  it('answers 400 to a body that is not JSON', async () => {
    const response = await post('{"type":');

    expect(response.statusCode).toBe(400);
    expect(JSON.parse(response.body)).toMatchObject({ message: '(root): the body is not valid JSON' });
  });
});
