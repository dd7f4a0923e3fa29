import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '#core/errors';
import { normalizeIdentities, normalizeIdentity, pseudonymize } from '#core/identity';

const key = { version: 'v1', key: Buffer.from('k'.repeat(32)) };

describe('Function: normalizeIdentity', () => {
  it('trims and lower-cases e-mail addresses', () => {
    expect(normalizeIdentity({ type: 'email', value: '  Ada@Example.COM ' })).toEqual({ type: 'email', value: 'ada@example.com' });
    // Addresses people have: tags, apostrophes, internationalized domains (one subject in either form) and local parts.
    const email = (value: string) => normalizeIdentity({ type: 'email', value }).value;
    expect(["o'Brien@example.ie", 'user+tag@example.co.uk', 'Jürgen@Bücher.DE', 'jürgen@xn--bcher-kva.de', '用户@例子.广告'].map(email)).toEqual([
      "o'brien@example.ie",
      'user+tag@example.co.uk',
      'jürgen@xn--bcher-kva.de',
      'jürgen@xn--bcher-kva.de',
      '用户@xn--fsqu00a.xn--4rr70v',
    ]);
    for (const value of ['ada', 'ada@', '@example.com', 'ada@localhost', 'a b@example.com', 'ada@exa mple.com', '"ada"@example.com', `${'a'.repeat(65)}@example.com`]) {
      expect(() => email(value)).toThrow('must be an e-mail address');
    }
  });

  it('takes one person typed two ways (NFC and NFD) as one subject', () => {
    const nfc = normalizeIdentity({ type: 'email', value: 'J\u00fcrgen@example.de' });
    const nfd = normalizeIdentity({ type: 'email', value: 'Ju\u0308rgen@example.de' });
    expect(nfd.value).toBe(nfc.value);
    expect(nfc.value).toBe('j\u00fcrgen@example.de');
    expect(pseudonymize(nfd, key)).toEqual(pseudonymize(nfc, key));
    // A subject's identities keep the form as typed, for the systems that match exactly.
    expect(normalizeIdentities([{ type: 'email', value: ' Ju\u0308rgen@example.de' }])).toEqual([{ type: 'email', value: nfc.value, forms: ['Ju\u0308rgen@example.de'] }]);
    expect(normalizeIdentities([{ type: 'email', value: 'ada@example.com' }])).toEqual([{ type: 'email', value: 'ada@example.com' }]);
  });

  it('refuses e-mail addresses holding search syntax (*, ?, %), which could match other people', () => {
    for (const value of ['*@example.com', 'a*@example.com', '%@example.com', 'ad?@example.com', 'ada%40@example.com']) {
      expect(() => normalizeIdentity({ type: 'email', value })).toThrow(/must not contain \*, \? or %/);
    }
    // `_`, `+`, `'` and `.` are what real addresses hold, and stay.
    expect(normalizeIdentity({ type: 'email', value: "o'b_r.i+e@example.com" }).value).toBe("o'b_r.i+e@example.com");
  });

  it('turns phone numbers into E.164', () => {
    expect(normalizeIdentity({ type: 'phone', value: '+44 20 7946 0958' }).value).toBe('+442079460958');
    expect(normalizeIdentity({ type: 'phone', value: '+1 (202) 555-0173' }).value).toBe('+12025550173');
  });

  it('keeps opaque identities exactly', () => {
    expect(normalizeIdentity({ type: 'user_id', value: ' U-Ada ' })).toEqual({ type: 'user_id', value: ' U-Ada ' });
  });

  it('rejects what is not an e-mail address or a phone number', () => {
    expect(() => normalizeIdentity({ type: 'email', value: 'not-an-address' })).toThrow(ValidationError);
    expect(() => normalizeIdentity({ type: 'phone', value: '12345' })).toThrow(/international format/);
  });
});

describe('Function: normalizeIdentities', () => {
  it('names every invalid identity by index and merges duplicates, keeping each form given', () => {
    expect(() =>
      normalizeIdentities([
        { type: 'email', value: 'bad' },
        { type: 'phone', value: 'x' },
      ]),
    ).toThrow(/identities\.0\.value: .*identities\.1\.value:/);
    expect(
      normalizeIdentities([
        { type: 'email', value: 'ADA@example.com' },
        { type: 'email', value: 'ada@example.com' },
        { type: 'email', value: ' Ada@Example.com' },
      ]),
    ).toEqual([{ type: 'email', value: 'ada@example.com', forms: ['ADA@example.com', 'Ada@Example.com'] }]);
  });
});

describe('Function: pseudonymize', () => {
  it('is deterministic under one key and differs under another', () => {
    const id = { type: 'email', value: 'ada@example.com' };
    expect(pseudonymize(id, key)).toEqual(pseudonymize(id, key));
    expect(pseudonymize(id, key).pseudonym).not.toBe(pseudonymize(id, { version: 'v2', key: Buffer.from('x'.repeat(32)) }).pseudonym);
  });

  it('separates identity types and never contains the value', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), (value) => {
        const a = pseudonymize({ type: 'user_id', value }, key);
        const b = pseudonymize({ type: 'device_id', value }, key);
        expect(a.pseudonym).not.toBe(b.pseudonym);
        expect(a.pseudonym).toMatch(/^[0-9a-f]{64}$/);
      }),
    );
  });
});
