import middy from '@middy/core';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { isOverdue } from '#core/deadlines';
import { NotFoundError, ValidationError } from '#core/errors';
import { REGULATIONS, REQUEST_STATUSES, REQUEST_TYPES, zodIssues } from '#core/request';
import { nearMissTotal } from '#core/near-miss';
import { z } from 'zod';
import { requireEnv } from '../commons/env.ts';
import { httpErrors, json, requestIdFrom } from '../commons/http.ts';
import { observe } from '../commons/observability.ts';
import { RequestStore } from '../commons/request-store.ts';

const store = new RequestStore(requireEnv('REQUESTS_TABLE'));

const flag = z.enum(['true', 'false']).transform((v) => v === 'true');
const listQuerySchema = z.strictObject({
  status: z.enum(REQUEST_STATUSES).optional(),
  type: z.enum(REQUEST_TYPES).optional(),
  regulation: z.enum(REGULATIONS).optional(),
  overdue: flag.optional(),
  since: z.iso.datetime({ offset: true }).transform((d) => new Date(d).toISOString()).optional(),
  until: z.iso.datetime({ offset: true }).transform((d) => new Date(d).toISOString()).optional(),
  limit: z.coerce.number().int().min(1).max(100).default(50),
  cursor: z.string().max(2048).optional(),
});

/**
 * GET /v1/requests/{id}: where a request stands, per system. GET /v1/requests: requests by
 * status, type, regulation, overdue and time of receipt, newest first (the overdue: most overdue
 * first), 50 a page by default, `cursor` for the next. No identities, no pseudonyms.
 */
export const handler = middy<APIGatewayProxyEvent, APIGatewayProxyResult>()
  .use(observe())
  .use(httpErrors())
  .handler(async (event) => {
    if (event.resource === '/v1/requests') {
      const query = listQuerySchema.safeParse(event.queryStringParameters ?? {});
      if (!query.success) throw new ValidationError(zodIssues(query.error));
      return json(200, await store.list(query.data));
    }
    const requestId = requestIdFrom(event);
    const request = await store.get(requestId);
    if (!request) throw new NotFoundError(`request ${requestId} does not exist`);
    const tasks = await store.tasks(request.requestId);
    return json(200, {
      requestId: request.requestId,
      type: request.type,
      regulation: request.regulation,
      status: request.status,
      receivedAt: request.receivedAt,
      dueAt: request.dueAt,
      overdue: isOverdue(request, new Date()),
      ...(request.acknowledgeBy && { acknowledgeBy: request.acknowledgeBy }),
      ...(request.extendedAt && { extendedAt: request.extendedAt }),
      completedAt: request.completedAt ?? null,
      ...(request.nothingFound && { nothingFound: true }),
      systems: tasks.map((t) => ({
        system: t.system,
        action: t.action,
        status: t.status,
        affected: t.affected ?? null,
        ...(t.remaining !== undefined && { remaining: t.remaining }),
        ...(t.nearMisses && nearMissTotal(t.nearMisses) > 0 && { nearMisses: t.nearMisses }),
        attempts: t.attempts,
        updatedAt: t.updatedAt,
        ...(t.jobs ? { jobs: t.jobs } : {}),
        ...(t.errorName ? { error: { name: t.errorName, message: t.errorMessage ?? '' } } : {}),
      })),
    });
  });
