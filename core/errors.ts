/**
 * Typed errors. Every error Lethe raises is either retryable (throttling, timeouts, 5xx: try again
 * later) or permanent (bad input, bad config, 4xx, not authorized: retrying cannot help). The
 * orchestrator's retry policy keys on the error name, so names are stable API.
 *
 * Messages never carry raw identifiers: callers put ids, pseudonyms, counts and field paths in them.
 */
export abstract class LetheError extends Error {
  abstract readonly retryable: boolean;

  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A failure that may succeed if tried again later. */
export class RetryableError extends LetheError {
  readonly retryable = true;
}

/** A failure that will fail again the same way: do not retry. */
export class PermanentError extends LetheError {
  readonly retryable = false;
}

export interface FieldIssue {
  /** Dotted path of the offending field, e.g. `identities.0.value`. */
  readonly path: string;
  readonly message: string;
}

/** Input that does not satisfy the contract. Names every bad field at once. */
export class ValidationError extends PermanentError {
  readonly issues: readonly FieldIssue[];

  constructor(issues: readonly FieldIssue[], options?: ErrorOptions) {
    super(issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; '), options);
    this.issues = issues;
  }
}

/** The data map (lethe.config.yaml) is invalid. */
export class ConfigError extends ValidationError {}

/** The same request id arrived with a different body. */
export class IdempotencyConflictError extends PermanentError {}

/** The caller could not be authenticated: a missing, wrong or stale signature. Says no more than that. */
export class UnauthorizedError extends PermanentError {}

/** The record is not in a state that accepts this (a callback for a task no longer waiting). */
export class ConflictError extends PermanentError {}

/** A record that should exist does not. */
export class NotFoundError extends PermanentError {}

/** A state change that the lifecycle forbids (backwards, or out of a terminal state). */
export class InvalidTransitionError extends PermanentError {}

/** What is asked for is not there yet, and will be (a receipt whose last audit record the log has yet to sign). */
export class NotReadyError extends RetryableError {
  readonly retryAfterSeconds: number;

  constructor(message: string, retryAfterSeconds: number, options?: ErrorOptions) {
    super(message, options);
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** A connector's target answered in a way that may pass (throttled, timed out, 5xx). */
export class ConnectorRetryableError extends RetryableError {}

/** The target asked to be left alone for a while (HTTP 429 with `Retry-After`): not a failure of the task. */
export class ConnectorThrottledError extends ConnectorRetryableError {
  readonly retryAfterSeconds: number;

  constructor(message: string, retryAfterSeconds: number, options?: ErrorOptions) {
    super(message, options);
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** Another attempt at the same task holds it (a duplicate delivery): this one comes back when its lease ends. */
export class TaskBusyError extends RetryableError {}

/** A connector's target refused in a way that will not pass (not authorized, missing table, 4xx). */
export class ConnectorPermanentError extends PermanentError {}

/**
 * A lookup found more of the subject's records than it may act on, or records it cannot tell
 * apart from someone else's: nothing was done, and a person has to look.
 */
export class AmbiguousTargetsError extends ConnectorPermanentError {}

/** A task's system is reached by identities that a failed resolver was to provide. */
export class IdentitiesUnresolvedError extends PermanentError {}

export function isRetryable(error: unknown): boolean {
  if (error instanceof LetheError) return error.retryable;
  return false;
}

/**
 * How long to wait before retrying a retryable failure: exponential from 2 s, kept under half the
 * heartbeat, so a task waiting between attempts never looks like a dead worker to the saga.
 */
export function retryDelaySeconds(attempts: number, heartbeatSeconds: number): number {
  return Math.max(1, Math.min(2 ** attempts, Math.floor(heartbeatSeconds / 2), 900));
}
