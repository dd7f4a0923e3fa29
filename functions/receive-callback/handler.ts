import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import middy from '@middy/core';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import type { Webhook } from 'standardwebhooks';
import { z } from 'zod';
import { secretSourceSchema } from '#connectors/secrets';
import { callbackSchema, deliveryId, signerOf, verifySignature, type Callback } from '#connectors/webhook/protocol';
import { ConflictError, NotFoundError, ValidationError } from '#core/errors';
import { ACTIONS, zodIssues, type JobReport, type TaskRecord } from '#core/request';
import { connectorClients, sqs } from '../commons/clients.ts';
import { requireEnv } from '../commons/env.ts';
import { httpErrors, json } from '../commons/http.ts';
import { logger, metrics, observe } from '../commons/observability.ts';
import { RequestStore } from '../commons/request-store.ts';

const store = new RequestStore(requireEnv('REQUESTS_TABLE'));
/** Each webhook system's signing secret (by reference) and queue. */
const webhooks = z
  .record(z.string(), z.object({ secret: secretSourceSchema, queueUrl: z.string() }))
  .parse(JSON.parse(requireEnv('LETHE_WEBHOOKS')));
const signers = new Map<string, Promise<Webhook>>();

const pathSchema = z.object({ requestId: z.uuid(), system: z.string().min(1), action: z.enum(ACTIONS) });

/** How long the worker is given to settle the task before the poller asks it again. */
const POLL_GRACE_SECONDS = 300;

/**
 * POST /v1/callbacks/{requestId}/{system}/{action}: a webhook service reports the outcome of a task
 * it accepted. Not IAM-authorized (the service holds no AWS credentials): the Standard Webhooks
 * signature under the system's secret, no more than 5 minutes old and made for this task's
 * delivery id, is checked before anything else is read. The first report stands; the same report
 * again is answered as recorded, another one is a 409. The system's worker then settles the task
 * (a poll message with ids and the token only).
 */
export const handler = middy<APIGatewayProxyEvent, APIGatewayProxyResult>()
  .use(observe())
  .use(httpErrors())
  .handler(async (event) => {
    const path = pathSchema.safeParse(event.pathParameters ?? {});
    if (!path.success) throw new ValidationError(zodIssues(path.error));
    const { requestId, system, action } = path.data;
    const webhook = webhooks[system];
    if (!webhook) throw new NotFoundError(`no webhook system ${system}`);

    const body = event.isBase64Encoded ? Buffer.from(event.body ?? '', 'base64').toString('utf8') : (event.body ?? '');
    verifySignature(await signer(system, webhook.secret), body, event.headers, deliveryId(requestId, system, action));

    const callback = parseCallback(body);
    const task = await store.task(requestId, system, action);
    if (!task) throw new NotFoundError(`no ${action} task of ${system} in request ${requestId}`);
    const report: JobReport = {
      job: deliveryId(requestId, system, action),
      status: callback.status,
      ...(callback.status === 'done' ? { affected: callback.affected } : { error: callback.error }),
      at: new Date().toISOString(),
    };
    const nextPollAt = new Date(Date.now() + POLL_GRACE_SECONDS * 1000).toISOString();
    if (!(await store.recordCallback(task, report, nextPollAt))) {
      return settledAlready(await store.task(requestId, system, action), report);
    }
    logger.info('callback recorded', { requestId, system, action, status: callback.status });
    metrics.addMetric('CallbacksReceived', MetricUnit.Count, 1);
    // A task still running has no token yet: its worker settles it once it records the wait.
    const taskToken = task.taskToken ?? (await store.task(requestId, system, action))?.taskToken;
    if (taskToken) {
      const message = { requestId, system, action, taskToken, poll: true };
      await sqs.send(new SendMessageCommand({ QueueUrl: webhook.queueUrl, MessageBody: JSON.stringify(message) }));
    }
    return json(202, { status: 'recorded' });
  });

function signer(system: string, secret: z.infer<typeof secretSourceSchema>): Promise<Webhook> {
  let s = signers.get(system);
  if (!s) {
    s = signerOf(system, secret, connectorClients);
    s.catch(() => signers.delete(system));
    signers.set(system, s);
  }
  return s;
}

function parseCallback(body: string): Callback {
  let input: unknown;
  try {
    input = JSON.parse(body) as unknown;
  } catch {
    throw new ValidationError([{ path: '', message: 'the body is not valid JSON' }]);
  }
  const parsed = callbackSchema.safeParse(input);
  if (!parsed.success) throw new ValidationError(zodIssues(parsed.error));
  return parsed.data;
}

/** A callback for a task that has one already, or no longer waits: the same report is fine, another is a conflict. */
function settledAlready(task: TaskRecord | undefined, report: JobReport): APIGatewayProxyResult {
  const earlier = task?.callback;
  if (earlier && earlier.status === report.status && earlier.affected === report.affected && earlier.error === report.error) {
    return json(200, { status: 'recorded' });
  }
  throw new ConflictError(
    earlier ? `a ${earlier.status} report was recorded for this task already` : `the task is ${task?.status ?? 'gone'}: it is not waiting for a callback`,
  );
}
