import { formsOf, type Identity } from './identity.ts';

/**
 * Near-misses: the subject's data that a verification's wider net finds and the action left. A
 * verification that only ran the action's own predicate again could never disagree with it; the
 * wider net compares case-folded, Unicode-normalized (NFKC) and trimmed values, in every stored
 * form. (The subject's rows in old object versions count as remaining, not as near-misses: the
 * action removes those, so a retry does.) A near-miss never passes as done: the task ends
 * `needs_review` with counts by reason, and the values themselves are never kept, logged or audited.
 */
export const NEAR_MISS_REASONS = [
  /** The value differs from the subject's only in letter case, where the action matches exactly. */
  'case',
  /** Another Unicode form of the subject's value (decomposed, compatibility characters). */
  'unicode',
  /** The subject's value with whitespace around it. */
  'whitespace',
  /** Another stored form of the value: a number, a UUID's bytes, an element of a list. */
  'stored_form',
  /** A record reached through another one that is a near-miss (a child row of a near-miss row). */
  'linked',
] as const;
export type NearMissReason = (typeof NEAR_MISS_REASONS)[number];

/** Near-misses counted by reason; a reason with none is absent. */
export type NearMisses = Readonly<Partial<Record<NearMissReason, number>>>;

export const nearMissTotal = (n: NearMisses | undefined): number => Object.values(n ?? {}).reduce((a, b) => a + b, 0);

/** Near-misses counted one record at a time, for a verification's result. */
export class NearMissTally {
  readonly #counts: Partial<Record<NearMissReason, number>> = {};

  add(reason: NearMissReason, n = 1): void {
    this.#counts[reason] = (this.#counts[reason] ?? 0) + n;
  }

  get counts(): NearMisses {
    return { ...this.#counts };
  }

  /** A verification's result: what remains, and the near-misses when there are any. */
  result(remaining: number): { remaining: number; nearMisses?: NearMisses } {
    return nearMissTotal(this.#counts) > 0 ? { remaining, nearMisses: this.counts } : { remaining };
  }
}

/** The sum of several counts, by reason. */
export function addNearMisses(...all: (NearMisses | undefined)[]): NearMisses {
  const out: Partial<Record<NearMissReason, number>> = {};
  for (const n of all) {
    for (const [reason, count] of Object.entries(n ?? {}) as [NearMissReason, number][]) {
      if (count > 0) out[reason] = (out[reason] ?? 0) + count;
    }
  }
  return out;
}

const PHRASES: Record<NearMissReason, string> = {
  case: 'in another letter case',
  unicode: 'in another Unicode form',
  whitespace: 'with whitespace around the value',
  stored_form: 'in another stored form',
  linked: 'linked to one of those',
};

/** What a person needs to know, without a value: `3 of the subject's records were left: 2 in another letter case, 1 …`. */
export function describeNearMisses(n: NearMisses): string {
  const parts = NEAR_MISS_REASONS.filter((r) => (n[r] ?? 0) > 0).map((r) => `${String(n[r])} ${PHRASES[r]}`);
  return `${String(nearMissTotal(n))} of the subject's records were left, which the action did not match: ${parts.join(', ')}`;
}

/** A value as the wider net compares it: compatibility-normalized, trimmed, case-folded. */
export const wideKey = (value: string): string => value.normalize('NFKC').trim().toLowerCase();

/**
 * Every spelling of a value that the wider net should ask a store for, where the store cannot
 * normalize itself: lower-cased in each Unicode normal form. With `lower(trim(column))` on the
 * store's side, this finds the value stored in any case, form or padding.
 */
export function wideForms(values: readonly string[]): string[] {
  const out = new Set<string>();
  for (const v of values) {
    const base = v.trim().toLowerCase();
    for (const form of ['NFC', 'NFD', 'NFKC', 'NFKD'] as const) out.add(base.normalize(form));
  }
  return [...out];
}

/** Why a stored value that the wider net matched was not the value the action matched: a class, never the value. */
export function nearMissReason(stored: string): NearMissReason {
  if (stored !== stored.trim()) return 'whitespace';
  if (stored.normalize('NFC') !== stored || stored.normalize('NFKC') !== stored) return 'unicode';
  return 'case';
}

/**
 * What a store that can only be asked for exact values (a key, an index, a filter) is asked by the
 * wider net, beyond the forms the action asks with: each form trimmed, lower- and upper-cased, in
 * every Unicode normal form. Each found record is a near-miss of the reason its spelling shows.
 */
export function wideSpellings(identity: Identity): string[] {
  const asked = new Set(formsOf(identity));
  const out = new Set<string>();
  for (const form of asked) {
    for (const base of [form.trim(), form.trim().toLowerCase(), form.trim().toUpperCase()]) {
      for (const nf of ['NFC', 'NFD', 'NFKC', 'NFKD'] as const) out.add(base.normalize(nf));
    }
  }
  return [...out].filter((s) => s.length > 0 && !asked.has(s));
}
