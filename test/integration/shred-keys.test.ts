import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { startFauxqs } from 'fauxqs';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyChain } from '#core/audit';
import { openIdentities, seal, sealIdentities } from '#core/envelope';
import { verifyReceipt } from '#core/receipt';
import { LocalKeyService } from '#functions/commons/keys';
import { LocalReceiptSigner } from '#functions/commons/receipts';
import { handlerEnvironment, lambdaContext } from '../fixtures/lambda.ts';
import { createRequestsTable, credentials, dynamoDb, dynamoUnavailable, type DynamoEndpoint } from '../fixtures/servers.ts';

/**
 * Crypto-shredding on DynamoDB Local and fauxqs: once a final request's window has passed, its data
 * key is destroyed and its identities cannot be opened any more, while its status, receipt and
 * audit chain stay valid; a restriction that no withdraw has lifted keeps its request's key.
 */
const unavailable = dynamoUnavailable();
if (unavailable) console.warn(`skipping the crypto-shredding integration test: ${unavailable}`);

describe.skipIf(unavailable)('Function: shred-keys handler', () => {
  let server: DynamoEndpoint;
  let fauxqs: Awaited<ReturnType<typeof startFauxqs>>;
  let store: import('#functions/commons/request-store').RequestStore;
  let audit: import('#functions/commons/audit-log').AuditLog;
  let finish: typeof import('#functions/commons/finish').finishRequest;
  let shred: (e: unknown, c: unknown) => Promise<{ shredded: number; postponed: number }>;
  let receiptOf: (e: APIGatewayProxyEvent, c: unknown) => Promise<APIGatewayProxyResult>;
  let sequence: (e: unknown, c: unknown) => Promise<unknown>;
  let s3: S3Client;
  let keys: LocalKeyService;

  beforeAll(async () => {
    server = await dynamoDb();
    fauxqs = await startFauxqs({ port: 0, logger: false });
    const receiptKey = join(mkdtempSync(join(tmpdir(), 'lethe-shred-')), 'receipt-key.pem');
    LocalReceiptSigner.ensureKeyFile(receiptKey);
    handlerEnvironment({
      AWS_ENDPOINT_URL_DYNAMODB: server.endpoint,
      AWS_ENDPOINT_URL_S3: `http://127.0.0.1:${String(fauxqs.port)}`,
      RECEIPT_SIGNER: 'local',
      LOCAL_RECEIPT_KEY_FILE: receiptKey,
      SHRED_AFTER_SECONDS: '3600',
    });
    s3 = new S3Client({ endpoint: process.env['AWS_ENDPOINT_URL_S3'], region: 'us-east-1', credentials, forcePathStyle: true });
    await s3.send(new CreateBucketCommand({ Bucket: 'audit' }));
    await createRequestsTable(server.client);
    keys = LocalKeyService.fromFile(process.env['LOCAL_KEY_FILE']!);
    store = new (await import('#functions/commons/request-store')).RequestStore('requests');
    audit = new (await import('#functions/commons/audit-log')).AuditLog('requests', 'audit');
    ({ finishRequest: finish } = await import('#functions/commons/finish'));
    ({ handler: shred } = (await import('#functions/shred-keys/handler')) as unknown as { handler: typeof shred });
    ({ handler: receiptOf } = (await import('#functions/get-receipt/handler')) as unknown as { handler: typeof receiptOf });
    ({ handler: sequence } = (await import('#functions/sequence-audit/handler')) as unknown as { handler: typeof sequence });
  });
  afterAll(async () => {
    await fauxqs.stop();
    await server.stop();
  });

  /** A request finished now whose window is already over. */
  const finishedRequest = async (type: 'erasure' | 'restrict') => {
    const requestId = randomUUID();
    const dataKey = await keys.generateDataKey(requestId);
    const at = new Date().toISOString();
    await store.create({
      requestId,
      type,
      regulation: 'gdpr',
      status: 'in_progress',
      receivedAt: at,
      dueAt: at,
      pseudonyms: [],
      keyVersion: 'v1',
      bodyHash: 'x',
      sealedIdentities: sealIdentities([{ type: 'email', value: 'ada@example.com' }], dataKey.plaintext, requestId),
      wrappedDataKey: dataKey.wrapped,
    });
    await audit.append(requestId, { eventId: 'request.received', event: 'request.received', at, actor: 'test', status: 'received' });
    await store.putTaskIfAbsent({ requestId, system: 'app-db', action: type === 'erasure' ? 'delete' : 'restrict', connector: 'postgres', status: 'succeeded', attempts: 1, affected: 1, updatedAt: at });
    if (type === 'restrict') await store.putRestriction(requestId, 'app-db', seal({ accounts: ['a-1'] }, dataKey.plaintext, requestId), 1);
    await finish(requestId, { store, audit, shredAfterSeconds: -1 }, { actor: 'test', failureOf: () => ({ errorName: 'X', errorMessage: 'x' }) });
    return { requestId, dataKey };
  };
  /** The receipt, once the audit log holds the request's last record (the sequencer runs first, as its schedule would). */
  const receipt = async (requestId: string) => {
    await sequence({}, lambdaContext());
    return JSON.parse((await receiptOf({ pathParameters: { id: requestId }, resource: '/v1/requests/{id}/receipt', headers: {}, requestContext: { identity: {} } } as unknown as APIGatewayProxyEvent, lambdaContext())).body) as unknown;
  };
  const publicKey = () => LocalReceiptSigner.fromFile(process.env['LOCAL_RECEIPT_KEY_FILE']!).publicKeyPem();

  it('destroys the data key of a request past its window, and keeps its status, receipt and audit chain valid', async () => {
    const { requestId } = await finishedRequest('erasure');
    const before = await receipt(requestId);
    const sealed = (await store.get(requestId))!.sealedIdentities;

    expect(await shred({}, lambdaContext())).toMatchObject({ shredded: 1 });

    const after = await store.get(requestId);
    expect(after).toMatchObject({ status: 'completed', sealedIdentities: sealed });
    expect(after!.wrappedDataKey).toBeUndefined();
    // Nothing can open the identities: the only key that could is gone, and no other fits.
    await expect(keys.unwrapDataKey(after!.wrappedDataKey, requestId)).rejects.toThrow(`the data key of request ${requestId} was destroyed (crypto-shredded)`);
    expect(() => openIdentities(sealed, randomBytes(32), requestId)).toThrow();

    const pem = await publicKey();
    expect(verifyReceipt(before, pem)).toMatchObject({ ok: true });
    const later = await receipt(requestId);
    expect(verifyReceipt(later, pem)).toMatchObject({ ok: true, receipt: { status: 'completed', audit: { seq: 3 } } });
    const { readAuditChain } = await import('#functions/commons/audit-log');
    const chain = await readAuditChain(s3, 'audit', requestId);
    expect(chain.map((r) => r.event)).toEqual(['request.received', 'request.completed', 'request.shredded']);
    expect(chain.at(-1)).toMatchObject({ event: 'request.shredded', actor: 'lethe:shredder' });
    expect(verifyChain(requestId, chain, await store.getWithAuditHead(requestId).then((r) => r?.auditHead && { seq: r.auditHead.seq, hash: r.auditHead.head }))).toEqual([]);

    expect(await shred({}, lambdaContext())).toMatchObject({ shredded: 0 });
  });

  it('keeps the key of a restriction that no withdraw has lifted, and looks again a window later', async () => {
    const { requestId, dataKey } = await finishedRequest('restrict');

    expect(await shred({}, lambdaContext())).toMatchObject({ postponed: 1 });

    const kept = await store.get(requestId);
    expect(kept!.wrappedDataKey).toBe(dataKey.wrapped);
    expect(openIdentities(kept!.sealedIdentities, await keys.unwrapDataKey(kept!.wrappedDataKey, requestId), requestId)).toEqual([{ type: 'email', value: 'ada@example.com' }]);
    const { readAuditChain } = await import('#functions/commons/audit-log');
    expect((await readAuditChain(s3, 'audit', requestId)).at(-1)).toMatchObject({ event: 'request.shred_postponed' });
    expect(await shred({}, lambdaContext())).toMatchObject({ shredded: 0, postponed: 0 });

    await store.markLifted(requestId, 'app-db', randomUUID());
    expect(await store.unliftedRestrictions(requestId)).toEqual([]);
  });
});
