import { Webhook } from 'standardwebhooks';
import { z } from 'zod';
import { ConnectorPermanentError, UnauthorizedError } from '#core/errors';
import type { Identity } from '#core/identity';
import type { Action } from '#core/request';
import { readSecret, type SecretSource, type SecretStores } from '../secrets.ts';

/**
 * Lethe's webhook protocol for a company's own services, signed as Standard Webhooks
 * (https://www.standardwebhooks.com): `webhook-id`, `webhook-timestamp` (Unix seconds) and
 * `webhook-signature` (`v1,` + base64 HMAC-SHA256 over `id.timestamp.body` under the shared
 * secret, `whsec_` + base64). Any Standard Webhooks library, in any language, verifies Lethe's
 * deliveries and signs the answers. Signatures more than 5 minutes old (or ahead) are rejected,
 * in both directions.
 *
 * Lethe → service: POST of a `Delivery`. The service answers, signed with the same `webhook-id`:
 * `{"status":"done","affected":N}`, `{"status":"failed","error":"<code>"}`, or
 * `{"status":"accepted"}` and later a signed POST of `done` or `failed` to the `callbackUrl`.
 */
export const SIGNATURE_HEADERS = ['webhook-id', 'webhook-timestamp', 'webhook-signature'] as const;

/** What Lethe sends a service for one task. The identities are the subject's: the service needs them to act. */
export interface Delivery {
  readonly type: 'lethe.task';
  readonly version: 1;
  /** Stable for the task across retries (`<requestId>:<system>:<action>`): deduplicate on it. */
  readonly id: string;
  readonly requestId: string;
  readonly system: string;
  readonly action: Action;
  readonly regulation: string;
  readonly identities: readonly Identity[];
  /** Where to report the outcome of an `accepted` task, signed, before `deadline`. */
  readonly callbackUrl?: string;
  readonly deadline: string;
}

export const deliveryId = (requestId: string, system: string, action: string) => `${requestId}:${system}:${action}`;

/** A failure the service reports: a code, never a message (Lethe keeps it, and cannot tell a message free of personal data). */
const errorCode = z.string().regex(/^[A-Za-z][A-Za-z0-9_.-]{0,63}$/, 'must be an error code (letters, digits, _ . -, at most 64), not a message');

const done = z.object({ status: z.literal('done'), affected: z.int().min(0).max(1e9) });
const failed = z.object({ status: z.literal('failed'), error: errorCode });

/** The service's signed answer to a delivery. */
export const answerSchema = z.discriminatedUnion('status', [done, failed, z.object({ status: z.literal('accepted') })]);
export type Answer = z.infer<typeof answerSchema>;

/** The service's signed callback: the outcome of a task it had accepted. */
export const callbackSchema = z.discriminatedUnion('status', [done, failed]);
export type Callback = z.infer<typeof callbackSchema>;

/** The minimum secret length Standard Webhooks recommends. */
const MIN_SECRET_BYTES = 24;

/** A Standard Webhooks signer and verifier; throws (naming no value) when the secret is not `whsec_` + base64 of 24+ bytes. */
export function webhookSigner(secret: string): Webhook {
  let signer: Webhook;
  try {
    signer = new Webhook(secret);
  } catch {
    throw new TypeError('the webhook secret is not a Standard Webhooks secret (whsec_ followed by base64)');
  }
  const bytes = Buffer.from(secret.replace(/^whsec_/, ''), 'base64').length;
  if (bytes < MIN_SECRET_BYTES) throw new TypeError(`the webhook secret has ${String(bytes)} bytes; give it at least ${String(MIN_SECRET_BYTES)} random bytes`);
  return signer;
}

/** The signer for a webhook system's secret; a secret that is not one fails permanently, naming the system. */
export async function signerOf(system: string, source: SecretSource, stores: SecretStores): Promise<Webhook> {
  const secret = await readSecret(source, stores);
  try {
    return webhookSigner(secret);
  } catch (error) {
    throw new ConnectorPermanentError(`${system}: ${(error as Error).message}`);
  }
}

/** The three signature headers for `body`, sent as message `id` at `at`. */
export function signatureHeaders(signer: Webhook, id: string, body: string, at = new Date()): Record<(typeof SIGNATURE_HEADERS)[number], string> {
  return { 'webhook-id': id, 'webhook-timestamp': String(Math.floor(at.getTime() / 1000)), 'webhook-signature': signer.sign(id, at, body) };
}

/**
 * Check a signed message: the signature over `id.timestamp.body`, a timestamp within 5 minutes of
 * now, and (when given) the message id Lethe expects. An `UnauthorizedError` says which check
 * failed and nothing of the body.
 */
export function verifySignature(signer: Webhook, body: string, headers: Readonly<Record<string, string | undefined>> | null, expectedId?: string): void {
  const lower = Object.fromEntries(Object.entries(headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
  const [id, timestamp, signature] = SIGNATURE_HEADERS.map((h) => lower[h]);
  if (!id || !timestamp || !signature) throw new UnauthorizedError(`not signed: ${SIGNATURE_HEADERS.join(', ')} are required`);
  try {
    signer.verify(body, { 'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': signature }, { jsonParse: false });
  } catch (cause) {
    const reason = (cause as Error).message;
    const stale = /too old|too new/.test(reason);
    throw new UnauthorizedError(stale ? 'the signature is more than 5 minutes old (or ahead): sign it anew' : 'the signature does not match', { cause });
  }
  if (expectedId !== undefined && id !== expectedId) throw new UnauthorizedError('signed for another task (webhook-id)');
}
