import middy from '@middy/core';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { ConflictError, NotFoundError, NotReadyError, ValidationError } from '#core/errors';
import { RECEIPT_VERSION, receiptMessage, type Receipt, type ReceiptBody } from '#core/receipt';
import { isFinalRequestStatus } from '#core/request';
import { nearMissTotal } from '#core/near-miss';
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

/** A tree size from the query string, or a 400 naming the parameter. */
function sizeParameter(event: APIGatewayProxyEvent, name: string): number | undefined {
  const raw = event.queryStringParameters?.[name];
  if (raw === undefined) return undefined;
  if (!/^\d{1,15}$/.test(raw)) throw new ValidationError([{ path: name, message: 'must be a tree size (a whole number)' }]);
  return Number(raw);
}

/**
 * `GET /v1/requests/{id}/receipt`: the signed receipt of a final request (409 while it is not;
 * 503 with `Retry-After` until the log has signed a tree head holding the chain's last record).
 * `GET /v1/receipts/public-key`: the key that verifies receipts and tree heads, PEM, for checking them offline.
 * `GET /v1/log/consistency?from=<size>[&to=<size>]`: the proof that the audit log's tree of `to`
 * leaves (default: the newest published) extends the tree of `from`, with the newest tree head.
 */
export const handler = middy<APIGatewayProxyEvent, APIGatewayProxyResult>()
  .use(observe())
  .use(httpErrors())
  .handler(async (event) => {
    if (event.resource === '/v1/receipts/public-key') {
      return { statusCode: 200, headers: { 'content-type': 'application/x-pem-file' }, body: await signer.publicKeyPem() };
    }
    if (event.resource === '/v1/log/consistency') {
      const from = sizeParameter(event, 'from');
      const to = event.queryStringParameters?.['to'] === undefined ? undefined : sizeParameter(event, 'to');
      if (from === undefined) throw new ValidationError([{ path: 'from', message: 'is required: the size of the older tree head' }]);
      if (to !== undefined && from > to) throw new ValidationError([{ path: 'from', message: 'must not be larger than to' }]);
      const proof = await log.consistency(from, to);
      if (!proof) throw new NotFoundError(`the audit log has no published tree head of ${String(to ?? from)} leaves or more`);
      return json(200, proof);
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
      ...(request.nothingFound && { nothingFound: true }),
      systems: tasks.map((t) => ({
        system: t.system,
        action: t.action,
        status: t.status,
        affected: t.affected ?? null,
        updatedAt: t.updatedAt,
        ...(t.errorName ? { errorName: t.errorName } : {}),
        ...(t.nearMisses && nearMissTotal(t.nearMisses) > 0 ? { nearMisses: t.nearMisses } : {}),
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
