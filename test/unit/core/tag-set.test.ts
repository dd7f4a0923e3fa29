import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isTagSet, mergeTags, sortTags, tagCount } from '#core/tag-set';

/** Tags that share prefixes often, so that ordering is tested beyond the first byte. */
const tag = fc.array(fc.constantFrom(0, 1, 255), { minLength: 16, maxLength: 16 }).map((b) => Uint8Array.from(b));
const hex = (t: Uint8Array) => Buffer.from(t).toString('hex');
const pack = (hexes: string[]) => new Uint8Array(Buffer.from(hexes.join(''), 'hex'));
const unpack = (set: Uint8Array) => Array.from({ length: tagCount(set) }, (_, i) => hex(set.subarray(i * 16, i * 16 + 16)));

describe('Module: tag-set', () => {
  it('merges additions and removals as a sorted set would, an addition winning over a removal (fast-check)', () => {
    fc.assert(
      fc.property(fc.array(tag, { maxLength: 40 }), fc.array(tag, { maxLength: 20 }), fc.array(tag, { maxLength: 20 }), (initial, add, remove) => {
        const start = [...new Set(initial.map(hex))].sort();
        const merged = mergeTags(pack(start), add, remove);
        const adding = new Set(add.map(hex));
        const expected = [...new Set([...start, ...adding])].filter((t) => adding.has(t) || !remove.map(hex).includes(t)).sort();
        expect(unpack(merged)).toEqual(expected);
        expect(isTagSet(merged)).toBe(true);
      }),
    );
  });

  it('sorts packed tags into a tag set, duplicates once, as merging them would (fast-check)', () => {
    fc.assert(
      fc.property(fc.array(tag, { maxLength: 60 }), (tags) => {
        const sorted = sortTags(pack(tags.map(hex)));
        expect(unpack(sorted)).toEqual(unpack(mergeTags(new Uint8Array(0), tags, [])));
        expect(isTagSet(sorted)).toBe(true);
      }),
    );
    const random = new Uint8Array(16 * 5000).map(() => Math.floor(Math.random() * 256));
    expect(isTagSet(sortTags(random))).toBe(true);
    expect(() => sortTags(new Uint8Array(17))).toThrow('16 bytes each');
  });

  it('knows a tag set from other bytes', () => {
    expect(isTagSet(new Uint8Array(0))).toBe(true);
    expect(isTagSet(new Uint8Array(15))).toBe(false);
    expect(isTagSet(new Uint8Array(32))).toBe(false); // the same tag twice
    expect(() => mergeTags(new Uint8Array(8), [], [])).toThrow('16-byte tags');
    expect(() => mergeTags(new Uint8Array(0), [new Uint8Array(20)], [])).toThrow('a tag has 16 bytes');
  });
});
