import { readFileSync } from 'node:fs';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { DecryptCommand, GenerateDataKeyCommand } from '@aws-sdk/client-kms';
import { GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { PermanentError, RetryableError } from '#core/errors';
import type { PseudonymKey } from '#core/identity';
import type { KeyService } from '#core/ports';
import { kms, secrets } from './clients.ts';
import { requireEnv } from './env.ts';

/** KMS wraps per-request data keys; Secrets Manager holds the pseudonym HMAC key. */
export class AwsKeyService implements KeyService {
  readonly #keyId: string;
  readonly #secretId: string;
  #pseudonymKey: Promise<PseudonymKey> | undefined;

  constructor(keyId: string, pseudonymSecretId: string) {
    this.#keyId = keyId;
    this.#secretId = pseudonymSecretId;
  }

  async generateDataKey(requestId: string): Promise<{ plaintext: Uint8Array; wrapped: string }> {
    const out = await kms.send(
      new GenerateDataKeyCommand({ KeyId: this.#keyId, KeySpec: 'AES_256', EncryptionContext: { requestId } }),
    );
    if (!out.Plaintext || !out.CiphertextBlob) throw new RetryableError('KMS returned no data key');
    return { plaintext: out.Plaintext, wrapped: Buffer.from(out.CiphertextBlob).toString('base64') };
  }

  async unwrapDataKey(wrapped: string | undefined, requestId: string): Promise<Uint8Array> {
    if (!wrapped) throw shredded(requestId);
    const out = await kms.send(
      new DecryptCommand({
        KeyId: this.#keyId,
        CiphertextBlob: Buffer.from(wrapped, 'base64'),
        EncryptionContext: { requestId },
      }),
    );
    if (!out.Plaintext) throw new RetryableError('KMS returned no plaintext');
    return out.Plaintext;
  }

  pseudonymKey(): Promise<PseudonymKey> {
    this.#pseudonymKey ??= secrets.send(new GetSecretValueCommand({ SecretId: this.#secretId })).then(
      (out) => parsePseudonymSecret(out.SecretString),
      (error: unknown) => {
        this.#pseudonymKey = undefined;
        throw new RetryableError('pseudonym key unavailable', { cause: error });
      },
    );
    return this.#pseudonymKey;
  }
}

export function parsePseudonymSecret(secret: string | undefined): PseudonymKey {
  const parsed = JSON.parse(secret ?? '{}') as { version?: unknown; key?: unknown };
  if (typeof parsed.version !== 'string' || typeof parsed.key !== 'string' || parsed.key.length < 32) {
    throw new PermanentError('pseudonym secret must be JSON {"version": string, "key": string of 32+ chars}');
  }
  return { version: parsed.version, key: Buffer.from(parsed.key, 'utf8') };
}

/**
 * Local mode's stand-in for KMS behind the same port: a master key in a local file wraps the
 * data keys (AES-256-GCM, request id as associated data). Not for production.
 */
export class LocalKeyService implements KeyService {
  readonly #master: Buffer;
  readonly #pseudonym: PseudonymKey;

  constructor(material: { masterKey: string; pseudonymKey: string; pseudonymKeyVersion: string }) {
    this.#master = Buffer.from(material.masterKey, 'base64');
    this.#pseudonym = { version: material.pseudonymKeyVersion, key: Buffer.from(material.pseudonymKey, 'base64') };
  }

  static fromFile(path: string): LocalKeyService {
    return new LocalKeyService(JSON.parse(readFileSync(path, 'utf8')) as ConstructorParameters<typeof LocalKeyService>[0]);
  }

  static generateMaterial(): ConstructorParameters<typeof LocalKeyService>[0] {
    return {
      masterKey: randomBytes(32).toString('base64'),
      pseudonymKey: randomBytes(32).toString('base64'),
      pseudonymKeyVersion: 'local-v1',
    };
  }

  generateDataKey(requestId: string): Promise<{ plaintext: Uint8Array; wrapped: string }> {
    const plaintext = randomBytes(32);
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.#master, iv).setAAD(Buffer.from(requestId));
    const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return Promise.resolve({ plaintext, wrapped: Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64') });
  }

  unwrapDataKey(wrapped: string | undefined, requestId: string): Promise<Uint8Array> {
    if (!wrapped) return Promise.reject(shredded(requestId));
    const raw = Buffer.from(wrapped, 'base64');
    const decipher = createDecipheriv('aes-256-gcm', this.#master, raw.subarray(0, 12)).setAAD(Buffer.from(requestId));
    decipher.setAuthTag(raw.subarray(12, 28));
    return Promise.resolve(Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]));
  }

  pseudonymKey(): Promise<PseudonymKey> {
    return Promise.resolve(this.#pseudonym);
  }
}

/** A request whose data key was destroyed: what was sealed under it can no longer be opened. */
const shredded = (requestId: string) => new PermanentError(`the data key of request ${requestId} was destroyed (crypto-shredded)`);

/** `KEY_PROVIDER=kms` (what the stack sets) or `local` (what local mode sets). */
export function keyServiceFromEnv(): KeyService {
  const provider = requireEnv('KEY_PROVIDER');
  if (provider === 'kms') return new AwsKeyService(requireEnv('KMS_KEY_ID'), requireEnv('PSEUDONYM_SECRET_ID'));
  if (provider === 'local') return LocalKeyService.fromFile(requireEnv('LOCAL_KEY_FILE'));
  throw new Error(`KEY_PROVIDER must be kms or local, not ${provider}`);
}
