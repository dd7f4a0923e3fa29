import { MetricUnit } from '@aws-lambda-powertools/metrics';
import middy from '@middy/core';
import { DEFAULT_SHRED_AFTER_SECONDS } from '#core/request';
import { AuditLog } from '../commons/audit-log.ts';
import { requireEnv } from '../commons/env.ts';
import { logger, metrics, observe } from '../commons/observability.ts';
import { RequestStore } from '../commons/request-store.ts';

const table = requireEnv('REQUESTS_TABLE');
const store = new RequestStore(table);
const audit = new AuditLog(table, requireEnv('AUDIT_BUCKET'));
const recheckSeconds = Number(process.env['SHRED_AFTER_SECONDS'] ?? DEFAULT_SHRED_AFTER_SECONDS);

/**
 * Runs on a schedule: crypto-shredding. Every final request whose verification window has passed
 * loses its data key, so its raw identifiers, linked identities and restriction records can no
 * longer be decrypted by anyone; its status, receipt and audit chain stay as they were, and the
 * shredding is itself an audit record. A restrict request whose restriction no withdraw has lifted
 * keeps its key (a later withdraw must open what to lift): it is looked at again a window later.
 */
export const handler = middy<unknown, { shredded: number; postponed: number }>()
  .use(observe())
  .handler(async () => {
    const now = new Date().toISOString();
    let shredded = 0;
    let postponed = 0;
    for (const request of await store.dueForShredding(now)) {
      const { requestId } = request;
      const unlifted = request.type === 'restrict' ? await store.unliftedRestrictions(requestId) : [];
      if (unlifted.length > 0) {
        await store.postponeShredding(requestId, new Date(Date.now() + recheckSeconds * 1000).toISOString());
        await audit.append(requestId, { eventId: `request.shred_postponed:${now.slice(0, 10)}`, event: 'request.shred_postponed', at: now, actor: 'lethe:shredder' });
        postponed += 1;
        continue;
      }
      if (await store.shredDataKey(requestId, now)) {
        await audit.append(requestId, { eventId: 'request.shredded', event: 'request.shredded', at: now, actor: 'lethe:shredder' });
        shredded += 1;
      }
    }
    if (shredded + postponed > 0) logger.info('data keys shredded', { shredded, postponed });
    metrics.addMetric('DataKeysShredded', MetricUnit.Count, shredded);
    return { shredded, postponed };
  });
