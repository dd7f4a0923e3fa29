import { SendMessageCommand } from '@aws-sdk/client-sqs';
import middy from '@middy/core';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { z } from 'zod';
import { extendDeadline } from '#core/deadlines';
import { ConflictError, NotFoundError, ValidationError } from '#core/errors';
import { DEFAULT_SHRED_AFTER_SECONDS, inRound, isFinalRequestStatus, RETRYABLE_REQUEST_STATUSES, RETRYABLE_TASK_STATUSES, type RequestRecord, zodIssues } from '#core/request';
import { AuditLog } from '../commons/audit-log.ts';
import { cancelRequest } from '../commons/cancel.ts';
import { sqs } from '../commons/clients.ts';
import { requireEnv } from '../commons/env.ts';
import { httpErrors, json, parseJsonBody } from '../commons/http.ts';
import { logger, observe } from '../commons/observability.ts';
import { RequestStore } from '../commons/request-store.ts';

const table = requireEnv('REQUESTS_TABLE');
const store = new RequestStore(table);
const audit = new AuditLog(table, requireEnv('AUDIT_BUCKET'));
const stateMachineArn = requireEnv('STATE_MACHINE_ARN');
const intakeQueueUrl = requireEnv('INTAKE_QUEUE_URL');
const shredAfterSeconds = Number(process.env['SHRED_AFTER_SECONDS'] ?? DEFAULT_SHRED_AFTER_SECONDS);

const VERBS = ['extend', 'cancel', 'retry'] as const;
type Verb = (typeof VERBS)[number];
const pathSchema = z.string().regex(/^[0-9a-fA-F-]{36}:(extend|cancel|retry)$/);
/** Why: told to the subject or kept for the record; never in the audit log (it is free text a person typed). */
const reasonSchema = z.strictObject({ reason: z.string().trim().min(1, 'is required: say why').max(1000) });
const retrySchema = z.strictObject({});

/**
 * Operators act on one request, `POST /v1/requests/{id}:<verb>`:
 * - `:extend` `{"reason"}`: the deadline, once, within its law's allowance, before it passes;
 * - `:cancel` `{"reason"}`: a request not yet final stops; tasks not yet started are cancelled,
 *   what systems already did stays done (the answer says which);
 * - `:retry` `{}`: a failed or partially failed request runs its failed tasks again, while its
 *   data key exists.
 * Each is conditional on the request as read (409 saying why not) and is an audit record.
 */
export const handler = middy<APIGatewayProxyEvent, APIGatewayProxyResult>()
  .use(observe())
  .use(httpErrors())
  .handler(async (event) => {
    const path = pathSchema.safeParse(event.pathParameters?.['id']);
    if (!path.success) throw new ValidationError([{ path: 'id', message: `must be <request id>:<${VERBS.join('|')}>` }]);
    const requestId = path.data.slice(0, 36).toLowerCase();
    const verb = path.data.slice(37) as Verb;
    const input = parseJsonBody(verb === 'retry' && !event.body ? '{}' : event.body, event.isBase64Encoded);
    const request = await store.get(requestId);
    if (!request) throw new NotFoundError(`request ${requestId} does not exist`);
    const actor = event.requestContext.identity.userArn ?? 'http';
    const at = new Date();
    if (verb === 'extend') return extend(request, parse(reasonSchema, input).reason, actor, at);
    if (verb === 'cancel') return cancel(request, parse(reasonSchema, input).reason, actor, at);
    parse(retrySchema, input);
    return retry(request, actor, at);
  });

function parse<T>(schema: z.ZodType<T>, input: unknown): T {
  const parsed = schema.safeParse(input);
  if (!parsed.success) throw new ValidationError(zodIssues(parsed.error));
  return parsed.data;
}

async function extend(request: RequestRecord, reason: string, actor: string, at: Date): Promise<APIGatewayProxyResult> {
  const { requestId } = request;
  if (isFinalRequestStatus(request.status)) throw new ConflictError(`request ${requestId} is ${request.status}: there is no deadline left to extend`);
  const extension = extendDeadline(request, at);
  if (!extension.ok) throw new ConflictError(extension.problem);
  const changed = await store.extendDeadline(requestId, { from: request.dueAt, to: extension.dueAt, at: at.toISOString(), reason });
  if (!changed) throw new ConflictError(`request ${requestId} changed meanwhile (extended, or final): read it again`);
  await audit.append(requestId, { eventId: 'request.extended', event: 'request.extended', at: at.toISOString(), actor, dueAt: extension.dueAt });
  logger.info('deadline extended', { requestId, dueAt: extension.dueAt });
  return json(200, { requestId, dueAt: extension.dueAt, extendedAt: at.toISOString(), law: extension.law });
}

async function cancel(request: RequestRecord, reason: string, actor: string, at: Date): Promise<APIGatewayProxyResult> {
  const { cancelledAt, cancelled, done } = await cancelRequest({ store, audit, stateMachineArn, shredAfterSeconds }, request, reason, actor, at);
  return json(200, { requestId: request.requestId, status: 'cancelled', cancelledAt, cancelledTasks: cancelled, alreadyDone: done });
}

async function retry(request: RequestRecord, actor: string, at: Date): Promise<APIGatewayProxyResult> {
  const { requestId } = request;
  if (!RETRYABLE_REQUEST_STATUSES.includes(request.status)) {
    throw new ConflictError(`request ${requestId} is ${request.status}: only a failed, partially failed or needs_review request can be retried`);
  }
  if (!request.wrappedDataKey) throw new ConflictError(`request ${requestId} is past its verification window: its identities were destroyed, so submit it again`);
  const failed = (await store.tasks(requestId)).filter((t) => RETRYABLE_TASK_STATUSES.includes(t.status));
  const round = (request.round ?? 0) + 1;
  if (!(await store.reopenFailed(requestId, round, failed, at.toISOString()))) {
    throw new ConflictError(`request ${requestId} changed meanwhile (retried, or its key destroyed): read it again`);
  }
  await audit.append(requestId, {
    eventId: inRound('request.retried', round),
    event: 'request.retried',
    at: at.toISOString(),
    actor,
    status: 'in_progress',
    tasks: failed.length,
  });
  // Through the intake buffer, as a new request goes: the starter names the execution by round.
  await sqs.send(new SendMessageCommand({ QueueUrl: intakeQueueUrl, MessageBody: JSON.stringify({ requestId, round }) }));
  logger.info('request retried', { requestId, round, tasks: failed.length });
  return json(202, { requestId, status: 'in_progress', round, retried: failed.map((t) => ({ system: t.system, action: t.action })) });
}
