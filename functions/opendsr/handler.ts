import middy from '@middy/core';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { ConflictError, IdempotencyConflictError, NotFoundError, ValidationError } from '#core/errors';
import { discovery, OPENDSR_CHANGED, OPENDSR_VERSION, openDsrError, openDsrRequestSchema, toSubmission } from '#core/opendsr';
import { DEFAULT_SHRED_AFTER_SECONDS, zodIssues } from '#core/request';
import { publisherTo } from '../commons/bus.ts';
import { cancelRequest } from '../commons/cancel.ts';
import { requireEnv } from '../commons/env.ts';
import { intakeDepsFromEnv, submitRequest } from '../commons/intake.ts';
import { logger, observe } from '../commons/observability.ts';
import { controllerIdOf, currentStatus, openDsrSignerFromEnv, OpenDsrStore, statusBody } from '../commons/opendsr.ts';

const deps = intakeDepsFromEnv();
const table = requireEnv('REQUESTS_TABLE');
const records = new OpenDsrStore(table);
const apiUrl = requireEnv('API_URL').replace(/\/?$/, '/');
const signer = openDsrSignerFromEnv();
const cancelDeps = {
  store: deps.store,
  audit: deps.audit,
  stateMachineArn: requireEnv('STATE_MACHINE_ARN'),
  shredAfterSeconds: Number(process.env['SHRED_AFTER_SECONDS'] ?? DEFAULT_SHRED_AFTER_SECONDS),
};
const publish = publisherTo(requireEnv('EVENT_BUS_NAME'));

/** An answer as OpenDSR wants it: JSON, signed, with the processor's domain. */
async function signed(statusCode: number, body: object): Promise<APIGatewayProxyResult> {
  const text = JSON.stringify(body);
  return { statusCode, headers: { 'content-type': 'application/json', ...(await signer.headers(text)) }, body: text };
}
const error = (statusCode: number, message: string, issues: readonly { path: string; message: string }[] = []): APIGatewayProxyResult => ({
  statusCode,
  headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
  body: JSON.stringify(openDsrError(statusCode, message, issues)),
});

/**
 * OpenDSR 2.0, the processor's endpoints, under `/opendsr/v2/`:
 * - `GET discovery`, `GET cert.pem`, `GET status`: public, for controllers to find out what Lethe
 *   takes and to check its signatures;
 * - `POST requests`: an erasure, which becomes a Lethe request with the controller's id;
 * - `GET requests/{id}` and `DELETE requests/{id}` (while it is pending): the controller's own only.
 * Every answer of the last three is signed (`X-OpenDSR-Signature`); errors take OpenDSR's shape
 * and never carry an identity.
 */
export const handler = middy<APIGatewayProxyEvent, APIGatewayProxyResult>()
  .use(observe())
  .handler(async (event) => {
    try {
      return await route(event);
    } catch (e) {
      if (e instanceof ValidationError) return error(400, 'the request is not valid', e.issues);
      if (e instanceof IdempotencyConflictError) return error(400, 'a subject request with this id exists already, with other contents');
      if (e instanceof NotFoundError) return error(404, e.message);
      // A cancel that met a change made meanwhile (the saga began): say so, as for any cancel refused.
      if (e instanceof ConflictError) return error(400, e.message);
      logger.error('OpenDSR: failed', { error: (e as Error).name });
      return error(500, 'internal error');
    }
  });

async function route(event: APIGatewayProxyEvent): Promise<APIGatewayProxyResult> {
  const resource = event.resource.replace(/^\/opendsr\/v2/, '');
  const method = event.httpMethod;
  if (resource === '/discovery') return { statusCode: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify(discovery(`${apiUrl}opendsr/v2/cert.pem`)) };
  if (resource === '/cert.pem') return { statusCode: 200, headers: { 'content-type': 'application/x-pem-file' }, body: await signer.certificate() };
  if (resource === '/status') return signed(200, { api_version: OPENDSR_VERSION, status: 'ok' });
  const controllerId = controllerIdOf(event.requestContext.identity.userArn);
  if (resource === '/requests' && method === 'POST') return create(event, controllerId);
  const id = (event.pathParameters?.['id'] ?? '').toLowerCase();
  const record = await records.get(id);
  // Another controller's request is not there, for this one.
  if (!record || record.controllerId !== controllerId) throw new NotFoundError(`no subject request ${id} from this controller`);
  const request = await deps.store.mustGet(id);
  if (method === 'GET') return signed(200, statusBody(record, request));
  const status = currentStatus(record, request);
  if (status !== 'pending') return error(400, `only a pending request can be cancelled; this one is ${status}`);
  await cancelRequest(cancelDeps, request, 'cancelled by the controller (OpenDSR)', event.requestContext.identity.userArn ?? controllerId, new Date());
  await publish(OPENDSR_CHANGED, [{ requestId: id }]);
  return signed(202, { controller_id: controllerId, received_time: request.receivedAt, subject_request_id: id, api_version: OPENDSR_VERSION });
}

async function create(event: APIGatewayProxyEvent, controllerId: string): Promise<APIGatewayProxyResult> {
  const raw = event.body === null ? '' : event.isBase64Encoded ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
  let input: unknown;
  try {
    input = JSON.parse(raw) as unknown;
  } catch {
    throw new ValidationError([{ path: '', message: 'the body is not valid JSON' }]);
  }
  const parsed = openDsrRequestSchema.safeParse(input);
  if (!parsed.success) throw new ValidationError(zodIssues(parsed.error));
  const odsr = parsed.data;
  const answer = await submitRequest(toSubmission(odsr), event.requestContext.identity.userArn ?? controllerId, deps).catch((e: unknown) => {
    // Intake names Lethe's fields; the controller sent OpenDSR's.
    if (e instanceof ValidationError) throw new ValidationError(e.issues.map((i) => ({ ...i, path: i.path.replace(/^identities\.(\d+)\.value$/, 'subject_identities.$1.identity_value') })));
    throw e;
  });
  const fresh = await records.create({
    requestId: answer.requestId,
    controllerId,
    callbackUrls: odsr.status_callback_urls,
    submittedTime: odsr.submitted_time,
    apiVersion: odsr.api_version ?? OPENDSR_VERSION,
    lastStatus: 'pending',
  });
  if (!fresh && (await records.get(answer.requestId))?.controllerId !== controllerId) throw new IdempotencyConflictError(`subject request ${answer.requestId} exists`);
  const request = await deps.store.mustGet(answer.requestId);
  logger.info('OpenDSR request received', { requestId: answer.requestId, created: answer.created, callbacks: odsr.status_callback_urls.length });
  return signed(201, {
    controller_id: controllerId,
    expected_completion_time: request.dueAt,
    received_time: request.receivedAt,
    // The whole request as sent: the controller's proof of what was received (it must not keep it; nor does Lethe).
    encoded_request: Buffer.from(raw).toString('base64'),
    subject_request_id: answer.requestId,
    api_version: OPENDSR_VERSION,
  });
}
