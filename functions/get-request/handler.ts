import middy from '@middy/core';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { isOverdue } from '#core/deadlines';
import { NotFoundError } from '#core/errors';
import { requireEnv } from '../commons/env.ts';
import { httpErrors, json, requestIdFrom } from '../commons/http.ts';
import { observe } from '../commons/observability.ts';
import { RequestStore } from '../commons/request-store.ts';

const store = new RequestStore(requireEnv('REQUESTS_TABLE'));

/** GET /v1/requests/{id}: where a request stands, per system. No identities, no pseudonyms. */
export const handler = middy<APIGatewayProxyEvent, APIGatewayProxyResult>()
  .use(observe())
  .use(httpErrors())
  .handler(async (event) => {
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
      systems: tasks.map((t) => ({
        system: t.system,
        action: t.action,
        status: t.status,
        affected: t.affected ?? null,
        ...(t.jobs ? { jobs: t.jobs } : {}),
        ...(t.errorName ? { error: { name: t.errorName, message: t.errorMessage ?? '' } } : {}),
      })),
    });
  });
