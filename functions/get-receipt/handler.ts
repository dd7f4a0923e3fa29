import middy from '@middy/core';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { ConflictError, NotFoundError, NotReadyError } from '#core/errors';
import { RECEIPT_VERSION, receiptMessage, type Receipt, type ReceiptBody } from '#core/receipt';
import { isFinalRequestStatus } from '#core/request';
import { requireEnv } from '../commons/env.ts';
import { httpErrors, json, requestIdFrom } from '../commons/http.ts';
import { logger, observe } from '../commons/observability.ts';
import { receiptSignerFromEnv } from '../commons/receipts.ts';
import { RequestStore } from '../commons/request-store.ts';
import { TransparencyLog } from '../commons/transparency-log.ts';

const store = new RequestStore(requireEnv('REQUESTS_TABLE'));
const signer = receiptSignerFromEnv();
const log = new TransparencyLog(requireEnv('REQUESTS_TABLE'), requireEnv('AUDIT_BUCKET'), signer);
/** How often the sequencer runs (the stack's schedule): how long to wait for the log to take a record. */
const retryAfter = Number(process.env['LOG_SEQUENCE_SECONDS'] ?? 60);

/**
 * `GET /v1/requests/{id}/receipt`: the signed receipt of a final request (409 while it is not;
 * 503 with `Retry-After` until the log has signed a tree head holding the chain's last record).
 * `GET /v1/receipts/public-key`: the key that verifies receipts, PEM, for checking them offline.
 */
export const handler = middy<APIGatewayProxyEvent, APIGatewayProxyResult>()
  .use(observe())
  .use(httpErrors())
  .handler(async (event) => {
    if (event.resource === '/v1/receipts/public-key') {
      return { statusCode: 200, headers: { 'content-type': 'application/x-pem-file' }, body: await signer.publicKeyPem() };
    }
    const requestId = requestIdFrom(event);
    const found = await store.getWithAuditHead(requestId);
    if (!found) throw new NotFoundError(`request ${requestId} does not exist`);
    const { request, auditHead } = found;
    if (!isFinalRequestStatus(request.status)) throw new ConflictError(`request ${requestId} is ${request.status}: a receipt is given once it is final`);
    if (!auditHead) throw new NotFoundError(`request ${requestId} has no audit records`);
    const leafIndex = await log.leafIndexOf(requestId, auditHead.eventId);
    const included = leafIndex === undefined ? undefined : await log.inclusion(leafIndex);
    if (leafIndex === undefined || !included) {
      throw new NotReadyError(`the last audit record of request ${requestId} is not yet under a signed tree head; the log signs one every ${String(retryAfter)} s`, retryAfter);
    }
    const tasks = await store.tasks(requestId);
    const body: ReceiptBody = {
      v: RECEIPT_VERSION,
      requestId,
      type: request.type,
      regulation: request.regulation,
      status: request.status,
      receivedAt: request.receivedAt,
      dueAt: request.dueAt,
      completedAt: request.completedAt ?? null,
      systems: tasks.map((t) => ({
        system: t.system,
        action: t.action,
        status: t.status,
        affected: t.affected ?? null,
        updatedAt: t.updatedAt,
        ...(t.errorName ? { errorName: t.errorName } : {}),
      })),
      audit: { seq: auditHead.seq, head: auditHead.head },
      log: { leafIndex, ...included },
      issuedAt: new Date().toISOString(),
      keyId: signer.keyId,
      alg: 'ECDSA_P256_SHA256',
    };
    const receipt: Receipt = { ...body, signature: Buffer.from(await signer.sign(receiptMessage(body))).toString('base64') };
    logger.info('receipt issued', { requestId, status: request.status });
    return json(200, receipt);
  });
