import middy from '@middy/core';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { AuditLog } from '../commons/audit-log.ts';
import { requireEnv } from '../commons/env.ts';
import { httpErrors, json, parseJsonBody } from '../commons/http.ts';
import { submitRequest } from '../commons/intake.ts';
import { keyServiceFromEnv } from '../commons/keys.ts';
import { observe } from '../commons/observability.ts';
import { RequestStore } from '../commons/request-store.ts';

const table = requireEnv('REQUESTS_TABLE');
const deps = {
  store: new RequestStore(table),
  audit: new AuditLog(table, requireEnv('AUDIT_BUCKET')),
  keys: keyServiceFromEnv(),
  intakeQueueUrl: requireEnv('INTAKE_QUEUE_URL'),
};

/** POST /v1/requests (IAM-authorized): 202 with the request id, status and due date. */
export const handler = middy<APIGatewayProxyEvent, APIGatewayProxyResult>()
  .use(observe())
  .use(httpErrors())
  .handler(async (event) => {
    const actor = event.requestContext.identity.userArn ?? 'http';
    const answer = await submitRequest(parseJsonBody(event.body, event.isBase64Encoded), actor, deps);
    return json(202, { requestId: answer.requestId, status: answer.status, dueAt: answer.dueAt });
  });
