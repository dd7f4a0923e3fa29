import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import type { DatasetConfig } from '#core/config';
import { RetryableError } from '#core/errors';
import { AuditLog } from './audit-log.ts';
import { requireEnv } from './env.ts';
import type { DatasetDeps, FinishDeps } from './finish.ts';
import { RequestStore } from './request-store.ts';

/** The `Dataset Retrain Required` event's source and detail type, as rules match them. */
export const DATASET_EVENT = { source: 'lethe', detailType: 'Dataset Retrain Required' } as const;

let events: EventBridgeClient | undefined;

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
  return {
    configs,
    publish: async (details) => {
      for (let i = 0; i < details.length; i += 10) {
        const entries = details.slice(i, i + 10).map((d) => ({ EventBusName: bus, Source: DATASET_EVENT.source, DetailType: DATASET_EVENT.detailType, Detail: JSON.stringify(d) }));
        const out = await (events ??= new EventBridgeClient({})).send(new PutEventsCommand({ Entries: entries }));
        if (out.FailedEntryCount) throw new RetryableError(`${String(out.FailedEntryCount)} Dataset Retrain Required events were not accepted`);
      }
    },
  };
}

/** What the functions that finish requests need, from the environment the stack gives them. */
export function finishDepsFromEnv(): FinishDeps {
  const table = requireEnv('REQUESTS_TABLE');
  const datasets = datasetDepsFromEnv();
  const shredAfter = process.env['SHRED_AFTER_SECONDS'];
  return {
    store: new RequestStore(table),
    audit: new AuditLog(table, requireEnv('AUDIT_BUCKET')),
    ...(datasets && { datasets }),
    ...(shredAfter && { shredAfterSeconds: Number(shredAfter) }),
  };
}
