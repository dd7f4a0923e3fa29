import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { Tracer } from '@aws-lambda-powertools/tracer';
import { captureLambdaHandler } from '@aws-lambda-powertools/tracer/middleware';
import type { MiddlewareObj } from '@middy/core';

/**
 * One logger, metrics and tracer per function (service name and namespace come from the
 * POWERTOOLS_* variables the stack sets). Log ids, pseudonyms, counts and error classes only:
 * never an event, a body or an identity. `logEvent` stays off.
 */
export const logger = new Logger();
export const metrics = new Metrics();
export const tracer = new Tracer({ captureHTTPsRequests: false });

/** The middlewares every handler starts with. */
export function observe(): MiddlewareObj[] {
  return [
    injectLambdaContext(logger, { logEvent: false, resetKeys: true }),
    logMetrics(metrics, { captureColdStartMetric: true }),
    captureLambdaHandler(tracer, { captureResponse: false }),
  ];
}

/** What may be logged about an error: its class and, for Lethe's own errors, its message. */
export function errorFields(error: unknown): { errorName: string; errorMessage?: string } {
  if (error instanceof Error) {
    const own = 'retryable' in error;
    return own ? { errorName: error.name, errorMessage: error.message } : { errorName: error.name };
  }
  return { errorName: typeof error };
}
