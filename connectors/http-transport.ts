import { setTimeout as sleep } from 'node:timers/promises';
import { ConnectorPermanentError, ConnectorRetryableError, ConnectorThrottledError } from '#core/errors';

export interface RetryPolicy {
  /** Longest total wait, inside one call, for 429 answers before handing the wait to the queue. */
  readonly maxThrottleWaitSeconds: number;
  /** Attempts at a 5xx, a 408 or a network failure inside one call. */
  readonly attempts: number;
  readonly timeoutMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { maxThrottleWaitSeconds: 30, attempts: 3, timeoutMs: 30_000 };

export interface Answer {
  readonly response: Response;
  /** The body as text ('' when empty). */
  readonly text: string;
}

/**
 * One HTTP call under Lethe's retry policy, for the `http` and `webhook` connectors. `send` makes
 * one attempt (with `signal` as its timeout). 429 answers are waited out as `Retry-After` says, up
 * to the policy's total, then handed to the queue as a `ConnectorThrottledError`; 5xx, 408 and
 * network failures are retried with backoff, then fail retryably with `describe`'s text. Any other
 * answer is returned for the caller to judge. `what` names the call (a template, never values).
 */
export async function callWithRetries(
  what: string,
  send: (signal: AbortSignal) => Promise<Response>,
  describe: (answer: Answer) => string,
  policy: RetryPolicy = DEFAULT_RETRY_POLICY,
): Promise<Answer> {
  let throttledFor = 0;
  let failures = 0;
  for (;;) {
    let response: Response;
    try {
      response = await send(AbortSignal.timeout(policy.timeoutMs));
    } catch (cause) {
      if (cause instanceof ConnectorPermanentError) throw cause;
      failures += 1;
      if (failures >= policy.attempts) throw new ConnectorRetryableError(`${what}: ${networkError(cause)}`, { cause });
      await sleep(250 * 2 ** failures);
      continue;
    }
    const answer = { response, text: await response.text() };
    if (response.status === 429) {
      const wait = retryAfterSeconds(response.headers.get('retry-after'));
      if (throttledFor + wait > policy.maxThrottleWaitSeconds) {
        throw new ConnectorThrottledError(`${what}: HTTP 429, asked to wait ${String(wait)} s`, wait);
      }
      throttledFor += wait;
      await sleep(wait * 1000);
      continue;
    }
    if (response.status >= 500 || response.status === 408) {
      failures += 1;
      if (failures >= policy.attempts) throw new ConnectorRetryableError(describe(answer));
      await sleep(250 * 2 ** failures);
      continue;
    }
    return answer;
  }
}

/** A body as JSON when it is JSON, else its text; undefined when empty. */
export function parseBody(text: string): unknown {
  if (text.length === 0) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** `Retry-After` as seconds (a number, or an HTTP date); 1 when absent or unreadable. */
export function retryAfterSeconds(header: string | null): number {
  if (!header) return 1;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, Math.ceil(seconds));
  const at = Date.parse(header);
  return Number.isNaN(at) ? 1 : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

/** A network failure by its code or class, never its text (which may quote a URL). */
export function networkError(cause: unknown): string {
  const e = cause as { name?: string; cause?: { code?: string } };
  return e.cause?.code ?? e.name ?? 'network error';
}

/** Remove every sensitive value (as given, lower-cased, URL-encoded) and anything shaped like an e-mail address; keep it short. */
export function scrub(text: string, sensitive: readonly string[]): string {
  let out = text;
  const forms = sensitive.flatMap((s) => [s, s.toLowerCase(), encodeURIComponent(s)]).filter((s) => s.length >= 3);
  for (const s of [...new Set(forms)].sort((a, b) => b.length - a.length)) out = out.split(s).join('[redacted]');
  out = out.replace(/[^\s@"'<>]+@[^\s@"'<>]+\.[a-z]{2,}/gi, '[redacted]');
  return out.length > 200 ? `${out.slice(0, 200)}…` : out;
}
