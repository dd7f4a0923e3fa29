import fc from 'fast-check';
import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { buildFilter, decodeFilter, encodeFilter, mayContain } from '#core/filter';

const tag = (value: string) => new Uint8Array(createHmac('sha256', 'filter-test').update(value).digest());
const tags = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => tag(`${prefix}${String(i)}`));

describe('Module: filter (binary fuse, 8-bit fingerprints)', () => {
  it('contains every key it was built from, whatever the set’s size (fast-check)', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.string(), { maxLength: 3000 }), (values) => {
        const keys = values.map(tag);
        const filter = buildFilter(keys);
        expect(filter.size).toBe(keys.length);
        expect(keys.filter((k) => !mayContain(filter, k))).toEqual([]);
      }),
      { numRuns: 60 },
    );
  });

  it('errs on about 1 key in 256 it was not built from, in about 9 bits a key', () => {
    const filter = buildFilter(tags('in-', 200_000));
    const others = tags('out-', 200_000);
    const rate = others.filter((k) => mayContain(filter, k)).length / others.length;
    expect(rate).toBeGreaterThan(0.003);
    expect(rate).toBeLessThan(0.0048);
    expect((encodeFilter(filter).length * 8) / 200_000).toBeLessThan(9.5);
  });

  it('takes duplicates, and keys of more than 16 bytes by their first 16', () => {
    const keys = tags('k', 1000);
    const filter = buildFilter([...keys, ...keys.slice(0, 100)]);
    expect(filter.size).toBe(1000);
    expect(keys.every((k) => mayContain(filter, k))).toBe(true);
    expect(() => buildFilter([new Uint8Array(15)])).toThrow('at least 16 bytes');
  });

  it('travels as bytes, and refuses bytes that are not a filter', () => {
    const keys = tags('t', 5000);
    const filter = decodeFilter(encodeFilter(buildFilter(keys)));
    expect(keys.every((k) => mayContain(filter, k))).toBe(true);
    const bytes = encodeFilter(filter);
    expect(() => decodeFilter(new Uint8Array(10))).toThrow('not a Lethe suppression filter');
    expect(() => decodeFilter(bytes.subarray(0, bytes.length - 1))).toThrow('does not match its length');
    const future = bytes.slice();
    new DataView(future.buffer).setUint32(4, 2);
    expect(() => decodeFilter(future)).toThrow('format 2');
  });

  it('is empty and small for no keys', () => {
    const filter = buildFilter([]);
    expect(filter.size).toBe(0);
    expect(encodeFilter(filter).length).toBeLessThan(64);
  });
});
