import middy from '@middy/core';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { httpErrors, json, parseJsonBody } from '../commons/http.ts';
import { intakeDepsFromEnv, submitRequest } from '../commons/intake.ts';
import { observe } from '../commons/observability.ts';

const deps = intakeDepsFromEnv();

/** POST /v1/requests (IAM-authorized): 202 with the request id, status and due date. */
export const handler = middy<APIGatewayProxyEvent, APIGatewayProxyResult>()
  .use(observe())
  .use(httpErrors())
  .handler(async (event) => {
    const actor = event.requestContext.identity.userArn ?? 'http';
    const answer = await submitRequest(parseJsonBody(event.body, event.isBase64Encoded), actor, deps);
    return json(202, { requestId: answer.requestId, status: answer.status, dueAt: answer.dueAt });
  });
