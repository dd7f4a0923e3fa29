import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { SFNClient, StopExecutionCommand } from '@aws-sdk/client-sfn';
import { CreateQueueCommand, SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, EventBridgeEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { startFauxqs } from 'fauxqs';
import { randomUUID, verify, X509Certificate } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deadlinesFor } from '#core/deadlines';
import { OPENDSR_CHANGED } from '#core/opendsr';
import { LocalReceiptSigner } from '#functions/commons/receipts';
import { handlerEnvironment, lambdaContext } from '../fixtures/lambda.ts';
import { createRequestsTable, createSuppressionsTable, credentials, dynamoDb, dynamoUnavailable, type DynamoEndpoint } from '../fixtures/servers.ts';

/**
 * OpenDSR 2.0 on DynamoDB Local and fauxqs (Step Functions and EventBridge mocked): a controller
 * creates an erasure, reads its status, cancels it while it is pending, and hears of the change
 * by a callback whose signature a client checks knowing only the discovery document's URL.
 */
const unavailable = dynamoUnavailable();
if (unavailable) console.warn(`skipping the OpenDSR integration test: ${unavailable}`);

type Handler = (e: APIGatewayProxyEvent, c: unknown) => Promise<APIGatewayProxyResult>;
const CONTROLLER = 'arn:aws:sts::000000000000:assumed-role/SubmitterRole/session-1';

describe.skipIf(unavailable)('Functions: opendsr and opendsr-callbacks handlers', () => {
  const sfn = mockClient(SFNClient);
  const events = mockClient(EventBridgeClient);
  let server: DynamoEndpoint;
  let fauxqs: Awaited<ReturnType<typeof startFauxqs>>;
  let frontDoor: Server;
  let controller: Server;
  let apiUrl: string;
  let callbackUrl: string;
  let controllerAnswers = 202;
  const received: { headers: IncomingHttpHeaders; body: string }[] = [];
  let opendsr: Handler;
  let callbacks: (e: EventBridgeEvent<string, { requestId?: string; name?: string }>, c: unknown) => Promise<void>;

  const listen = async (s: Server) => {
    await new Promise<void>((ok) => s.listen(0, '127.0.0.1', ok));
    return `http://127.0.0.1:${String((s.address() as AddressInfo).port)}`;
  };
  const call = (method: string, resource: string, options: { body?: string; id?: string; caller?: string | null } = {}) =>
    opendsr(
      {
        resource,
        httpMethod: method,
        body: options.body ?? null,
        isBase64Encoded: false,
        headers: {},
        pathParameters: options.id ? { id: options.id } : null,
        requestContext: { identity: { userArn: options.caller === undefined ? CONTROLLER : options.caller } },
      } as unknown as APIGatewayProxyEvent,
      lambdaContext('OpenDsr'),
    );

  beforeAll(async () => {
    server = await dynamoDb();
    fauxqs = await startFauxqs({ port: 0, logger: false });
    const aws = `http://127.0.0.1:${String(fauxqs.port)}`;
    const sqs = new SQSClient({ endpoint: aws, region: 'us-east-1', credentials });
    const s3 = new S3Client({ endpoint: aws, region: 'us-east-1', credentials, forcePathStyle: true });
    await s3.send(new CreateBucketCommand({ Bucket: 'audit' }));
    // The public routes over HTTP, as API Gateway serves them (the handler behind).
    frontDoor = createServer((req, res) => {
      void call('GET', new URL(req.url ?? '/', 'http://x').pathname, { caller: null }).then((answer) => {
        res.writeHead(answer.statusCode, answer.headers as Record<string, string>);
        res.end(answer.body);
      });
    });
    apiUrl = await listen(frontDoor);
    controller = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        received.push({ headers: req.headers, body });
        res.writeHead(controllerAnswers).end();
      });
    });
    callbackUrl = `${await listen(controller)}/opendsr/callbacks`;
    const keyFile = join(mkdtempSync(join(tmpdir(), 'lethe-opendsr-')), 'opendsr-key.pem');
    LocalReceiptSigner.ensureKeyFile(keyFile);
    handlerEnvironment({
      AWS_ENDPOINT_URL_DYNAMODB: server.endpoint,
      AWS_ENDPOINT_URL_S3: aws,
      AWS_ENDPOINT_URL_SQS: aws,
      INTAKE_QUEUE_URL: (await sqs.send(new CreateQueueCommand({ QueueName: 'intake' }))).QueueUrl!,
      SUPPRESSION_CHANGES_QUEUE_URL: (await sqs.send(new CreateQueueCommand({ QueueName: 'suppression-changes' }))).QueueUrl!,
      STATE_MACHINE_ARN: 'arn:aws:states:us-east-1:000000000000:stateMachine:Saga',
      EVENT_BUS_NAME: 'lethe',
      API_URL: `${apiUrl}/`,
      OPENDSR_SIGNER: 'local',
      LOCAL_OPENDSR_KEY_FILE: keyFile,
    });
    sfn.on(StopExecutionCommand).rejects(Object.assign(new Error('no such execution'), { name: 'ExecutionDoesNotExist' }));
    events.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: '1' }] });
    await createRequestsTable(server.client);
    await createSuppressionsTable(server.client);
    ({ handler: opendsr } = (await import('#functions/opendsr/handler')) as unknown as { handler: Handler });
    ({ handler: callbacks } = (await import('#functions/opendsr-callbacks/handler')) as unknown as { handler: typeof callbacks });
  }, 60_000);
  afterAll(async () => {
    sfn.restore();
    events.restore();
    frontDoor.close();
    controller.close();
    await fauxqs.stop();
    await server.stop();
  });

  /** A controller's verifier, from the discovery document alone: its certificate, for its domain. */
  const verifierFrom = async (discoveryUrl: string) => {
    const discovery = (await (await fetch(discoveryUrl)).json()) as { processor_certificate: string };
    const certificateUrl = new URL(discovery.processor_certificate);
    expect(certificateUrl.host).toBe(new URL(discoveryUrl).host); // on the discovery's own domain
    const certificate = new X509Certificate(await (await fetch(certificateUrl)).text());
    return (headers: Record<string, string | string[] | undefined>, body: string) => {
      const domain = String(headers['x-opendsr-processor-domain'] ?? '');
      const signature = String(headers['x-opendsr-signature'] ?? '');
      if (domain !== certificateUrl.hostname) return false;
      if (!certificate.checkHost(domain) && !certificate.checkIP(domain)) return false;
      return verify('sha256', Buffer.from(body), certificate.publicKey, Buffer.from(signature, 'base64'));
    };
  };
  const lower = (headers: Record<string, unknown> | undefined) => Object.fromEntries(Object.entries(headers ?? {}).map(([k, v]) => [k.toLowerCase(), v as string]));
  const request = (id: string, overrides: Record<string, unknown> = {}) =>
    JSON.stringify({
      subject_request_id: id,
      regulation: 'gdpr',
      subject_request_type: 'erasure',
      submitted_time: '2026-11-29T15:00:00Z',
      subject_identities: [
        { identity_type: 'email', identity_value: 'johndoe@example.com', identity_format: 'raw' },
        { identity_type: 'controller_customer_id', identity_value: 'c-4471', identity_format: 'raw' },
      ],
      api_version: '2.0',
      status_callback_urls: [callbackUrl],
      ...overrides,
    });

  it('publishes discovery and a certificate for its domain, which verify its signed answers', async () => {
    const discovery = (await (await fetch(`${apiUrl}/opendsr/v2/discovery`)).json()) as Record<string, unknown>;
    expect(discovery).toMatchObject({
      api_version: '2.0',
      supported_subject_request_types: ['erasure'],
      processor_certificate: `${apiUrl}/opendsr/v2/cert.pem`,
      supported_identities: expect.arrayContaining([{ identity_type: 'email', identity_format: 'raw' }]) as unknown,
    });
    const certificate = new X509Certificate(await (await fetch(`${apiUrl}/opendsr/v2/cert.pem`)).text());
    expect(certificate.subject).toBe('CN=127.0.0.1');
    expect(certificate.checkIP('127.0.0.1')).toBe('127.0.0.1');
    const status = await call('GET', '/opendsr/v2/status');
    expect((await verifierFrom(`${apiUrl}/opendsr/v2/discovery`))(lower(status.headers), status.body)).toBe(true);
    expect((await verifierFrom(`${apiUrl}/opendsr/v2/discovery`))(lower(status.headers), status.body.replace('ok', 'OK'))).toBe(false);
  });

  it('creates an erasure, answers with a signed receipt of the whole request, and keeps no identity of its own', async () => {
    const id = randomUUID();
    const body = request(id);
    const created = await call('POST', '/opendsr/v2/requests', { body });
    expect(created.statusCode, created.body).toBe(201);
    const answer = JSON.parse(created.body) as Record<string, string>;
    expect(answer).toMatchObject({ controller_id: 'arn:aws:iam::000000000000:role/SubmitterRole', subject_request_id: id, encoded_request: Buffer.from(body).toString('base64') });
    expect((await verifierFrom(`${apiUrl}/opendsr/v2/discovery`))(lower(created.headers), created.body)).toBe(true);
    // A Lethe erasure under the controller's id, due when the answer says.
    const dynamo = DynamoDBDocumentClient.from(server.client);
    const meta = (await dynamo.send(new GetCommand({ TableName: 'requests', Key: { pk: `REQ#${id}`, sk: 'META' } }))).Item!;
    expect(meta).toMatchObject({ type: 'erasure', regulation: 'gdpr', status: 'received', dueAt: answer['expected_completion_time'], submittedAt: '2026-11-29T15:00:00.000Z' });
    // GDPR's month runs from the subject's request to the controller, not from its arrival here.
    expect(answer['expected_completion_time']).toBe(deadlinesFor('gdpr', 'erasure', new Date('2026-11-29T15:00:00Z')).dueAt);
    expect((meta['pseudonyms'] as { type: string }[]).map((p) => p.type).sort()).toEqual(['email', 'user_id']);
    const kept = (await dynamo.send(new GetCommand({ TableName: 'requests', Key: { pk: `REQ#${id}`, sk: 'OPENDSR' } }))).Item!;
    expect(kept).toMatchObject({ callbackUrls: [callbackUrl], lastStatus: 'pending' });
    expect(JSON.stringify(kept)).not.toMatch(/johndoe|c-4471/);

    // The same request again is the same answer; other contents under its id are refused.
    expect((await call('POST', '/opendsr/v2/requests', { body })).statusCode).toBe(201);
    const conflict = await call('POST', '/opendsr/v2/requests', { body: request(id, { regulation: 'ccpa' }) });
    expect(conflict.statusCode).toBe(400);
    expect(JSON.parse(conflict.body)).toMatchObject({ error: { code: 400, message: expect.stringMatching(/exists already/) as string } });
  });

  it('answers status, signed, to its own controller only', async () => {
    const id = randomUUID();
    expect((await call('POST', '/opendsr/v2/requests', { body: request(id) })).statusCode).toBe(201);
    const status = await call('GET', '/opendsr/v2/requests/{id}', { id });
    expect(status.statusCode).toBe(200);
    expect(JSON.parse(status.body)).toMatchObject({ subject_request_id: id, request_status: 'pending', api_version: '2.0', expected_completion_time: expect.any(String) as string });
    expect((await verifierFrom(`${apiUrl}/opendsr/v2/discovery`))(lower(status.headers), status.body)).toBe(true);
    // The same role from another session is the same controller; another role is not.
    expect((await call('GET', '/opendsr/v2/requests/{id}', { id, caller: 'arn:aws:sts::000000000000:assumed-role/SubmitterRole/session-2' })).statusCode).toBe(200);
    expect((await call('GET', '/opendsr/v2/requests/{id}', { id, caller: 'arn:aws:sts::000000000000:assumed-role/OtherController/s' })).statusCode).toBe(404);
    expect((await call('GET', '/opendsr/v2/requests/{id}', { id: randomUUID() })).statusCode).toBe(404);
  });

  it('cancels while pending, then tells the callback URL, signed, once; a second cancel is refused', async () => {
    const id = randomUUID();
    expect((await call('POST', '/opendsr/v2/requests', { body: request(id) })).statusCode).toBe(201);
    events.resetHistory();
    const cancelled = await call('DELETE', '/opendsr/v2/requests/{id}', { id });
    expect(cancelled.statusCode, cancelled.body).toBe(202);
    expect(JSON.parse(cancelled.body)).toMatchObject({ subject_request_id: id, api_version: '2.0', received_time: expect.any(String) as string });
    const verifies = await verifierFrom(`${apiUrl}/opendsr/v2/discovery`);
    expect(verifies(lower(cancelled.headers), cancelled.body)).toBe(true);
    expect(JSON.parse((await call('GET', '/opendsr/v2/requests/{id}', { id })).body)).toMatchObject({ request_status: 'cancelled' });
    // The change goes on the bus for the callbacks function.
    const put = events.commandCalls(PutEventsCommand)[0]!.args[0].input.Entries![0]!;
    expect(put).toMatchObject({ DetailType: OPENDSR_CHANGED, Source: 'lethe' });
    const event = { source: 'lethe', 'detail-type': OPENDSR_CHANGED, detail: JSON.parse(put.Detail!) as { requestId: string } } as EventBridgeEvent<string, { requestId: string }>;

    received.length = 0;
    await callbacks(event, lambdaContext('OpenDsrCallbacks'));
    expect(received).toHaveLength(1);
    const callback = received[0]!;
    expect(verifies(callback.headers, callback.body)).toBe(true);
    expect(verifies(callback.headers, callback.body.replace('cancelled', 'completed'))).toBe(false);
    expect(JSON.parse(callback.body)).toMatchObject({ subject_request_id: id, request_status: 'cancelled', status_callback_url: callbackUrl, controller_id: expect.any(String) as string });
    // Told once: the same change again sends nothing.
    await callbacks(event, lambdaContext('OpenDsrCallbacks'));
    expect(received).toHaveLength(1);

    const again = await call('DELETE', '/opendsr/v2/requests/{id}', { id });
    expect(again.statusCode).toBe(400);
    expect(JSON.parse(again.body)).toMatchObject({ error: { message: 'only a pending request can be cancelled; this one is cancelled' } });
  });

  it('says in progress as soon as the saga begins, in the callback and in the status', async () => {
    const id = randomUUID();
    expect((await call('POST', '/opendsr/v2/requests', { body: request(id) })).statusCode).toBe(201);
    received.length = 0;
    const running = { source: 'aws.states', 'detail-type': 'Step Functions Execution Status Change', detail: { name: id, status: 'RUNNING' } } as EventBridgeEvent<string, { name: string; status: string }>;
    await callbacks(running, lambdaContext('OpenDsrCallbacks'));
    expect(received.map((r) => (JSON.parse(r.body) as { request_status: string }).request_status)).toEqual(['in_progress']);
    expect(JSON.parse((await call('GET', '/opendsr/v2/requests/{id}', { id })).body)).toMatchObject({ request_status: 'in_progress' });
    await callbacks(running, lambdaContext('OpenDsrCallbacks'));
    expect(received).toHaveLength(1); // told once
    // Not pending any more: the controller can no longer cancel it.
    const cancel = await call('DELETE', '/opendsr/v2/requests/{id}', { id });
    expect(cancel.statusCode).toBe(400);
    expect(JSON.parse(cancel.body)).toMatchObject({ error: { message: 'only a pending request can be cancelled; this one is in_progress' } });
  });

  it('retries a callback the controller refused, and a saga status change for a request not from OpenDSR is ignored', async () => {
    const id = randomUUID();
    expect((await call('POST', '/opendsr/v2/requests', { body: request(id) })).statusCode).toBe(201);
    expect((await call('DELETE', '/opendsr/v2/requests/{id}', { id })).statusCode).toBe(202);
    const event = { source: 'aws.states', 'detail-type': 'Step Functions Execution Status Change', detail: { name: id } } as EventBridgeEvent<string, { name: string }>;
    controllerAnswers = 500;
    received.length = 0;
    await expect(callbacks(event, lambdaContext('OpenDsrCallbacks'))).rejects.toThrow(/1 of 1 callbacks failed \(HTTP 500\)/);
    controllerAnswers = 202;
    await callbacks(event, lambdaContext('OpenDsrCallbacks'));
    expect(received.map((r) => (JSON.parse(r.body) as { request_status: string }).request_status)).toEqual(['cancelled', 'cancelled']);
    received.length = 0;
    await callbacks({ ...event, detail: { name: `${randomUUID()}-r2` } }, lambdaContext('OpenDsrCallbacks'));
    expect(received).toEqual([]);
  });

  it('refuses what it cannot do, in OpenDSR error form, naming the field and never the identity', async () => {
    const refusal = async (body: string) => {
      const answer = await call('POST', '/opendsr/v2/requests', { body });
      expect(answer.statusCode).toBe(400);
      expect(answer.body).not.toMatch(/johndoe|c-4471/);
      return (JSON.parse(answer.body) as { error: { code: number; errors?: { domain: string; message: string }[] } }).error;
    };
    const hashed = await refusal(request(randomUUID(), { subject_identities: [{ identity_type: 'email', identity_value: 'a'.repeat(64), identity_format: 'sha256' }] }));
    expect(hashed).toMatchObject({ code: 400, errors: [{ domain: 'Validation', message: expect.stringMatching(/^subject_identities\.0\.identity_format: only raw/) as string }] });
    expect((await refusal(request(randomUUID(), { subject_request_type: 'access' }))).errors?.[0]?.message).toMatch(/^subject_request_type: only erasure/);
    expect((await refusal(request('A7551968-D5D6-44B2-9831-815AC9017798'))).errors?.[0]?.message).toMatch(/^subject_request_id: must be a lower-case UUID v4/);
    expect((await refusal(request(randomUUID(), { status_callback_urls: ['http://example.com/cb'] }))).errors?.[0]?.message).toMatch(/^status_callback_urls\.0: must be an https URL/);
    expect((await refusal(request(randomUUID(), { subject_identities: [{ identity_type: 'email', identity_value: 'johndoe@', identity_format: 'raw' }] }))).errors?.[0]?.message).toMatch(/^subject_identities\.0\.identity_value: must be an e-mail address/);
    expect((await refusal('{"subject_request_id": ')).errors?.[0]?.message).toBe('the body is not valid JSON');
  });
});
