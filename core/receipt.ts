import { z } from 'zod';
import { bytesOf, recordLeafHash, treeHeadSchema, withoutSignature } from './log.ts';
import { verifyInclusion } from './merkle.ts';
import { canonicalBytes, p256PublicKey, SIGNATURE_ALG, verifySigned } from './signing.ts';

/**
 * A receipt: what Lethe did for one final request, system by system, with the head of the
 * request's audit chain and the proof that this head is a leaf of the audit log under a signed
 * tree head, signed so that anyone holding the public key can check it offline, with
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
  /** A system that `needs_review`: what its verification's wider net found the action left, by reason. */
  nearMisses: z.record(z.string(), z.int().min(0)).optional(),
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
  /** Completed, and no system found anything of the subject's: nothing was deleted because nothing was there. */
  nothingFound: z.literal(true).optional(),
  systems: z.array(systemSchema),
  /** The request's audit chain as it stood: its last record's sequence number and hash. */
  audit: z.strictObject({ seq: z.int().min(1), head: z.string().regex(/^[0-9a-f]{64}$/) }),
  /** Where the chain's head is in the audit log: its leaf, a signed tree head, and the inclusion proof (RFC 9162 §2.1.3). */
  log: z.strictObject({
    leafIndex: z.int().min(0),
    treeHead: treeHeadSchema,
    inclusionProof: z.array(z.string().regex(/^[0-9a-f]{64}$/)),
  }),
  issuedAt: z.string(),
  /** Which key signed: a KMS key ARN, or `local`. */
  keyId: z.string(),
  alg: z.literal(SIGNATURE_ALG),
  signature: z.string().min(1),
});
export type Receipt = z.infer<typeof receiptSchema>;
export type ReceiptBody = Omit<Receipt, 'signature'>;

/** The bytes a receipt's signature covers. */
export const receiptMessage = (body: ReceiptBody): Uint8Array => canonicalBytes(body);

export type ReceiptCheck = { readonly ok: true; readonly receipt: Receipt } | { readonly ok: false; readonly problem: string };

/**
 * Check a receipt against a public key (PEM, SPKI): its shape, its signature, the signature of the
 * tree head it carries, and that its proof puts the chain's head at its leaf of that tree. Says
 * what is wrong.
 */
export function verifyReceipt(input: unknown, publicKeyPem: string): ReceiptCheck {
  const parsed = receiptSchema.safeParse(input);
  if (!parsed.success) return { ok: false, problem: `not a receipt: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}` };
  const key = p256PublicKey(publicKeyPem);
  if (typeof key === 'string') return { ok: false, problem: key };
  const receipt = parsed.data;
  if (!verifySigned(withoutSignature(receipt), receipt.signature, key)) return { ok: false, problem: 'the signature does not match: the receipt was changed, or another key signed it' };
  const { leafIndex, treeHead, inclusionProof } = receipt.log;
  if (!verifySigned(withoutSignature(treeHead), treeHead.signature, key)) return { ok: false, problem: 'the tree head in the receipt is not signed by this key' };
  const included = verifyInclusion(leafIndex, treeHead.treeSize, recordLeafHash(receipt.audit.head), inclusionProof.map(bytesOf), bytesOf(treeHead.rootHash));
  if (!included) return { ok: false, problem: `the inclusion proof does not put the audit head at leaf ${String(leafIndex)} of the tree of ${String(treeHead.treeSize)} leaves` };
  return { ok: true, receipt };
}
