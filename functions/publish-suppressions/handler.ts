import { MetricUnit } from '@aws-lambda-powertools/metrics';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { requireEnv } from '../commons/env.ts';
import { keyServiceFromEnv } from '../commons/keys.ts';
import { logger, metrics, observe } from '../commons/observability.ts';
import { SuppressionSnapshot, type PublishResult } from '../commons/suppression-snapshot.ts';
import { SuppressionStore } from '../commons/suppression-store.ts';

const keys = keyServiceFromEnv();
const snapshot = new SuppressionSnapshot({
  bucket: requireEnv('SNAPSHOT_BUCKET'),
  changesQueueUrl: requireEnv('SUPPRESSION_CHANGES_QUEUE_URL'),
  store: new SuppressionStore(requireEnv('SUPPRESSIONS_TABLE')),
  keyVersion: async () => (await keys.pseudonymKey()).version,
});

/**
 * Runs on a schedule (every minute in AWS): merges the suppressions that changed since the last
 * run into the tag set and publishes the filter snapshot product backends fetch. Stops taking
 * changes 30 s before its time runs out; the rest wait for the next run.
 */
export const handler = middy<unknown, PublishResult>()
  .use(observe())
  .handler(async (_event, context: Context) => {
    const result = await snapshot.publish(Date.now() + Math.max(1000, context.getRemainingTimeInMillis() - 30_000));
    if (result.published) logger.info('suppression filter published', { ...result });
    // A suppressed subject the filter cannot hold would read as not suppressed in a client's first look.
    if (result.untagged > 0) logger.error('suppressed subjects missing from the filter: no tag under the current key version', { untagged: result.untagged });
    metrics.addMetric('SuppressionChanges', MetricUnit.Count, result.changes);
    metrics.addMetric('SuppressedSubjects', MetricUnit.Count, result.count);
    metrics.addMetric('SuppressionsUntagged', MetricUnit.Count, result.untagged);
    if (result.bytes !== undefined) metrics.addMetric('SuppressionFilterBytes', MetricUnit.Bytes, result.bytes);
    return result;
  });
