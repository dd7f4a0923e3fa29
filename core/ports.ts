import type { Identity, PseudonymKey } from './identity.ts';
import type { NearMisses } from './near-miss.ts';
import type { Action } from './request.ts';

/**
 * Keys: KMS and Secrets Manager in AWS, a local key file in local mode. Data keys are per
 * request and only ever stored wrapped; the pseudonym key is shared and versioned.
 */
export interface KeyService {
  generateDataKey(requestId: string): Promise<{ plaintext: Uint8Array; wrapped: string }>;
  /** Fails (permanently) once the key was destroyed: `wrapped` is then absent. */
  unwrapDataKey(wrapped: string | undefined, requestId: string): Promise<Uint8Array>;
  pseudonymKey(): Promise<PseudonymKey>;
}

/** Signs receipts: a KMS asymmetric key (ECC_NIST_P256) in AWS, a local key pair in local mode. */
export interface ReceiptSigner {
  readonly keyId: string;
  /** ECDSA P-256 over SHA-256 of `message`, DER-encoded. */
  sign(message: Uint8Array): Promise<Uint8Array>;
  /** The public key, PEM (SPKI), for verifying receipts offline. */
  publicKeyPem(): Promise<string>;
}

/** What a connector is asked to do for one subject in one system. */
export interface ConnectorCommand {
  readonly requestId: string;
  readonly action: Action;
  /** The subject's normalized raw identities, linked ones included. Never log them. */
  readonly identities: readonly Identity[];
  /** Keyed hash (HMAC-SHA256, hex) for the `hmac` anonymization strategy. */
  readonly keyedHash: (value: string) => string;
  /** The law the request is made under, for vendors that ask (e.g. Mixpanel's compliance type). */
  readonly regulation?: string;
  /** Where a target that finishes later reports the outcome (a webhook service's signed callback). */
  readonly callbackUrl?: string;
  /**
   * For `restrict`: called with the records about to be restricted, before they are, so the
   * caller keeps (sealed) exactly what this restriction changes. Records already restricted by
   * someone else are not in it.
   */
  readonly recordRestriction?: (restriction: Restriction) => Promise<void>;
  /**
   * For `lift`: what the subject's earlier restrictions in this system recorded. A lift touches
   * these records only, so a restriction made outside Lethe stays. Absent (as in `lethe plan`):
   * the subject's restricted records, as an upper bound.
   */
  readonly restrictions?: readonly Restriction[];
}

/**
 * What a restriction changed in one system: record keys by scope (a SQL table, a Cognito user
 * pool). Keys can be personal data: they are kept sealed under the request's data key, never
 * logged, queued or audited.
 */
export type Restriction = Readonly<Record<string, readonly string[]>>;

/** The keys of several restrictions, scope by scope, each once. */
export function mergeRestrictions(restrictions: readonly Restriction[]): Record<string, string[]> {
  const merged = new Map<string, Set<string>>();
  for (const r of restrictions) {
    for (const [scope, keys] of Object.entries(r)) {
      const set = merged.get(scope) ?? new Set<string>();
      keys.forEach((k) => set.add(k));
      merged.set(scope, set);
    }
  }
  return Object.fromEntries([...merged].map(([scope, keys]) => [scope, [...keys]]));
}

export interface Verification {
  readonly remaining: number;
  /** Absent or empty: the wider net found nothing the action left. */
  readonly nearMisses?: NearMisses;
}

export interface ConnectorResult {
  /** Records deleted, anonymized or otherwise changed. 0 when there was nothing to do. */
  readonly affected: number;
  /** Jobs the target still runs (a vendor's asynchronous deletion): the task waits on them. */
  readonly pending?: readonly PendingJob[];
}

/** A vendor's asynchronous job: its id, and what the connector needs to poll it. */
export interface PendingJob {
  readonly vendor: string;
  readonly id: string;
  /** Values captured from the vendor's answers. Kept sealed: they may be personal. */
  readonly vars: Readonly<Record<string, string>>;
  /** How often to ask the vendor, and how long it may take before the task fails. */
  readonly pollEverySeconds: number;
  readonly deadlineSeconds: number;
  /** What the job waits for when nothing can be polled (`its callback`, `the next batch`), for the status. */
  readonly awaiting?: string;
}

export interface JobState {
  readonly state: 'pending' | 'done' | 'failed';
  /** The vendor's own state name (never personal data). */
  readonly detail?: string;
}

/**
 * The connector port: one implementation per connector kind. Every action is idempotent (doing
 * it again affects 0 records) and reports counts, never values. Errors are ConnectorRetryableError
 * or ConnectorPermanentError.
 */
export interface Connector {
  readonly kind: string;
  /**
   * What it can do; `counts: false` when `verify` cannot see the target's records (a vendor
   * without a lookup, a webhook service), so that a dry run says so instead of showing 0.
   */
  describe(): { readonly actions: readonly Action[]; readonly counts?: boolean };
  /**
   * Linked identities this system holds for the subject (e.g. the users table yields its
   * `crm_contact_id`), read before anything is deleted. Empty when it provides none.
   */
  resolve(identities: readonly Identity[]): Promise<Identity[]>;
  /** delete, anonymize, restrict or lift the subject's records. */
  run(command: ConnectorCommand): Promise<ConnectorResult>;
  /**
   * How many of the subject's records remain that the action should have removed or changed, by
   * the action's own match; and what a wider net (case-folded, Unicode-normalized, trimmed, every
   * stored form and object version) finds that the action left, by reason: those are near-misses.
   */
  verify(command: ConnectorCommand): Promise<Verification>;
  /**
   * What a person planning a request should know about how this system matches the subject (which
   * index serves a case-insensitive match, or that none does). Never values.
   */
  notes?(): Promise<string[]>;
  /** Where a job that `run` left pending stands; only connectors with asynchronous jobs have it. */
  poll?(command: ConnectorCommand, job: PendingJob): Promise<JobState>;
}

/**
 * A connector that does many subjects' erasures in one pass (a data lake rewrite, an Iceberg
 * DELETE and compaction): subjects by key, counts by the same keys.
 */
export interface BatchConnector extends Connector {
  runBatch(subjects: ReadonlyMap<string, readonly Identity[]>): Promise<Map<string, number>>;
  verifyBatch(subjects: ReadonlyMap<string, readonly Identity[]>): Promise<Map<string, Verification>>;
}

export const isBatchConnector = (c: Connector): c is BatchConnector => 'runBatch' in c && 'verifyBatch' in c;
