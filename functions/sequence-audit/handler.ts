import { MetricUnit } from '@aws-lambda-powertools/metrics';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { requireEnv } from '../commons/env.ts';
import { logger, metrics, observe } from '../commons/observability.ts';
import { receiptSignerFromEnv } from '../commons/receipts.ts';
import { TransparencyLog } from '../commons/transparency-log.ts';

const log = new TransparencyLog(requireEnv('REQUESTS_TABLE'), requireEnv('AUDIT_BUCKET'), receiptSignerFromEnv());

/**
 * Runs on a schedule (every minute in AWS, one at a time): makes the audit records written since
 * the last run leaves of the audit log, and publishes a signed tree head for the new size. Stops
 * 30 s before its time runs out; what is left waits for the next run.
 */
export const handler = middy<unknown, { appended: number; treeSize: number }>()
  .use(observe())
  .handler(async (_event, context: Context) => {
    const until = Date.now() + Math.max(1000, context.getRemainingTimeInMillis() - 30_000);
    const { appended, treeSize, busy } = await log.sequence(until);
    if (busy) logger.info('audit log: another sequencer holds the lease');
    else if (appended > 0) logger.info('audit log: leaves appended', { appended, treeSize });
    metrics.addMetric('AuditLeavesAppended', MetricUnit.Count, appended);
    return { appended, treeSize };
  });
