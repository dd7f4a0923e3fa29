import { createHmac } from 'node:crypto';
import type { Identity, PseudonymKey } from './identity.ts';
import type { RequestType } from './request.ts';

/**
 * The suppression plane's domain: what a subject has asked Lethe's users not to do with their data
 * from now on, so that what was deleted is not collected again.
 *
 * - `sale`, `sharing`, `marketing`: an opt-out of that use (CCPA's "do not sell or share", an
 *   unsubscribe);
 * - `processing`: a restriction (GDPR Art. 18): keep the data, use it for nothing;
 * - `all`: the subject was erased or anonymized: collect nothing more about them.
 */
export const SCOPES = ['sale', 'sharing', 'marketing', 'processing', 'all'] as const;
export type Scope = (typeof SCOPES)[number];

/** The scopes that forbid a use: `all` and `processing` forbid every narrower one too. */
const COVERED_BY: Record<Scope, readonly Scope[]> = {
  sale: ['sale', 'processing', 'all'],
  sharing: ['sharing', 'processing', 'all'],
  marketing: ['marketing', 'processing', 'all'],
  processing: ['processing', 'all'],
  all: ['all'],
};

/** What an opt-out without scopes opts out of: the sale and the sharing of personal data (CCPA, GPC). */
export const DEFAULT_OPT_OUT_SCOPES: readonly Scope[] = ['sale', 'sharing'];
/** What a withdraw without scopes lifts: every opt-out and restriction, not an erasure's `all`, which it must name. */
export const DEFAULT_WITHDRAW_SCOPES: readonly Scope[] = ['sale', 'sharing', 'marketing', 'processing'];

/**
 * What a request of this type does to its subject's suppression: the scopes it sets, or (a
 * withdraw) lifts; none for the types that set none. `given` are the request's own scopes, which
 * only an opt-out and a withdraw may name.
 */
export function suppressionChange(type: RequestType, given?: readonly Scope[]): { readonly on: boolean; readonly scopes: readonly Scope[] } {
  switch (type) {
    case 'erasure':
    case 'anonymize':
      return { on: true, scopes: ['all'] };
    case 'restrict':
      return { on: true, scopes: ['processing'] };
    case 'opt_out':
      return { on: true, scopes: given?.length ? given : DEFAULT_OPT_OUT_SCOPES };
    case 'withdraw':
      return { on: false, scopes: given?.length ? given : DEFAULT_WITHDRAW_SCOPES };
  }
}

/** One scope's state: set or lifted, when, and by which request (the request's source, if it had one). */
export interface ScopeState {
  readonly on: boolean;
  readonly at: string;
  readonly requestId: string;
  readonly source?: string;
}

/** A subject's suppression, scope by scope. A scope never set is absent. */
export type Suppression = Partial<Record<Scope, ScopeState>>;

/**
 * Whether `change` is newer than `current` and so replaces it: the later request wins, whichever
 * arrives first (ties by request id), so that two intakes racing, or a replay, end the same way.
 */
export function supersedes(change: Pick<ScopeState, 'at' | 'requestId'>, current: Pick<ScopeState, 'at' | 'requestId'> | undefined): boolean {
  if (!current) return true;
  return change.at > current.at || (change.at === current.at && change.requestId > current.requestId);
}

/** `suppression` after a request's change, scope by scope, the later state of each winning. */
export function applyChange(suppression: Suppression, scopes: readonly Scope[], state: ScopeState): Suppression {
  const next: Suppression = { ...suppression };
  for (const scope of scopes) if (supersedes(state, suppression[scope])) next[scope] = state;
  return next;
}

/** The scopes in force, in `SCOPES` order. */
export function activeScopes(suppression: Suppression): Scope[] {
  return SCOPES.filter((s) => suppression[s]?.on);
}

/**
 * Whether a use is forbidden: `scope` given, by that scope or one covering it; without, by any
 * scope. `since`: when the earliest such scope in force was set.
 */
export function verdict(suppression: Suppression, scope?: Scope): { suppressed: boolean; scopes: Scope[]; since?: string } {
  const scopes = activeScopes(suppression);
  const forbidding = scope ? scopes.filter((s) => COVERED_BY[scope].includes(s)) : scopes;
  const since = forbidding.map((s) => suppression[s]!.at).sort()[0];
  return { suppressed: forbidding.length > 0, scopes, ...(since && { since }) };
}

/**
 * The key a product backend holds to look identities up in the suppression filter: derived one
 * way from the pseudonym key (HMAC-SHA256 of a fixed label), so holding it yields no pseudonym,
 * and versioned with it.
 */
export function filterKeyOf(key: PseudonymKey): PseudonymKey {
  return { version: key.version, key: new Uint8Array(createHmac('sha256', key.key).update('lethe/suppression-filter/v1').digest()) };
}

/** An identity's tag in the suppression filter: HMAC-SHA256 of its normalized `type:value` under the filter key, 16 bytes. */
export function filterTag(identity: Identity, filterKey: PseudonymKey): Uint8Array {
  return new Uint8Array(createHmac('sha256', filterKey.key).update(`${identity.type}:${identity.value}`).digest().subarray(0, 16));
}

/** Where the filter snapshot lives in its bucket: the published filter, and the tag set it is built from. */
export const FILTER_KEY = 'suppressions/filter.bin';
export const TAGS_KEY = 'suppressions/tags.bin';
