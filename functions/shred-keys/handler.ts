import { MetricUnit } from '@aws-lambda-powertools/metrics';
import middy from '@middy/core';
import { DEFAULT_SHRED_AFTER_SECONDS, RETRYABLE_REQUEST_STATUSES } from '#core/request';
import { AuditLog } from '../commons/audit-log.ts';
import { requireEnv } from '../commons/env.ts';
import { logger, metrics, observe } from '../commons/observability.ts';
import { RequestStore } from '../commons/request-store.ts';
import { sweep } from '../commons/sweep.ts';

const table = requireEnv('REQUESTS_TABLE');
const store = new RequestStore(table);
const audit = new AuditLog(table, requireEnv('AUDIT_BUCKET'));
const recheckSeconds = Number(process.env['SHRED_AFTER_SECONDS'] ?? DEFAULT_SHRED_AFTER_SECONDS);

/** Requests looked at once, and the time kept back to end the run cleanly. */
const WIDTH = 8;
const RESERVE_MS = 30_000;
const RETRYABLE: readonly string[] = RETRYABLE_REQUEST_STATUSES;

/**
 * Runs on a schedule: crypto-shredding. Every final request whose verification window has passed
 * loses its data key, so its raw identifiers, linked identities and restriction records can no
 * longer be decrypted by anyone; its status, receipt and audit chain stay as they were, and the
 * shredding is itself an audit record. It pages until nothing due is left (or says the run ran
 * out of time, the next going on from there). Two kinds of request keep their key and are looked
 * at again later: a restrict request whose restriction no withdraw has lifted (a later withdraw
 * must open what to lift), a window later; and one that failed, partly failed or needs review,
 * until its deadline, since it may be retried until then. A retry that reopens a request between
 * the listing and the shredding keeps its key (the shredding is conditional).
 */
export const handler = middy<unknown, { shredded: number; postponed: number; unfinished: boolean }>()
  .use(observe())
  .handler(async (_event, context) => {
    const now = new Date().toISOString();
    let shredded = 0;
    let postponed = 0;
    const postpone = async (requestId: string, until: string) => {
      await store.postponeShredding(requestId, until);
      await audit.append(requestId, { eventId: `request.shred_postponed:${now.slice(0, 10)}`, event: 'request.shred_postponed', at: now, actor: 'lethe:shredder' });
      postponed += 1;
    };
    const { unfinished } = await sweep(
      store.dueForShredding(now),
      async (request) => {
        const { requestId } = request;
        if (RETRYABLE.includes(request.status) && request.dueAt > now) return postpone(requestId, request.dueAt);
        const unlifted = request.type === 'restrict' ? await store.unliftedRestrictions(requestId) : [];
        if (unlifted.length > 0) return postpone(requestId, new Date(Date.now() + recheckSeconds * 1000).toISOString());
        if (await store.shredDataKey(requestId, now)) {
          await audit.append(requestId, { eventId: 'request.shredded', event: 'request.shredded', at: now, actor: 'lethe:shredder' });
          shredded += 1;
        }
      },
      { width: WIDTH, timeLeftMs: () => context.getRemainingTimeInMillis(), reserveMs: RESERVE_MS },
    );
    if (unfinished) {
      logger.warn('requests due for shredding left for the next run: this run is out of time', { shredded, postponed });
      metrics.addMetric('ShredSweepUnfinished', MetricUnit.Count, 1);
    }
    if (shredded + postponed > 0) logger.info('data keys shredded', { shredded, postponed });
    metrics.addMetric('DataKeysShredded', MetricUnit.Count, shredded);
    return { shredded, postponed, unfinished };
  });
