import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DecryptionError, openIdentities, sealIdentities } from '#core/envelope';

const identities = [{ type: 'email', value: 'ada@example.com' }];

describe('Function: sealIdentities', () => {
  it('round-trips under the same key and request id, and hides the values', () => {
    const key = randomBytes(32);
    const sealed = sealIdentities(identities, key, 'r1');
    expect(Buffer.from(sealed, 'base64').toString('latin1')).not.toContain('ada@example.com');
    expect(openIdentities(sealed, key, 'r1')).toEqual(identities);
  });

  it('cannot be opened with another key or for another request', () => {
    const key = randomBytes(32);
    const sealed = sealIdentities(identities, key, 'r1');
    expect(() => openIdentities(sealed, randomBytes(32), 'r1')).toThrow(DecryptionError);
    expect(() => openIdentities(sealed, key, 'r2')).toThrow(DecryptionError);
  });
});
