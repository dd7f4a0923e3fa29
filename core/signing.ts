import canonicalize from 'canonicalize';
import { createPublicKey, verify, type KeyObject } from 'node:crypto';

/**
 * What Lethe signs (receipts, tree heads) it signs the same way: ECDSA P-256 with SHA-256 over
 * the RFC 8785 canonical JSON of every field but `signature`; the signature DER-encoded, base64.
 * That is KMS's ECDSA_SHA_256, and what `node:crypto`, OpenSSL and every JOSE library check.
 */
export const SIGNATURE_ALG = 'ECDSA_P256_SHA256';

/** The bytes a signature covers: the canonical JSON of the body. */
export function canonicalBytes(body: object): Uint8Array {
  const json = canonicalize(body);
  if (json === undefined) throw new TypeError('not serializable as canonical JSON');
  return new TextEncoder().encode(json);
}

/** A P-256 public key from PEM (SPKI), or what is wrong with it. */
export function p256PublicKey(pem: string): KeyObject | string {
  let key;
  try {
    key = createPublicKey(pem);
  } catch {
    return 'the public key is not a PEM public key';
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') return 'the public key is not an ECDSA P-256 key';
  return key;
}

/** Does `signature` (base64 DER) sign the canonical JSON of `body` under `key`? */
export function verifySigned(body: object, signature: string, key: KeyObject): boolean {
  try {
    return verify('sha256', canonicalBytes(body), { key, dsaEncoding: 'der' }, Buffer.from(signature, 'base64'));
  } catch {
    return false;
  }
}
