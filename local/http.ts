import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { AccessDenied, type Caller, type LocalAuthorizer } from './auth.ts';
import { AwsApiError } from './step-functions.ts';

export interface Route {
  readonly method: string;
  /** API Gateway resource path, e.g. `/v1/requests/{id}`. */
  readonly resource: string;
  /** The method's AuthorizationType: `AWS_IAM` routes need a SigV4 signature by a role allowed to invoke them. */
  readonly authorization: string;
  readonly invoke: (event: APIGatewayProxyEvent) => Promise<unknown>;
}

/** More than the API on the same port (the dashboard): true when it answered. */
export type ExtraHandler = (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<boolean>;

export interface AwsService {
  /** `X-Amz-Target` prefix, e.g. `AWSEvents` or `AWSStepFunctions`. */
  readonly prefix: string;
  readonly contentType: string;
  handle(operation: string, body: Record<string, unknown>): unknown;
}

const MAX_BODY = 1024 * 1024;

/**
 * Local mode's one front door on 127.0.0.1: the stack's REST routes (as API Gateway proxy events),
 * `GET /health`, and the AWS JSON protocol for the emulated EventBridge and Step Functions, so the
 * AWS SDK works against it with an endpoint override.
 */
export function createFrontDoor(routes: readonly Route[], services: readonly AwsService[], authorizer: LocalAuthorizer, extra?: ExtraHandler): Server {
  const compiled = routes.map((r) => ({
    ...r,
    pattern: new RegExp(`^${r.resource.replace(/\{([^}]+)\}/g, '(?<$1>[^/]+)')}$`),
  }));
  // Idle connections are kept a minute, as API Gateway keeps them, rather than Node's 5 s: a client
  // busy longer than that (a CLI run in between) would otherwise reuse a socket the server just closed.
  return createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    serve(req, res).catch((error: unknown) => {
      if (!res.headersSent) send(res, 500, { message: 'internal error in local mode' });
      process.stderr.write(`local front door: ${(error as Error).name}\n`);
    });
  });

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req);
    if (body === undefined) return send(res, 413, { message: 'body larger than 1 MiB' });
    const target = req.headers['x-amz-target'];
    if (typeof target === 'string') return serveAws(target, body, res);

    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (req.method === 'GET' && url.pathname === '/health') return send(res, 200, { status: 'ok' });
    if (extra && (await extra(req, res, url))) return;
    for (const route of compiled) {
      const match = route.pattern.exec(url.pathname);
      if (!match || route.method !== req.method) continue;
      let caller: Caller | undefined;
      if (route.authorization === 'AWS_IAM') {
        try {
          caller = await authorizer.authorize({ method: route.method, path: (req.url ?? '/').split('?')[0]!, query: url.searchParams, headers: req.headers, body });
        } catch (error) {
          if (error instanceof AccessDenied) return send(res, 403, { message: error.message });
          throw error;
        }
      }
      const event = proxyEvent(req, url, route.resource, match.groups ?? {}, body, caller);
      const result = (await route.invoke(event)) as APIGatewayProxyResult;
      res.writeHead(result.statusCode, { ...(result.headers as Record<string, string> | undefined) });
      res.end(result.body);
      return;
    }
    send(res, 404, { message: `no route for ${req.method ?? ''} ${url.pathname}` });
  }

  async function serveAws(target: string, body: string, res: ServerResponse): Promise<void> {
    const [prefix, operation] = target.split('.');
    const service = services.find((s) => s.prefix === prefix);
    if (!service || !operation) return send(res, 400, { __type: 'UnknownOperationException', message: target });
    try {
      const parsed = JSON.parse(body || '{}') as Record<string, unknown>;
      send(res, 200, await service.handle(operation, parsed), service.contentType);
    } catch (error) {
      if (error instanceof AwsApiError) {
        return send(res, error.status, { __type: error.type, message: error.message }, service.contentType);
      }
      if (error instanceof SyntaxError) {
        return send(res, 400, { __type: 'SerializationException', message: 'invalid JSON' }, service.contentType);
      }
      throw error;
    }
  }
}

function proxyEvent(
  req: IncomingMessage,
  url: URL,
  resource: string,
  pathParameters: Record<string, string>,
  body: string,
  caller: Caller | undefined,
): APIGatewayProxyEvent {
  const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(',') : (v ?? '')]));
  const query = Object.fromEntries(url.searchParams);
  return {
    resource,
    path: url.pathname,
    httpMethod: req.method ?? 'GET',
    headers,
    multiValueHeaders: {},
    queryStringParameters: Object.keys(query).length ? query : null,
    multiValueQueryStringParameters: null,
    pathParameters: Object.keys(pathParameters).length ? pathParameters : null,
    stageVariables: null,
    body: body || null,
    isBase64Encoded: false,
    requestContext: {
      accountId: '000000000000',
      apiId: 'local',
      authorizer: null,
      protocol: 'HTTP/1.1',
      httpMethod: req.method ?? 'GET',
      path: url.pathname,
      stage: 'local',
      requestId: randomUUID(),
      requestTimeEpoch: Date.now(),
      resourceId: 'local',
      resourcePath: resource,
      identity: {
        accessKey: caller?.accessKey ?? null,
        accountId: caller ? '000000000000' : null,
        apiKey: null,
        apiKeyId: null,
        caller: null,
        clientCert: null,
        cognitoAuthenticationProvider: null,
        cognitoAuthenticationType: null,
        cognitoIdentityId: null,
        cognitoIdentityPoolId: null,
        principalOrgId: null,
        sourceIp: req.socket.remoteAddress ?? '127.0.0.1',
        user: null,
        userAgent: headers['user-agent'] ?? null,
        userArn: caller?.userArn ?? null,
      },
    },
  };
}

function readBody(req: IncomingMessage): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY) chunks.push(chunk);
    });
    req.on('end', () => resolve(size > MAX_BODY ? undefined : Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, body: unknown, contentType = 'application/json'): void {
  res.writeHead(status, { 'content-type': contentType });
  res.end(JSON.stringify(body));
}
