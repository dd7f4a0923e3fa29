import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { PermanentError } from './errors.ts';
import type { Identity } from './identity.ts';

/**
 * Envelope encryption of a request's personal data (its raw identities, linked identities and the
 * keys of what it restricted) under the request's own 256-bit data key (AES-256-GCM, the request
 * id as associated data so a ciphertext cannot be moved to another request). Destroying the
 * wrapped data key later makes all of it unrecoverable.
 */
const VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;

export class DecryptionError extends PermanentError {}

export function sealIdentities(identities: readonly Identity[], dataKey: Uint8Array, requestId: string): string {
  return seal(identities, dataKey, requestId);
}

export function openIdentities(sealed: string, dataKey: Uint8Array, requestId: string): Identity[] {
  return open<Identity[]>(sealed, dataKey, requestId);
}

/** Seal any JSON value of a request. */
export function seal(value: unknown, dataKey: Uint8Array, requestId: string): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', dataKey, iv);
  cipher.setAAD(Buffer.from(requestId));
  const body = Buffer.concat([cipher.update(JSON.stringify(value), 'utf8'), cipher.final()]);
  return Buffer.concat([Buffer.from([VERSION]), iv, cipher.getAuthTag(), body]).toString('base64');
}

export function open<T>(sealed: string, dataKey: Uint8Array, requestId: string): T {
  const raw = Buffer.from(sealed, 'base64');
  if (raw[0] !== VERSION) throw new DecryptionError(`unknown envelope version ${String(raw[0])}`);
  const iv = raw.subarray(1, 1 + IV_BYTES);
  const tag = raw.subarray(1 + IV_BYTES, 1 + IV_BYTES + TAG_BYTES);
  try {
    const decipher = createDecipheriv('aes-256-gcm', dataKey, iv);
    decipher.setAAD(Buffer.from(requestId));
    decipher.setAuthTag(tag);
    const plain = Buffer.concat([decipher.update(raw.subarray(1 + IV_BYTES + TAG_BYTES)), decipher.final()]);
    return JSON.parse(plain.toString('utf8')) as T;
  } catch (cause) {
    throw new DecryptionError(`sealed data of request ${requestId} cannot be decrypted`, { cause });
  }
}
