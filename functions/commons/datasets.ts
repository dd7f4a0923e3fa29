import type { DatasetConfig } from '#core/config';
import { AuditLog } from './audit-log.ts';
import { LETHE_SOURCE, publisherTo } from './bus.ts';
import { requireEnv } from './env.ts';
import type { DatasetDeps, FinishDeps } from './finish.ts';
import { RequestStore } from './request-store.ts';

/** The `Dataset Retrain Required` event's source and detail type, as rules match them. */
export const DATASET_EVENT = { source: LETHE_SOURCE, detailType: 'Dataset Retrain Required' } as const;

/**
 * The data map's datasets (`LETHE_DATASETS`) and the bus their events go to (`EVENT_BUS_NAME`),
 * as the stack gives them to the functions that finish requests; undefined when there are none.
 */
export function datasetDepsFromEnv(): DatasetDeps | undefined {
  const raw = process.env['LETHE_DATASETS'];
  const bus = process.env['EVENT_BUS_NAME'];
  if (!raw || !bus) return undefined;
  const configs = JSON.parse(raw) as DatasetConfig[];
  if (configs.length === 0) return undefined;
  const publish = publisherTo(bus);
  return { configs, publish: (details) => publish(DATASET_EVENT.detailType, details) };
}

/** What the functions that finish requests need, from the environment the stack gives them. */
export function finishDepsFromEnv(): FinishDeps {
  const table = requireEnv('REQUESTS_TABLE');
  const datasets = datasetDepsFromEnv();
  const shredAfter = process.env['SHRED_AFTER_SECONDS'];
  const bus = process.env['EVENT_BUS_NAME'];
  return {
    store: new RequestStore(table),
    audit: new AuditLog(table, requireEnv('AUDIT_BUCKET')),
    ...(bus && { publish: publisherTo(bus) }),
    ...(datasets && { datasets }),
    ...(shredAfter && { shredAfterSeconds: Number(shredAfter) }),
  };
}
