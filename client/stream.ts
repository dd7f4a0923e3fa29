import { filterRecords, streamFilterSchema, type StreamFilterConfig, type StreamOutcome } from '../core/stream-filter.ts';
import type { LetheClient } from './index.ts';

export { filterRecords, identitiesIn, streamFilterSchema, type StreamFilterConfig, type StreamOutcome, type SuppressionCheck } from '../core/stream-filter.ts';

/**
 * Filter a batch of event records before they leave a product backend (to an analytics tool, an
 * ad platform, a data lake): each record's outcome, in order — `keep`, `drop`, or `redact` with the
 * record to send instead. One snapshot look-up a record, one API call for the batch's hits.
 *
 * ```ts
 * const outcomes = await filterStream(events, { fields: [{ path: 'user.email', identity: 'email' }], action: 'drop', scope: 'sale' }, lethe);
 * const forwarded = events.filter((_, i) => outcomes[i]!.result === 'keep');
 * ```
 */
export function filterStream(records: readonly unknown[], config: StreamFilterConfig, client: Pick<LetheClient, 'areSuppressed'>): Promise<StreamOutcome[]> {
  const parsed = streamFilterSchema.parse(config);
  return filterRecords(records, parsed, (identities) => client.areSuppressed(identities, parsed.scope));
}
