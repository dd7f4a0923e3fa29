import { z } from 'zod';
import { mayContain, type FuseFilter } from './filter.ts';
import { normalizeIdentity, type Identity, type PseudonymKey } from './identity.ts';
import { filterTag, SCOPES } from './suppression.ts';

/**
 * The stream filter: for a batch of event records, find the identities each names at the
 * configured paths, ask once which are suppressed, and drop the records of suppressed subjects
 * or remove their identifying fields. Pure: the Firehose transformation (functions/filter-stream)
 * and `@lethe/client` give it their own way to ask.
 */

/** A dotted path into a record (`user.email`); where it reaches an array, each element is looked at. */
const path = z.string().regex(/^[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*$/, 'must be a dotted path, e.g. user.email');

export const streamFilterSchema = z.strictObject({
  /** Where records carry identities, and of which type. */
  fields: z.array(z.strictObject({ path, identity: z.string().regex(/^[a-z][a-z0-9_]{1,63}$/, 'must be a lower-case identity type') })).min(1, 'name at least one identity field'),
  /** Drop a suppressed subject's record, or keep it without its identifying fields. */
  action: z.enum(['drop', 'redact']),
  /** With `redact`: more fields to remove (the identity fields always are). */
  redact: z.array(path).default([]),
  /** Filter for this use (an opt-out of `sale` filters a stream sold on); absent: any suppression. */
  scope: z.enum(SCOPES).optional(),
});
export type StreamFilterConfig = z.input<typeof streamFilterSchema>;
/** A stream's configuration as the data map holds it (defaults filled in). */
export type StreamFilter = z.output<typeof streamFilterSchema>;

export type StreamOutcome = { readonly result: 'keep' } | { readonly result: 'drop' } | { readonly result: 'redact'; readonly record: unknown };

/** Which of `identities` (normalized) are suppressed, in their order. */
export type SuppressionCheck = (identities: readonly Identity[]) => Promise<readonly boolean[]>;

/** Each record's outcome, in order, asking `check` once for every identity of the batch. */
export async function filterRecords(records: readonly unknown[], config: StreamFilterConfig, check: SuppressionCheck): Promise<StreamOutcome[]> {
  const named = records.map((r) => identitiesIn(r, config.fields));
  const distinct = new Map<string, Identity>();
  for (const ids of named) for (const i of ids) distinct.set(keyOf(i), i);
  const all = [...distinct.values()];
  const answers = all.length > 0 ? await check(all) : [];
  const suppressed = new Set(all.filter((_, n) => answers[n]).map(keyOf));
  return records.map((record, n) => {
    if (!named[n]!.some((i) => suppressed.has(keyOf(i)))) return { result: 'keep' };
    if (config.action === 'drop') return { result: 'drop' };
    return { result: 'redact', record: without(record, [...config.fields.map((f) => f.path), ...(config.redact ?? [])]) };
  });
}

/** The identities `record` names at `fields`, normalized; a value that is no valid identity of its type names none. */
export function identitiesIn(record: unknown, fields: StreamFilterConfig['fields']): Identity[] {
  const out: Identity[] = [];
  for (const field of fields) {
    for (const value of valuesAt(record, field.path.split('.'))) {
      if (typeof value !== 'string' && typeof value !== 'number') continue;
      try {
        const { type, value: normal } = normalizeIdentity({ type: field.identity, value: String(value) });
        out.push({ type, value: normal });
      } catch {
        // Not an e-mail address or phone number: it cannot be a suppressed one either.
      }
    }
  }
  return out;
}

/**
 * A check against a filter snapshot first: a miss is definitive, and only the hits (1 in 256 of
 * the others, and the suppressed) go to `confirm`, which asks the table.
 */
export function snapshotCheck(snapshot: () => { filter: FuseFilter; filterKey: PseudonymKey } | undefined, confirm: SuppressionCheck): SuppressionCheck {
  return async (identities) => {
    const s = snapshot();
    const candidates = s ? identities.filter((i) => mayContain(s.filter, filterTag(i, s.filterKey))) : [...identities];
    if (candidates.length === 0) return identities.map(() => false);
    const confirmed = await confirm(candidates);
    const yes = new Set(candidates.filter((_, n) => confirmed[n]).map(keyOf));
    return identities.map((i) => yes.has(keyOf(i)));
  };
}

const keyOf = (i: Identity) => `${i.type}\u0000${i.value}`;

function valuesAt(value: unknown, keys: readonly string[]): unknown[] {
  if (Array.isArray(value)) return value.flatMap((v) => valuesAt(v, keys));
  if (keys.length === 0) return [value];
  if (value === null || typeof value !== 'object') return [];
  return valuesAt((value as Record<string, unknown>)[keys[0]!], keys.slice(1));
}

/** A copy of `record` without the fields at `paths` (through arrays too). */
function without(record: unknown, paths: readonly string[]): unknown {
  const copy = structuredClone(record);
  for (const p of paths) remove(copy, p.split('.'));
  return copy;
}

function remove(value: unknown, keys: readonly string[]): void {
  if (Array.isArray(value)) {
    for (const v of value) remove(v, keys);
    return;
  }
  if (value === null || typeof value !== 'object' || keys.length === 0) return;
  const [first, ...rest] = keys as [string, ...string[]];
  if (rest.length === 0) Reflect.deleteProperty(value, first);
  else remove((value as Record<string, unknown>)[first], rest);
}
