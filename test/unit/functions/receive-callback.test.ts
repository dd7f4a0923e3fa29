import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { Webhook } from 'standardwebhooks';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { handlerEnvironment, lambdaContext } from '../../fixtures/lambda.ts';
import { WEBHOOK_SECRET } from '../../fixtures/webhook-service.ts';

/**
 * The callback route: a webhook service reports an accepted task's outcome. Nothing is read or
 * written unless the signature is the system's, fresh, and made for this task.
 */
handlerEnvironment({
  LETHE_WEBHOOKS: JSON.stringify({ 'billing-svc': { secret: { env: 'LETHE_TEST_BILLING_SECRET' }, queueUrl: 'https://sqs.local/billing-svc' } }),
  LETHE_TEST_BILLING_SECRET: WEBHOOK_SECRET,
});
const dynamo = mockClient(DynamoDBDocumentClient);
const sqs = mockClient(SQSClient);
const s3 = mockClient(S3Client);
let handler: (e: APIGatewayProxyEvent, c: unknown) => Promise<APIGatewayProxyResult>;

beforeAll(async () => {
  ({ handler } = (await import('#functions/receive-callback/handler')) as unknown as { handler: typeof handler });
});
const requestId = '7a7b7c7d-0000-4000-8000-0000000000bb';
const taskKey = { pk: `REQ#${requestId}`, sk: 'TASK#billing-svc#delete' };
const waiting = { requestId, system: 'billing-svc', action: 'delete', status: 'waiting_on_vendor', taskToken: 'token-7', nextHeartbeatAt: '2099-01-01T00:00:00.000Z' };
beforeEach(() => {
  dynamo.on(GetCommand, { Key: taskKey }).resolves({ Item: waiting });
  dynamo.on(UpdateCommand).resolves({});
  sqs.on(SendMessageCommand).resolves({});
});
afterEach(() => {
  dynamo.reset();
  sqs.reset();
  s3.reset();
});

const service = new Webhook(WEBHOOK_SECRET);
const sign = (id: string, body: string, at = new Date(), signer = service) => ({
  'Content-Type': 'application/json',
  'Webhook-Id': id,
  'Webhook-Timestamp': String(Math.floor(at.getTime() / 1000)),
  'Webhook-Signature': signer.sign(id, at, body),
});
const callback = (body: string, headers: Record<string, string>, path: Record<string, string> = { requestId, system: 'billing-svc', action: 'delete' }) =>
  handler(
    { body, headers, pathParameters: path, isBase64Encoded: false, requestContext: { identity: {} } } as unknown as APIGatewayProxyEvent,
    lambdaContext(),
  );
const id = `${requestId}:billing-svc:delete`;
const done = JSON.stringify({ status: 'done', affected: 4 });

describe('Function: receive-callback handler', () => {
  it('records a signed report on the waiting task and has its worker settle it, with ids and the token only', async () => {
    const response = await callback(done, sign(id, done));

    expect(response.statusCode).toBe(202);
    expect(JSON.parse(response.body)).toEqual({ status: 'recorded' });
    const update = dynamo.commandCalls(UpdateCommand)[0]!.args[0].input;
    expect(update).toMatchObject({
      Key: taskKey,
      ConditionExpression: '#status IN (:running, :waiting) AND attribute_not_exists(#callback)',
      ExpressionAttributeValues: { ':report': { job: id, status: 'done', affected: 4 } },
    });
    expect(sqs).toHaveReceivedCommandWith(SendMessageCommand, {
      QueueUrl: 'https://sqs.local/billing-svc',
      MessageBody: JSON.stringify({ requestId, system: 'billing-svc', action: 'delete', taskToken: 'token-7', poll: true }),
    });
  });

  it.each([
    ['unsigned', () => ({ 'Content-Type': 'application/json' }), /not signed/],
    ['signed with another secret', () => sign(id, done, new Date(), new Webhook(`whsec_${Buffer.from('x'.repeat(32)).toString('base64')}`)), /does not match/],
    ['signed 6 minutes ago', () => sign(id, done, new Date(Date.now() - 6 * 60_000)), /more than 5 minutes old/],
    ['signed for another task', () => sign(`${requestId}:billing-svc:restrict`, done), /signed for another task/],
    ['with a body other than the one signed', () => sign(id, JSON.stringify({ status: 'done', affected: 0 })), /does not match/],
  ])('rejects a callback %s with a 401, reading and writing nothing', async (_, headers, message) => {
    const response = await callback(done, headers());

    expect(response.statusCode).toBe(401);
    expect(JSON.parse(response.body)).toMatchObject({ error: 'Unauthorized', message: expect.stringMatching(message) as string });
    expect(dynamo.calls()).toHaveLength(0);
    expect(sqs.calls()).toHaveLength(0);
  });

  it('rejects a callback without any headers or body with a 401', async () => {
    const response = await handler(
      { body: null, headers: null, pathParameters: { requestId, system: 'billing-svc', action: 'delete' }, isBase64Encoded: false, requestContext: { identity: {} } } as unknown as APIGatewayProxyEvent,
      lambdaContext(),
    );
    expect(response.statusCode).toBe(401);
  });

  it('names every bad field of a signed body, and records nothing', async () => {
    const body = JSON.stringify({ status: 'failed', error: 'Could not delete ada@example.com' });
    const response = await callback(body, sign(id, body));

    expect(response.statusCode).toBe(400);
    expect(JSON.parse(response.body)).toMatchObject({ issues: [{ path: 'error', message: expect.stringMatching(/error code/) as string }] });
    expect(dynamo).not.toHaveReceivedCommand(UpdateCommand);
  });

  it('answers 404 for a system that takes no callbacks, and for a task that does not exist', async () => {
    expect((await callback(done, sign(id, done), { requestId, system: 'crm', action: 'delete' })).statusCode).toBe(404);
    dynamo.on(GetCommand, { Key: taskKey }).resolves({});
    expect((await callback(done, sign(id, done))).statusCode).toBe(404);
  });

  it('answers the same report again as recorded, and another report with a 409', async () => {
    dynamo.on(UpdateCommand).rejects(new ConditionalCheckFailedException({ message: 'condition', $metadata: {} }));
    dynamo.on(GetCommand, { Key: taskKey }).resolves({ Item: { ...waiting, status: 'succeeded', callback: { job: id, status: 'done', affected: 4, at: '2026-11-29T00:00:00Z' } } });

    expect((await callback(done, sign(id, done))).statusCode).toBe(200);
    const failed = JSON.stringify({ status: 'failed', error: 'legal_hold' });
    const conflict = await callback(failed, sign(id, failed));
    expect(conflict.statusCode).toBe(409);
    expect(JSON.parse(conflict.body)).toMatchObject({ message: 'a done report was recorded for this task already' });
    expect(sqs).not.toHaveReceivedCommand(SendMessageCommand);
  });
});
