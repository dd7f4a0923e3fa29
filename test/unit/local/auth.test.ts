import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';
import type { APIGatewayProxyEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalAuthorizer, type LocalCredentials } from '#local/auth';
import { createFrontDoor } from '#local/http';
import { LetheApi } from '../../../cli/api.ts';

/**
 * Local mode's front door checks SigV4 and the stack's roles as API Gateway does: a signature by a
 * known key, over what was sent, at most five minutes old, by a role whose policies allow
 * `execute-api:Invoke` on the route. Signed here by the AWS SDK's own signer and by curl.
 */
const API = 'ApiF70053CD';
const arn = (path: string) => `arn:aws:execute-api:us-east-1:000000000000:${API}/*/${path}`;
const credentials: LocalCredentials = {
  ComplianceRole: { accessKeyId: 'LKIACOMPLIANCE', secretAccessKey: 'compliance-secret' },
  OperatorRole: { accessKeyId: 'LKIAOPERATOR', secretAccessKey: 'operator-secret' },
};
const permissions = new Map([
  ['ComplianceRole', [arn('GET/v1/*'), arn('POST/v1/subjects:lookup')]],
  ['OperatorRole', [arn('GET/v1/*'), arn('POST/v1/subjects:lookup'), arn('POST/v1/requests/*')]],
]);
/** curl signs SigV4 from 7.75 on. */
const curlVersion = /^curl (\d+)\.(\d+)/.exec(spawnSync('curl', ['--version'], { encoding: 'utf8' }).stdout ?? '');
const curlSigns = curlVersion !== null && Number(curlVersion[1]) * 100 + Number(curlVersion[2]) >= 775;

describe('Local mode: SigV4 and roles on the API', () => {
  let server: Server;
  let base: string;
  const echo = async (event: APIGatewayProxyEvent) =>
    Promise.resolve({ statusCode: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ caller: event.requestContext.identity.userArn, body: event.body }) });

  beforeAll(async () => {
    server = createFrontDoor(
      [
        { method: 'GET', resource: '/v1/requests', authorization: 'AWS_IAM', invoke: echo },
        { method: 'GET', resource: '/v1/requests/{id}', authorization: 'AWS_IAM', invoke: echo },
        { method: 'POST', resource: '/v1/requests/{id}', authorization: 'AWS_IAM', invoke: echo },
        { method: 'POST', resource: '/v1/callbacks/{id}', authorization: 'NONE', invoke: echo },
      ],
      [],
      new LocalAuthorizer(credentials, permissions, API),
    );
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    base = `http://127.0.0.1:${String((server.address() as AddressInfo).port)}`;
  });
  afterAll(() => new Promise<void>((ok) => {
    server.close(() => ok());
    server.closeAllConnections();
  }));

  const as = (role: keyof typeof credentials, secret?: string) =>
    new LetheApi(base, { accessKeyId: credentials[role]!.accessKeyId, secretAccessKey: secret ?? credentials[role]!.secretAccessKey }, 'us-east-1');
  const answer = async (response: Response) => ({ status: response.status, body: (await response.json()) as Record<string, unknown> });

  it('lets each role do what the stack allows it, and names the role to the handler', async () => {
    expect(await answer(await as('ComplianceRole').fetch('/v1/requests?status=completed&limit=2'))).toMatchObject({ status: 200, body: { caller: 'arn:aws:sts::000000000000:assumed-role/ComplianceRole/local' } });
    const id = 'c0ffee00-0000-4000-8000-000000000001';
    expect(await answer(await as('OperatorRole').fetch(`/v1/requests/${id}:cancel`, { method: 'POST', body: '{"reason":"sent in error"}' }))).toMatchObject({
      status: 200,
      body: { caller: 'arn:aws:sts::000000000000:assumed-role/OperatorRole/local', body: '{"reason":"sent in error"}' },
    });
  });

  it('refuses compliance an action, with the message API Gateway gives', async () => {
    const refused = await answer(await as('ComplianceRole').fetch('/v1/requests/c0ffee00-0000-4000-8000-000000000001:cancel', { method: 'POST', body: '{"reason":"x"}' }));
    expect(refused).toEqual({
      status: 403,
      body: { message: `User: arn:aws:sts::000000000000:assumed-role/ComplianceRole/local is not authorized to perform: execute-api:Invoke on resource: arn:aws:execute-api:us-east-1:000000000000:${API}/local/POST/v1/requests/c0ffee00-0000-4000-8000-000000000001:cancel` },
    });
  });

  it('refuses unsigned requests, unknown keys, wrong secrets, altered bodies and stale signatures', async () => {
    expect(await answer(await fetch(`${base}/v1/requests`))).toEqual({ status: 403, body: { message: 'Missing Authentication Token' } });
    expect((await answer(await new LetheApi(base, { accessKeyId: 'LKIANOBODY', secretAccessKey: 'x' }, 'us-east-1').fetch('/v1/requests'))).body).toEqual({ message: 'The security token included in the request is invalid.' });
    expect((await answer(await as('OperatorRole', 'not-the-secret').fetch('/v1/requests'))).body['message']).toMatch(/^The request signature we calculated does not match/);

    const signer = new SignatureV4({ credentials: credentials['OperatorRole']!, region: 'us-east-1', service: 'execute-api', sha256: Hash.bind(null, 'sha256') });
    const url = new URL(`${base}/v1/requests/c0ffee00-0000-4000-8000-000000000001:retry`);
    const sign = (body: string, signingDate?: Date) =>
      signer.sign({ method: 'POST', protocol: 'http:', hostname: url.hostname, port: Number(url.port), path: url.pathname, query: {}, headers: { host: url.host, 'content-type': 'application/json' }, body }, signingDate ? { signingDate } : {});
    const send = async (headers: Record<string, string>, body: string) => {
      const { host: _host, ...rest } = headers;
      return answer(await fetch(url, { method: 'POST', headers: rest, body }));
    };
    expect((await send((await sign('{}')).headers, '{}')).status).toBe(200);
    // With the payload hash signed as a header (the SDK's default), and without it.
    expect((await send((await sign('{}')).headers, '{"more":1}')).body['message']).toMatch(/^The request signature we calculated does not match/);
    const { 'x-amz-content-sha256': _hash, ...unhashed } = (await sign('{}')).headers;
    expect(unhashed['authorization']).toContain('x-amz-content-sha256');
    expect((await send(unhashed, '{"more":1}')).body['message']).toMatch(/^Signed header x-amz-content-sha256 is missing/);
    const plain = new SignatureV4({ credentials: credentials['OperatorRole']!, region: 'us-east-1', service: 'execute-api', sha256: Hash.bind(null, 'sha256'), applyChecksum: false });
    const plainHeaders = (await plain.sign({ method: 'POST', protocol: 'http:', hostname: url.hostname, port: Number(url.port), path: url.pathname, query: {}, headers: { host: url.host }, body: '{}' })).headers;
    expect((await send(plainHeaders, '{}')).status).toBe(200);
    expect((await send(plainHeaders, '{"more":1}')).body['message']).toMatch(/^The request signature we calculated does not match/);
    expect((await send((await sign('{}', new Date(Date.now() - 6 * 60_000))).headers, '{}')).body['message']).toMatch(/^Signature expired/);
  });

  it('leaves routes without IAM authorization open (their handlers check webhook signatures)', async () => {
    expect((await answer(await fetch(`${base}/v1/callbacks/x`, { method: 'POST', body: '{}' }))).status).toBe(200);
  });

  // curl before 8.1 signs the query string as written, not sorted as SigV4 wants (AWS refuses that too): write it sorted.
  it.runIf(curlSigns)('accepts curl --aws-sigv4, with a query string', async () => {
    const { accessKeyId, secretAccessKey } = credentials['ComplianceRole']!;
    // Not spawnSync: the server answering curl runs in this process.
    const { stdout } = await promisify(execFile)('curl', ['-s', '--aws-sigv4', 'aws:amz:us-east-1:execute-api', '--user', `${accessKeyId}:${secretAccessKey}`, `${base}/v1/requests?limit=5&status=completed&type=opt_out`]);
    expect(JSON.parse(stdout)).toMatchObject({ caller: 'arn:aws:sts::000000000000:assumed-role/ComplianceRole/local' });
  });
});
