import type { Identity, PseudonymKey } from './identity.ts';
import type { Action } from './request.ts';

/**
 * Keys: KMS and Secrets Manager in AWS, a local key file in local mode. Data keys are per
 * request and only ever stored wrapped; the pseudonym key is shared and versioned.
 */
export interface KeyService {
  generateDataKey(requestId: string): Promise<{ plaintext: Uint8Array; wrapped: string }>;
  unwrapDataKey(wrapped: string, requestId: string): Promise<Uint8Array>;
  pseudonymKey(): Promise<PseudonymKey>;
}

/** What a connector is asked to do for one subject in one system. */
export interface ConnectorCommand {
  readonly requestId: string;
  readonly action: Action;
  /** The subject's normalized raw identities, linked ones included. Never log them. */
  readonly identities: readonly Identity[];
  /** Keyed hash (HMAC-SHA256, hex) for the `hmac` anonymization strategy. */
  readonly keyedHash: (value: string) => string;
}

export interface ConnectorResult {
  /** Records deleted, anonymized or otherwise changed. 0 when there was nothing to do. */
  readonly affected: number;
}

/**
 * The connector port: one implementation per connector kind. Every action is idempotent (doing
 * it again affects 0 records) and reports counts, never values. Errors are ConnectorRetryableError
 * or ConnectorPermanentError.
 */
export interface Connector {
  readonly kind: string;
  describe(): { readonly actions: readonly Action[] };
  /**
   * Linked identities this system holds for the subject (e.g. the users table yields its
   * `crm_contact_id`), read before anything is deleted. Empty when it provides none.
   */
  resolve(identities: readonly Identity[]): Promise<Identity[]>;
  /** delete, anonymize, restrict or lift the subject's records. */
  run(command: ConnectorCommand): Promise<ConnectorResult>;
  /** How many of the subject's records remain that the action should have removed or changed. */
  verify(command: ConnectorCommand): Promise<{ readonly remaining: number }>;
}
