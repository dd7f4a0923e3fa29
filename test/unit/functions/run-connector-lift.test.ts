import {
  AdminDisableUserCommand,
  AdminEnableUserCommand,
  AdminGetUserCommand,
  CognitoIdentityProviderClient,
  ListUsersCommand,
} from '@aws-sdk/client-cognito-identity-provider';
import { SendTaskSuccessCommand, SFNClient } from '@aws-sdk/client-sfn';
import { S3Client } from '@aws-sdk/client-s3';
import { GetQueueUrlCommand, SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand, TransactWriteCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { open, seal } from '#core/envelope';
import { LocalKeyService } from '#functions/commons/keys';
import { handlerEnvironment, lambdaContext } from '../../fixtures/lambda.ts';
import { requestItem, taskDelivery } from '../../fixtures/worker.ts';

/**
 * The worker's side of restrict and withdraw, with a Cognito system: a restrict keeps what it is
 * about to disable, sealed, before disabling it; a withdraw enables exactly the users the subject's
 * earlier restrictions recorded, and waits for a restriction still under way.
 */
const pool = 'eu-west-1_AbCdEf123';
const system = {
  name: 'login',
  connector: 'cognito',
  identities: ['email'],
  actions: { restrict: 'restrict', withdraw: 'lift' },
  concurrency: 2,
  heartbeatSeconds: 60,
  timeoutSeconds: 600,
  maxAttempts: 3,
  settings: { userPoolId: pool, users: [{ attribute: 'email', identity: 'email' }] },
};
handlerEnvironment({ LETHE_SYSTEMS: JSON.stringify([system]), CONNECTOR_KIND: 'cognito' });
const dynamo = mockClient(DynamoDBDocumentClient);
const sfn = mockClient(SFNClient);
const sqs = mockClient(SQSClient);
const cognito = mockClient(CognitoIdentityProviderClient);
const s3 = mockClient(S3Client);
let handler: (e: SQSEvent, c: unknown) => Promise<SQSBatchResponse>;
const keys = LocalKeyService.fromFile(process.env['LOCAL_KEY_FILE']!);

const restrictId = '5d5e5f60-0000-4000-8000-00000000000a';
const withdrawId = '5d5e5f60-0000-4000-8000-00000000000b';
const pseudonyms = [{ type: 'email', pseudonym: 'ab'.repeat(32) }];
const dataKeys = new Map<string, Awaited<ReturnType<typeof keys.generateDataKey>>>();

beforeAll(async () => {
  ({ handler } = (await import('#functions/run-connector/handler')) as unknown as { handler: typeof handler });
  for (const id of [restrictId, withdrawId]) dataKeys.set(id, await keys.generateDataKey(id));
});

const request = (requestId: string, type: string, status: string, receivedAt: string) =>
  requestItem(requestId, dataKeys.get(requestId)!, [{ type: 'email', value: 'ada@example.com' }], { type, status, receivedAt, pseudonyms });
const meta = (requestId: string, item: unknown) => dynamo.on(GetCommand, { Key: { pk: `REQ#${requestId}`, sk: 'META' } }).resolves({ Item: item as Record<string, unknown> });

beforeEach(() => {
  dynamo.on(GetCommand).resolves({});
  dynamo.on(QueryCommand).resolves({ Items: [] });
  dynamo.on(QueryCommand, { ExpressionAttributeValues: { ':pk': `SUBJECT#email:${'ab'.repeat(32)}` } }).resolves({
    Items: [
      { requestId: restrictId, type: 'restrict', receivedAt: '2026-11-01T00:00:00.000Z' },
      { requestId: withdrawId, type: 'withdraw', receivedAt: '2026-11-02T00:00:00.000Z' },
    ],
  });
  dynamo.on(UpdateCommand).resolves({});
  dynamo.on(PutCommand).resolves({});
  dynamo.on(TransactWriteCommand).resolves({});
  sqs.on(GetQueueUrlCommand).resolves({ QueueUrl: 'https://sqs.us-east-1.amazonaws.com/000000000000/login' });
});
afterEach(() => {
  dynamo.reset();
  sfn.reset();
  sqs.reset();
  cognito.reset();
  s3.reset();
});

const delivery = (requestId: string, action: string): SQSEvent => taskDelivery({ requestId, system: 'login', action, taskToken: 't' });

describe('Function: run-connector handler, restrict and lift', () => {
  it('records, sealed, the users a restrict is about to disable, before it disables them', async () => {
    meta(restrictId, request(restrictId, 'restrict', 'in_progress', '2026-11-01T00:00:00.000Z'));
    const enabled = new Map([['ada-1', true], ['ada-2', false]]);
    cognito.on(ListUsersCommand).resolves({ Users: [{ Username: 'ada-1' }, { Username: 'ada-2' }] });
    cognito.on(AdminGetUserCommand).callsFake((i: { Username: string }) => ({ Username: i.Username, Enabled: enabled.get(i.Username) }));
    cognito.on(AdminDisableUserCommand).callsFake((i: { Username: string }) => {
      // By now the record must be kept.
      expect(dynamo.commandCalls(PutCommand, { Item: { sk: 'RESTRICTION#login' } }, false)).toHaveLength(1);
      enabled.set(i.Username, false);
      return {};
    });

    expect((await handler(delivery(restrictId, 'restrict'), lambdaContext())).batchItemFailures).toEqual([]);

    const put = dynamo.commandCalls(PutCommand).find((c) => c.args[0].input.Item?.['sk'] === 'RESTRICTION#login')!.args[0].input.Item!;
    expect(put).toMatchObject({ pk: `REQ#${restrictId}`, count: 1 });
    expect(JSON.stringify(put)).not.toContain('"ada-1"'); // quoted: ids are random hex, which may hold ada-1 unquoted
    expect(open(String(put['sealed']), dataKeys.get(restrictId)!.plaintext, restrictId)).toEqual({ [pool]: ['ada-1'] });
    expect(cognito).toHaveReceivedCommandTimes(AdminDisableUserCommand, 1);
  });

  it('lifts exactly what the earlier restriction recorded, and marks it lifted', async () => {
    meta(restrictId, request(restrictId, 'restrict', 'completed', '2026-11-01T00:00:00.000Z'));
    meta(withdrawId, request(withdrawId, 'withdraw', 'in_progress', '2026-11-02T00:00:00.000Z'));
    const sealed = seal({ [pool]: ['ada-1'] }, dataKeys.get(restrictId)!.plaintext, restrictId);
    dynamo.on(GetCommand, { Key: { pk: `REQ#${restrictId}`, sk: 'RESTRICTION#login' } }).resolves({ Item: { sealed, count: 1 } });
    const enabled = new Map([['ada-1', false], ['ada-2', false]]);
    cognito.on(AdminGetUserCommand).callsFake((i: { Username: string }) => ({ Username: i.Username, Enabled: enabled.get(i.Username) }));
    cognito.on(AdminEnableUserCommand).callsFake((i: { Username: string }) => enabled.set(i.Username, true));

    expect((await handler(delivery(withdrawId, 'lift'), lambdaContext())).batchItemFailures).toEqual([]);

    expect([...enabled]).toEqual([['ada-1', true], ['ada-2', false]]);
    expect(dynamo).toHaveReceivedCommandWith(UpdateCommand, {
      Key: { pk: `REQ#${restrictId}`, sk: 'RESTRICTION#login' },
      ExpressionAttributeValues: expect.objectContaining({ ':by': withdrawId }) as unknown as Record<string, unknown>,
    });
    const success = sfn.commandCalls(SendTaskSuccessCommand)[0]?.args[0].input.output;
    expect(JSON.parse(success ?? '{}')).toMatchObject({ requestId: withdrawId, action: 'lift', status: 'succeeded', affected: 1 });
  });

  it('waits, by retrying, for a restriction of the subject still under way', async () => {
    meta(restrictId, request(restrictId, 'restrict', 'in_progress', '2026-11-01T00:00:00.000Z'));
    meta(withdrawId, request(withdrawId, 'withdraw', 'in_progress', '2026-11-02T00:00:00.000Z'));

    expect((await handler(delivery(withdrawId, 'lift'), lambdaContext())).batchItemFailures).toEqual([{ itemIdentifier: 'm1' }]);

    expect(cognito).not.toHaveReceivedCommand(AdminEnableUserCommand);
    expect(sfn).not.toHaveReceivedCommand(SendTaskSuccessCommand);
  });
});
