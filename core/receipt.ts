import canonicalize from 'canonicalize';
import { createPublicKey, verify } from 'node:crypto';
import { z } from 'zod';

/**
 * A receipt: what Lethe did for one final request, system by system, with the head of the
 * request's audit chain, signed so that anyone holding the public key can check it offline, with
 * no access to Lethe or AWS. No identity and no pseudonym is in it. The signature is ECDSA P-256
 * with SHA-256 (KMS's ECDSA_SHA_256, DER-encoded, base64) over the RFC 8785 canonical JSON of
 * every field but `signature`.
 */
export const RECEIPT_VERSION = 1;

const systemSchema = z.strictObject({
  system: z.string(),
  action: z.string(),
  status: z.string(),
  affected: z.number().nullable(),
  updatedAt: z.string(),
  errorName: z.string().optional(),
});

export const receiptSchema = z.strictObject({
  v: z.literal(RECEIPT_VERSION),
  requestId: z.uuid(),
  type: z.string(),
  regulation: z.string(),
  status: z.string(),
  receivedAt: z.string(),
  dueAt: z.string(),
  completedAt: z.string().nullable(),
  systems: z.array(systemSchema),
  /** The request's audit chain as it stood: its last record's sequence number and hash. */
  audit: z.strictObject({ seq: z.int().min(0), head: z.string().regex(/^[0-9a-f]{64}$/) }),
  issuedAt: z.string(),
  /** Which key signed: a KMS key ARN, or `local`. */
  keyId: z.string(),
  alg: z.literal('ECDSA_P256_SHA256'),
  signature: z.string().min(1),
});
export type Receipt = z.infer<typeof receiptSchema>;
export type ReceiptBody = Omit<Receipt, 'signature'>;

/** The bytes a receipt's signature covers. */
export function receiptMessage(body: ReceiptBody): Uint8Array {
  const json = canonicalize(body);
  if (json === undefined) throw new TypeError('a receipt is not serializable');
  return new TextEncoder().encode(json);
}

export type ReceiptCheck = { readonly ok: true; readonly receipt: Receipt } | { readonly ok: false; readonly problem: string };

/** Check a receipt against a public key (PEM, SPKI): its shape, then its signature. Says what is wrong. */
export function verifyReceipt(input: unknown, publicKeyPem: string): ReceiptCheck {
  const parsed = receiptSchema.safeParse(input);
  if (!parsed.success) return { ok: false, problem: `not a receipt: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}` };
  let key;
  try {
    key = createPublicKey(publicKeyPem);
  } catch {
    return { ok: false, problem: 'the public key is not a PEM public key' };
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') return { ok: false, problem: 'the public key is not an ECDSA P-256 key' };
  const { signature, ...body } = parsed.data;
  const ok = verify('sha256', receiptMessage(body), { key, dsaEncoding: 'der' }, Buffer.from(signature, 'base64'));
  return ok ? { ok: true, receipt: parsed.data } : { ok: false, problem: 'the signature does not match: the receipt was changed, or another key signed it' };
}
