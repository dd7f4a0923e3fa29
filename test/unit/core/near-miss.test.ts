import { describe, expect, it } from 'vitest';
import { addNearMisses, describeNearMisses, nearMissReason, nearMissTotal, wideForms, wideKey } from '#core/near-miss';

describe('Module: core/near-miss', () => {
  it('classes a stored value the wider net matched, never keeping it', () => {
    expect(nearMissReason(' ada@example.com')).toBe('whitespace');
    expect(nearMissReason('ju\u0308rgen@example.com')).toBe('unicode');
    expect(nearMissReason('ａｄａ@example.com')).toBe('unicode'); // fullwidth letters: NFKC folds them
    expect(nearMissReason('U-1234')).toBe('case');
  });

  it('compares and spells values as the wider net does', () => {
    expect(wideKey(' Ju\u0308rgen@Example.com\t')).toBe('jürgen@example.com');
    expect(wideKey('ａｄａ')).toBe('ada');
    expect(wideForms([' Jürgen@X.de'])).toEqual(['jürgen@x.de', 'ju\u0308rgen@x.de']);
  });

  it('adds, totals and describes counts by reason, with no value in the words', () => {
    const n = addNearMisses({ case: 2 }, undefined, { case: 1, linked: 1, unicode: 0 });
    expect(n).toEqual({ case: 3, linked: 1 });
    expect(nearMissTotal(n)).toBe(4);
    expect(describeNearMisses(n)).toBe(
      "4 of the subject's records were left, which the action did not match: 3 in another letter case, 1 linked to one of those",
    );
  });
});
