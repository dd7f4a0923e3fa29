import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { normalizeIdentity, pseudonymize, type PseudonymousIdentity } from '#core/identity';
import { verdict } from '#core/suppression';
import { LocalKeyService } from '#functions/commons/keys';
import type { SuppressionStore } from '#functions/commons/suppression-store';
import { handlerEnvironment, lambdaContext } from '../fixtures/lambda.ts';
import { createSuppressionsTable, dynamoDb, dynamoUnavailable, type DynamoEndpoint } from '../fixtures/servers.ts';

/**
 * The suppression plane's table on DynamoDB Local: changes that race or arrive out of order end as
 * their order of receipt says, and `POST /v1/suppressions:check` answers as docs/openapi.yaml says.
 */
const unavailable = dynamoUnavailable();
if (unavailable) console.warn(`skipping the suppressions test: ${unavailable}`);

const document = parse(readFileSync('docs/openapi.yaml', 'utf8')) as object;
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats.default(ajv);
ajv.addSchema({ ...document, $id: 'openapi' });
const verdicts = ajv.getSchema('openapi#/components/schemas/Verdicts')!;

describe.skipIf(unavailable)('Class: SuppressionStore and Function: check-suppressions handler (DynamoDB Local)', () => {
  let server: DynamoEndpoint;
  let store: SuppressionStore;
  let check: (e: APIGatewayProxyEvent, c: unknown) => Promise<APIGatewayProxyResult>;
  let pseudonymOf: (type: string, value: string) => PseudonymousIdentity;
  const at = (second: number) => new Date(Date.UTC(2026, 10, 30, 0, 0, second)).toISOString();

  beforeAll(async () => {
    server = await dynamoDb();
    handlerEnvironment({ AWS_ENDPOINT_URL_DYNAMODB: server.endpoint });
    await createSuppressionsTable(server.client);
    store = new (await import('#functions/commons/suppression-store')).SuppressionStore('suppressions');
    ({ handler: check } = (await import('#functions/check-suppressions/handler')) as unknown as { handler: typeof check });
    const key = await LocalKeyService.fromFile(process.env['LOCAL_KEY_FILE']!).pseudonymKey();
    pseudonymOf = (type, value) => pseudonymize(normalizeIdentity({ type, value }), key);
  });
  afterAll(async () => {
    await server.stop();
  });

  const post = async (body: unknown) => {
    const response = await check({ body: JSON.stringify(body), isBase64Encoded: false, headers: {}, requestContext: { identity: {} } } as unknown as APIGatewayProxyEvent, lambdaContext('CheckSuppressions'));
    return { status: response.statusCode, body: JSON.parse(response.body) as Record<string, unknown> };
  };

  it('ends as the order of receipt says when an opt-out and an earlier withdraw race, 20 times over', async () => {
    const subjects = Array.from({ length: 20 }, (_, i) => pseudonymOf('user_id', `race-${String(i)}`));
    await Promise.all(
      subjects.flatMap((p, i) => [
        store.apply([p], ['sale', 'sharing'], { on: true, at: at(2), requestId: `opt-out-${String(i)}` }),
        store.apply([p], ['sale', 'sharing', 'marketing', 'processing'], { on: false, at: at(1), requestId: `withdraw-${String(i)}` }),
      ]),
    );
    for (const s of await store.get(subjects)) expect(verdict(s)).toEqual({ suppressed: true, scopes: ['sale', 'sharing'], since: at(2) });
  });

  it('keeps a scope a later request changed, and applies the rest of an older change', async () => {
    const p = pseudonymOf('email', 'scope-by-scope@example.com');
    await store.apply([p], ['sale'], { on: false, at: at(30), requestId: 'later-withdraw' });

    await store.apply([p], ['sale', 'marketing'], { on: true, at: at(20), requestId: 'older-opt-out' });

    const [s] = await store.get([p]);
    expect(s).toEqual({
      sale: { on: false, at: at(30), requestId: 'later-withdraw' },
      marketing: { on: true, at: at(20), requestId: 'older-opt-out' },
    });
    // A replay changes nothing.
    await store.apply([p], ['sale', 'marketing'], { on: true, at: at(20), requestId: 'older-opt-out' });
    expect(await store.get([p])).toEqual([s]);
  });

  it('answers a thousand identities in their order, by the OpenAPI document, naming none', async () => {
    await store.apply([pseudonymOf('email', 'erased@example.com')], ['all'], { on: true, at: at(40), requestId: 'erasure' });
    await store.apply([pseudonymOf('phone', '+442079460001')], ['marketing'], { on: true, at: at(41), requestId: 'unsubscribe', source: 'newsletter' });
    const identities = Array.from({ length: 1000 }, (_, i) => ({ type: 'user_id', value: `nobody-${String(i)}` }));
    identities[10] = { type: 'email', value: ' Erased@Example.com' };
    identities[999] = { type: 'phone', value: '+44 20 7946 0001' };

    const { status, body } = await post({ identities, scope: 'marketing' });

    expect(status).toBe(200);
    expect(verdicts(body) ? [] : verdicts.errors).toEqual([]);
    const results = body['results'] as { suppressed: boolean; scopes: string[] }[];
    expect(results).toHaveLength(1000);
    expect(results.flatMap((r, i) => (r.suppressed ? [[i, r.scopes]] : []))).toEqual([
      [10, ['all']],
      [999, ['marketing']],
    ]);
    expect((await post({ identities: identities.slice(998), scope: 'sale' })).body).toEqual({ results: [{ suppressed: false, scopes: [] }, { suppressed: false, scopes: ['marketing'] }] });
    expect(JSON.stringify(body)).not.toMatch(/nobody|erased|7946|newsletter/i);
  });

  it('refuses a bad call with a 400 that names the field', async () => {
    const cases: [unknown, string][] = [
      [{ identities: [] }, 'identities'],
      [{ identities: Array.from({ length: 1001 }, () => ({ type: 'user_id', value: 'x' })) }, 'identities'],
      [{ identities: [{ type: 'email', value: 'a@example.com' }, { type: 'email', value: 'nope' }] }, 'identities.1.value'],
      [{ identities: [{ type: 'email', value: 'a@example.com' }], scope: 'everything' }, 'scope'],
      [{ identities: [{ type: 'email', value: 'a@example.com' }], extra: 1 }, ''],
    ];
    for (const [body, path] of cases) {
      const answer = await post(body);
      expect(answer.status).toBe(400);
      expect((answer.body['issues'] as { path: string }[]).map((i) => i.path)).toContain(path);
    }
  });
});
