import { GetPublicKeyCommand, SignCommand } from '@aws-sdk/client-kms';
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { RetryableError } from '#core/errors';
import type { ReceiptSigner } from '#core/ports';
import { kms } from './clients.ts';
import { requireEnv } from './env.ts';

/** KMS signs with the stack's ECC_NIST_P256 key; the private key never leaves KMS. */
export class KmsReceiptSigner implements ReceiptSigner {
  readonly keyId: string;
  #publicKey: Promise<string> | undefined;

  constructor(keyId: string) {
    this.keyId = keyId;
  }

  async sign(message: Uint8Array): Promise<Uint8Array> {
    // The digest, not the message: KMS takes at most 4 KB of message, and the signature is the same.
    const digest = createHash('sha256').update(message).digest();
    const out = await kms.send(new SignCommand({ KeyId: this.keyId, Message: digest, MessageType: 'DIGEST', SigningAlgorithm: 'ECDSA_SHA_256' }));
    if (!out.Signature) throw new RetryableError('KMS returned no signature');
    return out.Signature;
  }

  publicKeyPem(): Promise<string> {
    this.#publicKey ??= kms.send(new GetPublicKeyCommand({ KeyId: this.keyId })).then(
      (out) => createPublicKey({ key: Buffer.from(out.PublicKey!), format: 'der', type: 'spki' }).export({ format: 'pem', type: 'spki' }).toString(),
      (error: unknown) => {
        this.#publicKey = undefined;
        throw new RetryableError('receipt public key unavailable', { cause: error });
      },
    );
    return this.#publicKey;
  }
}

/** Local mode's signer: a P-256 private key in a PEM file (`ensureKeyFile` makes it). Not for production. */
export class LocalReceiptSigner implements ReceiptSigner {
  readonly keyId = 'local';
  readonly #privateKey: ReturnType<typeof createPrivateKey>;

  constructor(pem: string) {
    this.#privateKey = createPrivateKey(pem);
  }

  static fromFile(path: string): LocalReceiptSigner {
    return new LocalReceiptSigner(readFileSync(path, 'utf8'));
  }

  /** Make the key file unless there is one (local mode, at start). */
  static ensureKeyFile(path: string): void {
    if (existsSync(path)) return;
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    writeFileSync(path, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
  }

  sign(message: Uint8Array): Promise<Uint8Array> {
    return Promise.resolve(sign('sha256', message, { key: this.#privateKey, dsaEncoding: 'der' }));
  }

  publicKeyPem(): Promise<string> {
    return Promise.resolve(createPublicKey(this.#privateKey).export({ format: 'pem', type: 'spki' }).toString());
  }
}

/**
 * `<purpose>_SIGNER=kms` with `<purpose>_KEY_ID` (the stack), or `local` with `LOCAL_<purpose>_KEY_FILE`
 * (local mode): receipts and tree heads (`RECEIPT`), or OpenDSR answers and callbacks (`OPENDSR`), each its own key.
 */
export function receiptSignerFromEnv(purpose: 'RECEIPT' | 'OPENDSR' = 'RECEIPT'): ReceiptSigner {
  const signer = requireEnv(`${purpose}_SIGNER`);
  if (signer === 'kms') return new KmsReceiptSigner(requireEnv(`${purpose}_KEY_ID`));
  if (signer === 'local') return LocalReceiptSigner.fromFile(requireEnv(`LOCAL_${purpose}_KEY_FILE`));
  throw new Error(`${purpose}_SIGNER must be kms or local, not ${signer}`);
}
