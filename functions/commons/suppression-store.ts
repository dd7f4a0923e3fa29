import { ScanCommand, UpdateCommand, type ScanCommandOutput } from '@aws-sdk/lib-dynamodb';
import { classifyStoreError } from '#connectors/aws-errors';
import type { PseudonymousIdentity } from '#core/identity';
import { activeScopes, SCOPES, type Scope, type ScopeState, type Suppression } from '#core/suppression';
import { batchGetAll } from './batch-get.ts';
import { dynamo } from './clients.ts';

/**
 * An identity as the table keeps it: its pseudonym, and (from intake) its tag in the suppression
 * filter (hex) and the key version both were made under.
 */
export interface SuppressedIdentity extends PseudonymousIdentity {
  readonly tag?: string;
  readonly keyVersion?: string;
}

/** What the filter snapshot needs of a subject: whether anything is suppressed, and its tag if intake gave one. */
export interface SubjectEntry {
  readonly subject: string;
  readonly active: boolean;
  readonly tag?: string;
  readonly keyVersion?: string;
}

/** A subject's item: `subject = <type>:<pseudonym>`; each scope's state in its own attribute. */
export const subjectOf = (p: PseudonymousIdentity) => `${p.type}:${p.pseudonym}`;
const attribute = (scope: Scope) => `scope_${scope}`;

/**
 * The suppression plane's table: one item per pseudonymous identity, with the state of each scope
 * (set or lifted, when, by which request). A change applies scope by scope, and only over an older
 * state, so requests that race or arrive out of order end as their order of receipt says.
 * Reads are consistent: an opt-out holds from the moment intake answers.
 */
export class SuppressionStore {
  readonly #table: string;

  constructor(table: string) {
    this.#table = table;
  }

  /** Set or lift `scopes` for each identity, where `state` is newer than what the table holds. */
  async apply(pseudonyms: readonly SuppressedIdentity[], scopes: readonly Scope[], state: ScopeState): Promise<void> {
    for (const p of pseudonyms) {
      // One write for every scope, when none holds a newer state (nearly always); else scope by scope.
      if (await this.#update(p, scopes, state)) continue;
      for (const scope of scopes) await this.#update(p, [scope], state);
    }
  }

  /** Each identity's suppression, in the order given (an identity never suppressed: `{}`). */
  async get(pseudonyms: readonly PseudonymousIdentity[]): Promise<Suppression[]> {
    const found = new Map<string, Suppression>();
    try {
      const subjects = [...new Set(pseudonyms.map(subjectOf))];
      for (const item of await batchGetAll(this.#table, subjects.map((subject) => ({ subject })))) found.set(String(item['subject']), suppressionOf(item));
    } catch (error) {
      throw wrap('read suppressions', error);
    }
    return pseudonyms.map((p) => found.get(subjectOf(p)) ?? {});
  }

  /** The entries of `subjects` (`type:pseudonym`) the table holds, read consistently. */
  async entries(subjects: readonly string[]): Promise<SubjectEntry[]> {
    try {
      return (await batchGetAll(this.#table, [...new Set(subjects)].map((subject) => ({ subject })))).map(entryOf);
    } catch (error) {
      throw wrap('read suppressions', error);
    }
  }

  /** Every entry of the table, `segments` parallel scans at once, a page at a time. */
  async *scan(segments = 4): AsyncGenerator<SubjectEntry[]> {
    const cursors: (Record<string, unknown> | undefined | null)[] = Array.from({ length: segments }, () => undefined);
    try {
      while (cursors.some((c) => c !== null)) {
        const pages = await Promise.all(
          cursors.map((cursor, segment) =>
            cursor === null
              ? Promise.resolve(undefined)
              : dynamo.send(new ScanCommand({ TableName: this.#table, Segment: segment, TotalSegments: segments, ConsistentRead: true, ExclusiveStartKey: cursor })),
          ),
        );
        pages.forEach((page: ScanCommandOutput | undefined, segment) => {
          if (page) cursors[segment] = page.LastEvaluatedKey ?? null;
        });
        yield pages.flatMap((page) => (page?.Items ?? []).map(entryOf));
      }
    } catch (error) {
      throw wrap('scan suppressions', error);
    }
  }

  async #update(p: SuppressedIdentity, scopes: readonly Scope[], state: ScopeState): Promise<boolean> {
    const names: Record<string, string> = {};
    const sets: string[] = [];
    const values: Record<string, string> = {};
    if (p.tag && p.keyVersion) {
      sets.push('tag = :tag', 'keyVersion = :kv');
      Object.assign(values, { ':tag': p.tag, ':kv': p.keyVersion });
    }
    const conditions: string[] = [];
    scopes.forEach((scope, i) => {
      names[`#s${String(i)}`] = attribute(scope);
      sets.push(`#s${String(i)} = :state`);
      // Written only over an older state: see `supersedes`.
      conditions.push(`(attribute_not_exists(#s${String(i)}) OR #s${String(i)}.#at < :at OR (#s${String(i)}.#at = :at AND #s${String(i)}.#rid < :rid))`);
    });
    try {
      await dynamo.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: { subject: subjectOf(p) },
          UpdateExpression: `SET ${sets.join(', ')}, updatedAt = :now`,
          ConditionExpression: conditions.join(' AND '),
          ExpressionAttributeNames: { ...names, '#at': 'at', '#rid': 'requestId' },
          ExpressionAttributeValues: { ...values, ':state': state, ':at': state.at, ':rid': state.requestId, ':now': new Date().toISOString() },
        }),
      );
      return true;
    } catch (error) {
      if ((error as { name?: string }).name === 'ConditionalCheckFailedException') return false;
      throw wrap('record a suppression', error);
    }
  }
}

function entryOf(item: Record<string, unknown>): SubjectEntry {
  const { tag, keyVersion } = item as { tag?: unknown; keyVersion?: unknown };
  return {
    subject: String(item['subject']),
    active: activeScopes(suppressionOf(item)).length > 0,
    ...(typeof tag === 'string' && { tag }),
    ...(typeof keyVersion === 'string' && { keyVersion }),
  };
}

function suppressionOf(item: Record<string, unknown>): Suppression {
  const out: Suppression = {};
  for (const scope of SCOPES) {
    const state = item[attribute(scope)] as ScopeState | undefined;
    if (state) out[scope] = state;
  }
  return out;
}

const wrap = (what: string, error: unknown) => classifyStoreError(`suppressions table: ${what}`, error);
