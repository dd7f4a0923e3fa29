import middy from '@middy/core';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { z } from 'zod';
import { extendDeadline } from '#core/deadlines';
import { ConflictError, NotFoundError, ValidationError } from '#core/errors';
import { isFinalRequestStatus, zodIssues } from '#core/request';
import { AuditLog } from '../commons/audit-log.ts';
import { requireEnv } from '../commons/env.ts';
import { httpErrors, json, parseJsonBody } from '../commons/http.ts';
import { logger, observe } from '../commons/observability.ts';
import { RequestStore } from '../commons/request-store.ts';

const table = requireEnv('REQUESTS_TABLE');
const store = new RequestStore(table);
const audit = new AuditLog(table, requireEnv('AUDIT_BUCKET'));

const pathSchema = z.string().regex(/^[0-9a-fA-F-]{36}:extend$/, 'must be <request id>:extend');
const extendSchema = z.strictObject({
  /** Why more time is needed: told to the subject, kept with the request, never in the audit log (it is free text). */
  reason: z.string().trim().min(1, 'is required: the law asks for the reason').max(1000),
});

/**
 * `POST /v1/requests/{id}:extend` with `{"reason": "…"}`: the operator extends a request's
 * deadline, once, within its law's allowance, before the deadline passes (409 saying why not).
 * The extension is an audit record with the new deadline.
 */
export const handler = middy<APIGatewayProxyEvent, APIGatewayProxyResult>()
  .use(observe())
  .use(httpErrors())
  .handler(async (event) => {
    const path = pathSchema.safeParse(event.pathParameters?.['id']);
    if (!path.success) throw new ValidationError([{ path: 'id', message: 'must be <request id>:extend' }]);
    const requestId = path.data.slice(0, 36).toLowerCase();
    const body = extendSchema.safeParse(parseJsonBody(event.body, event.isBase64Encoded));
    if (!body.success) throw new ValidationError(zodIssues(body.error));
    const request = await store.get(requestId);
    if (!request) throw new NotFoundError(`request ${requestId} does not exist`);
    if (isFinalRequestStatus(request.status)) throw new ConflictError(`request ${requestId} is ${request.status}: there is no deadline left to extend`);
    const at = new Date();
    const extension = extendDeadline(request, at);
    if (!extension.ok) throw new ConflictError(extension.problem);
    const changed = await store.extendDeadline(requestId, { from: request.dueAt, to: extension.dueAt, at: at.toISOString(), reason: body.data.reason });
    if (!changed) throw new ConflictError(`request ${requestId} changed meanwhile (extended, or final): read it again`);
    await audit.append(requestId, {
      eventId: 'request.extended',
      event: 'request.extended',
      at: at.toISOString(),
      actor: event.requestContext.identity.userArn ?? 'http',
      dueAt: extension.dueAt,
    });
    logger.info('deadline extended', { requestId, dueAt: extension.dueAt });
    return json(200, { requestId, dueAt: extension.dueAt, extendedAt: at.toISOString(), law: extension.law });
  });
