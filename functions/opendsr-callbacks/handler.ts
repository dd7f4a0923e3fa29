import middy from '@middy/core';
import type { EventBridgeEvent } from 'aws-lambda';
import { requireEnv } from '../commons/env.ts';
import { logger, observe } from '../commons/observability.ts';
import { openDsrSignerFromEnv, OpenDsrStore, sendCallbacks } from '../commons/opendsr.ts';
import { RequestStore } from '../commons/request-store.ts';

const table = requireEnv('REQUESTS_TABLE');
const requests = new RequestStore(table);
const records = new OpenDsrStore(table);
const signer = openDsrSignerFromEnv();

type Detail = { name?: string; requestId?: string; status?: string };

/**
 * OpenDSR status callbacks: on each status change of a saga execution (and when a controller
 * cancels), tell the callback URLs of the request, if it came through OpenDSR and its status as
 * OpenDSR says it changed. A failure throws, and EventBridge delivers the event again (up to a day,
 * then its dead-letter queue).
 */
export const handler = middy<EventBridgeEvent<string, Detail>, void>()
  .use(observe())
  .handler(async (event) => {
    // Executions are named by request id (and round, after a retry: `<id>-r2`).
    const requestId = (event.detail.requestId ?? event.detail.name ?? '').slice(0, 36).toLowerCase();
    const record = await records.get(requestId);
    if (!record || record.callbackUrls.length === 0) return;
    const request = await requests.get(requestId);
    if (!request) return;
    // The saga began: in progress, though its first step has yet to say so on the request.
    const begun = event.detail.status === 'RUNNING' && request.status === 'received';
    const sent = await sendCallbacks(records, signer, record, begun ? { ...request, status: 'in_progress' } : request);
    if (sent) logger.info('OpenDSR callbacks sent', { requestId, ...sent });
  });
