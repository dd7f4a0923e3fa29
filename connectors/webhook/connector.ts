import type { Webhook } from 'standardwebhooks';
import { ConnectorPermanentError, UnauthorizedError } from '#core/errors';
import type { Identity } from '#core/identity';
import type { Connector, ConnectorCommand, ConnectorResult } from '#core/ports';
import type { Action } from '#core/request';
import { callWithRetries, DEFAULT_RETRY_POLICY, parseBody, type RetryPolicy } from '../http-transport.ts';
import { answerSchema, deliveryId, signatureHeaders, verifySignature, type Answer, type Delivery } from './protocol.ts';
import type { WebhookSettings } from './settings.ts';

/** How often a task waiting on a callback is checked against its deadline. */
const CHECK_EVERY_SECONDS = 900;

/**
 * A company's own service, reached with a signed POST per task (see protocol.ts). The service
 * answers `done` (with a count), `failed` (with a code), or `accepted`: then the task waits, and
 * the service's signed callback completes it. Only signed, fresh answers are believed: an answer
 * that is not is a permanent failure, since retrying cannot make it signed.
 */
export class WebhookConnector implements Connector {
  readonly kind = 'webhook';
  readonly #system: string;
  readonly #settings: WebhookSettings;
  readonly #signer: Webhook;
  readonly #deadlineSeconds: number;
  readonly #policy: RetryPolicy;

  /** `deadlineSeconds`: how long an accepted task waits for its callback. */
  constructor(system: string, settings: WebhookSettings, signer: Webhook, deadlineSeconds: number, policy: Partial<RetryPolicy> = {}) {
    this.#system = system;
    this.#settings = settings;
    this.#signer = signer;
    this.#deadlineSeconds = deadlineSeconds;
    this.#policy = { ...DEFAULT_RETRY_POLICY, timeoutMs: settings.callTimeoutSeconds * 1000, ...policy };
  }

  describe(): { actions: readonly Action[]; counts: boolean } {
    return { actions: this.#settings.handles, counts: false };
  }

  resolve(): Promise<Identity[]> {
    return Promise.resolve([]);
  }

  async run(command: ConnectorCommand): Promise<ConnectorResult> {
    const { action, requestId } = command;
    if (!this.#settings.handles.includes(action)) throw new ConnectorPermanentError(`${this.#system}: the service does not handle ${action}`);
    // A lift undoes a restriction recorded for this service, and nothing else.
    if (action === 'lift' && !(command.restrictions ?? []).some((r) => (r[this.#system]?.length ?? 0) > 0)) return { affected: 0 };
    if (action === 'restrict') await command.recordRestriction?.({ [this.#system]: ['subject'] });
    const id = deliveryId(requestId, this.#system, action);
    const delivery: Delivery = {
      type: 'lethe.task',
      version: 1,
      id,
      requestId,
      system: this.#system,
      action,
      regulation: command.regulation ?? 'gdpr',
      identities: command.identities,
      ...(command.callbackUrl && { callbackUrl: command.callbackUrl }),
      deadline: new Date(Date.now() + this.#deadlineSeconds * 1000).toISOString(),
    };
    const answer = await this.#post(id, JSON.stringify(delivery));
    switch (answer.status) {
      case 'done':
        return { affected: answer.affected };
      case 'failed':
        throw new ConnectorPermanentError(`${this.#system}: the service failed the ${action}: ${answer.error}`);
      case 'accepted':
        if (!command.callbackUrl) throw new ConnectorPermanentError(`${this.#system}: the service accepted the ${action} for later, but this run has no callback URL`);
        return {
          affected: 0,
          pending: [
            { vendor: 'webhook', id, vars: {}, pollEverySeconds: Math.min(CHECK_EVERY_SECONDS, this.#deadlineSeconds), deadlineSeconds: this.#deadlineSeconds, awaiting: 'its callback' },
          ],
        };
    }
  }

  /** The service's signed answer is its account of what remains: nothing Lethe can count itself. */
  verify(): Promise<{ remaining: number }> {
    return Promise.resolve({ remaining: 0 });
  }

  /** POST a delivery, signed anew at each attempt; return the service's answer if it is signed for this delivery. */
  async #post(id: string, body: string): Promise<Answer> {
    const what = `${this.#system} webhook`;
    const { response, text } = await callWithRetries(
      what,
      (signal) =>
        fetch(this.#settings.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/json', 'user-agent': 'lethe', ...signatureHeaders(this.#signer, id, body) },
          body,
          signal,
          redirect: 'error',
        }),
      ({ response: r }) => `${what}: HTTP ${String(r.status)}`,
      this.#policy,
    );
    const status = `HTTP ${String(response.status)}`;
    try {
      verifySignature(this.#signer, text, Object.fromEntries(response.headers), id);
    } catch (error) {
      if (!(error instanceof UnauthorizedError)) throw error;
      // An unsigned refusal is still a refusal: say what it was, but believe nothing in it.
      throw new ConnectorPermanentError(response.ok ? `${what}: the answer is not believed: ${error.message}` : `${what}: ${status}`, { cause: error });
    }
    const parsed = answerSchema.safeParse(parseBody(text));
    if (!parsed.success) {
      const fields = parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ');
      throw new ConnectorPermanentError(`${what}: ${status}, not a Lethe answer: ${fields}`);
    }
    if (!response.ok && parsed.data.status !== 'failed') throw new ConnectorPermanentError(`${what}: ${status} with status ${parsed.data.status}`);
    return parsed.data;
  }
}
