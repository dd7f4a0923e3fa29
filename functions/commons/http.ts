import type { MiddlewareObj } from '@middy/core';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { z } from 'zod';
import { ConflictError, IdempotencyConflictError, NotFoundError, NotReadyError, UnauthorizedError, ValidationError } from '#core/errors';
import { errorFields, logger } from './observability.ts';

export function json(statusCode: number, body: unknown): APIGatewayProxyResult {
  return { statusCode, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
}

/** Typed errors to HTTP answers. Details go to the caller only for input errors; nothing else leaks. */
export function httpErrors(): MiddlewareObj<unknown, APIGatewayProxyResult> {
  return {
    onError: (request) => {
      const error = request.error;
      if (error instanceof ValidationError) {
        request.response = json(400, { error: 'ValidationError', message: error.message, issues: error.issues });
      } else if (error instanceof NotFoundError) {
        request.response = json(404, { error: 'NotFound', message: error.message });
      } else if (error instanceof IdempotencyConflictError) {
        request.response = json(409, { error: 'IdempotencyConflict', message: error.message });
      } else if (error instanceof ConflictError) {
        request.response = json(409, { error: 'Conflict', message: error.message });
      } else if (error instanceof NotReadyError) {
        const answer = json(503, { error: 'NotReady', message: error.message });
        request.response = { ...answer, headers: { ...answer.headers, 'retry-after': String(error.retryAfterSeconds) } };
      } else if (error instanceof UnauthorizedError) {
        request.response = json(401, { error: 'Unauthorized', message: error.message });
      } else {
        logger.error('request failed', errorFields(error));
        request.response = json(500, { error: 'InternalError', message: 'internal error' });
      }
    },
  };
}

/** Parse a JSON body, or fail as a 400 that says so. */
export function parseJsonBody(body: string | null | undefined, isBase64Encoded = false): unknown {
  if (!body) throw new ValidationError([{ path: '', message: 'a JSON body is required' }]);
  try {
    return JSON.parse(isBase64Encoded ? Buffer.from(body, 'base64').toString('utf8') : body) as unknown;
  } catch {
    throw new ValidationError([{ path: '', message: 'the body is not valid JSON' }]);
  }
}

const idSchema = z.uuid();

/** The request id of a `/v1/requests/{id}…` path, lower-cased; a 400 naming `id` when it is not one. */
export function requestIdFrom(event: Pick<APIGatewayProxyEvent, 'pathParameters'>): string {
  const id = idSchema.safeParse(event.pathParameters?.['id']);
  if (!id.success) throw new ValidationError([{ path: 'id', message: 'must be a request id (UUID)' }]);
  return id.data.toLowerCase();
}
