import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { REQUEST_TYPES } from '#core/request';
import { pseudonymize } from '#core/identity';
import { applyChange, filterKeyOf, filterTag, SCOPES, suppressionChange, verdict, type Scope, type ScopeState, type Suppression } from '#core/suppression';

const state = (on: boolean, at: string, requestId = `r-${at}`): ScopeState => ({ on, at, requestId });
const after = (...changes: [readonly Scope[], ScopeState][]): Suppression => changes.reduce<Suppression>((s, [scopes, st]) => applyChange(s, scopes, st), {});

describe('Module: suppression', () => {
  it('suppresses what each request type calls for, and lifts what a withdraw names', () => {
    expect(suppressionChange('erasure')).toEqual({ on: true, scopes: ['all'] });
    expect(suppressionChange('anonymize')).toEqual({ on: true, scopes: ['all'] });
    expect(suppressionChange('restrict')).toEqual({ on: true, scopes: ['processing'] });
    expect(suppressionChange('opt_out')).toEqual({ on: true, scopes: ['sale', 'sharing'] });
    expect(suppressionChange('opt_out', ['marketing'])).toEqual({ on: true, scopes: ['marketing'] });
    // A withdraw lifts every opt-out and restriction, but an erasure's `all` only when it names it.
    expect(suppressionChange('withdraw')).toEqual({ on: false, scopes: ['sale', 'sharing', 'marketing', 'processing'] });
    expect(suppressionChange('withdraw', ['all'])).toEqual({ on: false, scopes: ['all'] });
    for (const type of REQUEST_TYPES) expect(suppressionChange(type).scopes.length).toBeGreaterThan(0);
  });

  it('forbids a use by its own scope, by processing and by all, and nothing narrower by a narrower one', () => {
    const marketing = after([['marketing'], state(true, '2026-01-01T00:00:00.000Z')]);
    expect(verdict(marketing, 'marketing')).toEqual({ suppressed: true, scopes: ['marketing'], since: '2026-01-01T00:00:00.000Z' });
    expect(verdict(marketing, 'sale')).toEqual({ suppressed: false, scopes: ['marketing'] });
    expect(verdict(marketing)).toMatchObject({ suppressed: true });

    const restricted = after([['processing'], state(true, '2026-02-01T00:00:00.000Z')]);
    for (const scope of ['sale', 'sharing', 'marketing', 'processing'] as const) expect(verdict(restricted, scope).suppressed).toBe(true);
    expect(verdict(restricted, 'all').suppressed).toBe(false);

    const erased = after([['all'], state(true, '2026-03-01T00:00:00.000Z')]);
    for (const scope of SCOPES) expect(verdict(erased, scope).suppressed).toBe(true);
    expect(verdict({})).toEqual({ suppressed: false, scopes: [] });
  });

  it('says since when the earliest scope that forbids the use holds', () => {
    const s = after([['sale'], state(true, '2026-05-01T00:00:00.000Z')], [['processing'], state(true, '2026-04-01T00:00:00.000Z')]);
    expect(verdict(s, 'sale').since).toBe('2026-04-01T00:00:00.000Z');
    expect(verdict(s, 'processing').since).toBe('2026-04-01T00:00:00.000Z');
  });

  it('lets a withdraw lift only what was set before it', () => {
    const optOut: [Scope[], ScopeState] = [['sale', 'sharing'], state(true, '2026-01-02T00:00:00.000Z')];
    const olderWithdraw: [Scope[], ScopeState] = [['sale', 'sharing'], state(false, '2026-01-01T00:00:00.000Z')];
    // The withdraw was made first but arrives second: the opt-out holds.
    expect(verdict(after(optOut, olderWithdraw)).scopes).toEqual(['sale', 'sharing']);
    expect(verdict(after(olderWithdraw, optOut)).scopes).toEqual(['sale', 'sharing']);
    expect(verdict(after(optOut, [['sale'], state(false, '2026-01-03T00:00:00.000Z')])).scopes).toEqual(['sharing']);
  });

  it('ends the same whatever order the changes arrive in, replays included (fast-check)', () => {
    // Each request is one change; requests may share a millisecond (the request id orders them then).
    const changes = fc
      .array(
        fc.record({
          scopes: fc.uniqueArray(fc.constantFrom(...SCOPES), { minLength: 1 }),
          on: fc.boolean(),
          at: fc.integer({ min: 0, max: 5 }).map((ms) => new Date(Date.UTC(2026, 0, 1) + ms).toISOString()),
        }),
        { maxLength: 10 },
      )
      .map((list) => list.map((c, i) => ({ ...c, requestId: `r-${String(i)}` })));
    const arrivals = changes.chain((list) =>
      fc.tuple(fc.constant(list), fc.shuffledSubarray([...list, ...list], { minLength: list.length * 2, maxLength: list.length * 2 })),
    );
    fc.assert(
      fc.property(arrivals, ([list, arrived]) => {
        const apply = (l: typeof list) => l.reduce<Suppression>((s, c) => applyChange(s, c.scopes, { on: c.on, at: c.at, requestId: c.requestId }), {});
        expect(apply(arrived)).toEqual(apply(list));
      }),
    );
  });

  it('tags identities for the filter under a key of their own, derived one way from the pseudonym key', () => {
    const key = { version: 'v1', key: new Uint8Array(32).fill(1) };
    const filterKey = filterKeyOf(key);
    const ada = { type: 'email', value: 'ada@example.com' };
    expect(filterKey.version).toBe('v1');
    expect(Buffer.from(filterKey.key).equals(Buffer.from(key.key))).toBe(false);
    expect(filterTag(ada, filterKey)).toHaveLength(16);
    expect(Buffer.from(filterTag(ada, filterKey))).toEqual(Buffer.from(filterTag({ ...ada }, filterKeyOf({ ...key }))));
    // Not the pseudonym, nor a tag of another type with the same value, nor under another key.
    expect(pseudonymize(ada, key).pseudonym).not.toContain(Buffer.from(filterTag(ada, filterKey)).toString('hex'));
    expect(Buffer.from(filterTag({ type: 'user_id', value: ada.value }, filterKey))).not.toEqual(Buffer.from(filterTag(ada, filterKey)));
    expect(Buffer.from(filterTag(ada, filterKeyOf({ version: 'v2', key: new Uint8Array(32).fill(2) })))).not.toEqual(Buffer.from(filterTag(ada, filterKey)));
  });
});
