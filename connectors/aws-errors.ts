import { ConnectorPermanentError, ConnectorRetryableError, PermanentError, RetryableError } from '#core/errors';

const RETRYABLE_NAMES = new Set([
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
  'ThrottlingException',
  'Throttling',
  'TooManyRequestsException',
  'InternalServerError',
  'InternalFailure',
  'ServiceUnavailable',
  'TransactionConflictException',
  'TimeoutError',
  'RequestTimeout',
]);

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ENOTFOUND']);

/**
 * Map an AWS SDK error to a connector error. The message names the target and the error class,
 * never the values that were sent.
 */
export function classifyAwsError(target: string, error: unknown): ConnectorRetryableError | ConnectorPermanentError {
  const message = describeAwsError(target, error);
  return isRetryableAwsError(error)
    ? new ConnectorRetryableError(message, { cause: error })
    : new ConnectorPermanentError(message, { cause: error });
}

/** The same for Lethe's own stores (its tables): retryable or permanent, naming the target and the error class. */
export function classifyStoreError(target: string, error: unknown): RetryableError | PermanentError {
  const message = describeAwsError(target, error);
  return isRetryableAwsError(error) ? new RetryableError(message, { cause: error }) : new PermanentError(message, { cause: error });
}

type AwsLikeError = { name?: string; code?: string; $retryable?: unknown; $metadata?: { httpStatusCode?: number } };

/** Throttling, timeouts, 5xx and network failures may pass; anything else will not. */
export function isRetryableAwsError(error: unknown): boolean {
  const e = error as AwsLikeError;
  const status = e.$metadata?.httpStatusCode;
  return (
    RETRYABLE_NAMES.has(e.name ?? '') ||
    e.$retryable !== undefined ||
    (status !== undefined && status >= 500) ||
    (e.code !== undefined && NETWORK_CODES.has(e.code))
  );
}

/** `<target>: <ErrorName> (HTTP n)`: what may be logged about an AWS error. */
export function describeAwsError(target: string, error: unknown): string {
  const e = error as AwsLikeError;
  const status = e.$metadata?.httpStatusCode;
  return `${target}: ${e.name ?? 'Error'}${status ? ` (HTTP ${String(status)})` : ''}`;
}
