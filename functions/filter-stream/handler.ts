import { MetricUnit } from '@aws-lambda-powertools/metrics';
import middy from '@middy/core';
import type { FirehoseTransformationEvent, FirehoseTransformationResult, FirehoseTransformationResultRecord } from 'aws-lambda';
import { pseudonymize } from '#core/identity';
import { filterRecords, snapshotCheck, streamFilterSchema, type StreamFilter } from '#core/stream-filter';
import { filterKeyOf, verdict } from '#core/suppression';
import { requireEnv } from '../commons/env.ts';
import { keyServiceFromEnv } from '../commons/keys.ts';
import { logger, metrics, observe } from '../commons/observability.ts';
import { FilterCache } from '../commons/suppression-snapshot.ts';
import { SuppressionStore } from '../commons/suppression-store.ts';

const streams = Object.fromEntries(
  Object.entries(JSON.parse(requireEnv('STREAM_FILTERS')) as Record<string, unknown>).map(([name, config]) => [name, streamFilterSchema.parse(config)]),
) as Record<string, StreamFilter>;
const store = new SuppressionStore(requireEnv('SUPPRESSIONS_TABLE'));
const filters = new FilterCache(requireEnv('SNAPSHOT_BUCKET'));
const keys = keyServiceFromEnv();

/**
 * A Kinesis Data Firehose transformation: records of suppressed subjects are dropped, or kept
 * without their identifying fields, as the data map's `streams.<name>` says for the delivery
 * stream invoking it. The identities go through the filter snapshot; only its hits are read from
 * the table. A record that is not JSON, or a stream with no configuration, fails processing
 * (Firehose keeps it under its error prefix): nothing passes unchecked, and nothing is lost.
 */
export const handler = middy<FirehoseTransformationEvent, FirehoseTransformationResult>()
  .use(observe())
  .handler(async (event) => {
    const name = event.deliveryStreamArn.split('/').pop() ?? '';
    const config = streams[name];
    const failed = (r: { recordId: string; data: string }): FirehoseTransformationResultRecord => ({ recordId: r.recordId, result: 'ProcessingFailed', data: r.data });
    if (!config) {
      logger.error('stream filter: no configuration for this delivery stream (streams in the data map)', { stream: name });
      return { records: event.records.map(failed) };
    }
    const parsed = event.records.map((r) => {
      try {
        return { ok: true as const, value: JSON.parse(Buffer.from(r.data, 'base64').toString('utf8')) as unknown };
      } catch {
        return { ok: false as const };
      }
    });
    const key = await keys.pseudonymKey();
    const filter = await filters.get(key.version);
    const filterKey = filterKeyOf(key);
    const check = snapshotCheck(
      () => filter && { filter, filterKey },
      async (candidates) => (await store.get(candidates.map((i) => pseudonymize(i, key)))).map((s) => verdict(s, config.scope).suppressed),
    );
    const valid = parsed.flatMap((p) => (p.ok ? [p.value] : []));
    const outcomes = await filterRecords(valid, config, check);
    let next = 0;
    const records = event.records.map((r, n): FirehoseTransformationResultRecord => {
      if (!parsed[n]!.ok) return failed(r);
      const outcome = outcomes[next++]!;
      if (outcome.result === 'keep') return { recordId: r.recordId, result: 'Ok', data: r.data };
      if (outcome.result === 'drop') return { recordId: r.recordId, result: 'Dropped', data: r.data };
      const newline = Buffer.from(r.data, 'base64').toString('utf8').endsWith('\n') ? '\n' : '';
      return { recordId: r.recordId, result: 'Ok', data: Buffer.from(`${JSON.stringify(outcome.record)}${newline}`).toString('base64') };
    });
    const count = (result: string) => records.filter((r) => r.result === result).length;
    metrics.addMetric('StreamRecordsDropped', MetricUnit.Count, count('Dropped'));
    metrics.addMetric('StreamRecordsRedacted', MetricUnit.Count, outcomes.filter((o) => o.result === 'redact').length);
    metrics.addMetric('StreamRecordsFailed', MetricUnit.Count, count('ProcessingFailed'));
    return { records };
  });
