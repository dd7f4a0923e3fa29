import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { buildFilter } from '#core/filter';
import type { Identity } from '#core/identity';
import { filterRecords, identitiesIn, snapshotCheck, streamFilterSchema, type StreamFilterConfig } from '#core/stream-filter';
import { filterTag } from '#core/suppression';

const fields: StreamFilterConfig['fields'] = [
  { path: 'userId', identity: 'user_id' },
  { path: 'context.emails', identity: 'email' },
];
/** A check that says yes for these `type:value`s, and records what it was asked. */
const checkOf = (suppressed: string[]) => {
  const asked: Identity[][] = [];
  const check = (ids: readonly Identity[]) => {
    asked.push([...ids]);
    return Promise.resolve(ids.map((i) => suppressed.includes(`${i.type}:${i.value}`)));
  };
  return { check, asked };
};

describe('Module: core/stream-filter', () => {
  it('finds identities at dotted paths and through arrays, normalized, skipping what is no identity', () => {
    const record = { userId: 42, context: { emails: [' Ada@Example.COM ', 'not an address', { nested: true }] } };
    expect(identitiesIn(record, fields)).toEqual([
      { type: 'user_id', value: '42' },
      { type: 'email', value: 'ada@example.com' },
    ]);
    expect(identitiesIn([{ userId: 'a' }, { userId: 'b' }], fields).map((i) => i.value)).toEqual(['a', 'b']);
    expect(identitiesIn('a string', fields)).toEqual([]);
    expect(identitiesIn(null, fields)).toEqual([]);
  });

  it("drops a suppressed subject's records and keeps the others, asking once for the batch's distinct identities", async () => {
    const { check, asked } = checkOf(['user_id:u1', 'email:grace@example.com']);
    const records = [
      { userId: 'u1', event: 'click' },
      { userId: 'u2', event: 'click' },
      { userId: 'u3', context: { emails: ['Grace@example.com'] } },
      { userId: 'u2', event: 'view' },
      { event: 'anonymous' },
    ];
    const out = await filterRecords(records, { fields, action: 'drop' }, check);
    expect(out.map((o) => o.result)).toEqual(['drop', 'keep', 'drop', 'keep', 'keep']);
    expect(asked).toHaveLength(1);
    expect(asked[0]!.map((i) => i.value).sort()).toEqual(['grace@example.com', 'u1', 'u2', 'u3']);
  });

  it('redacts the identity fields and the named others of suppressed subjects only, leaving the input alone', async () => {
    const { check } = checkOf(['user_id:u1']);
    const records = [
      { userId: 'u1', context: { emails: ['ada@example.com'], ip: '192.0.2.1', page: '/home' }, event: 'view' },
      { userId: 'u2', context: { ip: '192.0.2.2' }, event: 'view' },
    ];
    const config = streamFilterSchema.parse({ fields, action: 'redact', redact: ['context.ip', 'absent.path'] });
    const out = await filterRecords(records, config, check);
    expect(out).toEqual([{ result: 'redact', record: { context: { page: '/home' }, event: 'view' } }, { result: 'keep' }]);
    expect(records[0]!.userId).toBe('u1');
  });

  it('never asks about a batch that names no identity', async () => {
    const { check, asked } = checkOf([]);
    expect(await filterRecords([{ a: 1 }, 'text', 7], { fields, action: 'drop' }, check)).toEqual([{ result: 'keep' }, { result: 'keep' }, { result: 'keep' }]);
    expect(asked).toEqual([]);
  });

  it('confirms only what the filter snapshot cannot rule out, and asks about everything without one', async () => {
    const filterKey = { version: 'v1', key: new Uint8Array(randomBytes(32)) };
    const suppressed = Array.from({ length: 50 }, (_, i) => ({ type: 'user_id', value: `s${String(i)}` }));
    const others = Array.from({ length: 2000 }, (_, i) => ({ type: 'user_id', value: `o${String(i)}` }));
    const filter = buildFilter(suppressed.map((i) => filterTag(i, filterKey)));
    const { check, asked } = checkOf(suppressed.map((i) => `user_id:${i.value}`));

    const answers = await snapshotCheck(() => ({ filter, filterKey }), check)([...others, ...suppressed]);
    expect(answers.filter(Boolean)).toHaveLength(50);
    expect(answers.slice(2000).every(Boolean)).toBe(true);
    // The suppressed and the filter's false positives (1 in 256: about 8 of 2,000).
    expect(asked[0]!.length).toBeGreaterThanOrEqual(50);
    expect(asked[0]!.length).toBeLessThan(50 + 40);

    const none = checkOf([]);
    await snapshotCheck(() => undefined, none.check)(others.slice(0, 10));
    expect(none.asked[0]).toHaveLength(10);
  });

  it('refuses a configuration without identity fields, with an unknown action, or a path that is not dotted', () => {
    const issues = (input: unknown) => streamFilterSchema.safeParse(input).error?.issues.map((i) => i.path.join('.')) ?? [];
    expect(issues({ fields: [], action: 'drop' })).toEqual(['fields']);
    expect(issues({ fields, action: 'delete' })).toEqual(['action']);
    expect(issues({ fields: [{ path: 'a..b', identity: 'email' }], action: 'drop' })).toEqual(['fields.0.path']);
  });
});
