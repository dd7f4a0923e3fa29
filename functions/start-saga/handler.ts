import { StartExecutionCommand } from '@aws-sdk/client-sfn';
import { ChangeMessageVisibilityCommand } from '@aws-sdk/client-sqs';
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import middy from '@middy/core';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { RetryableError } from '#core/errors';
import { executionName } from '#core/request';
import { sfn, sqs } from '../commons/clients.ts';
import { requireEnv } from '../commons/env.ts';
import { errorFields, logger, metrics, observe } from '../commons/observability.ts';

const stateMachineArn = requireEnv('STATE_MACHINE_ARN');
const queueUrl = requireEnv('INTAKE_QUEUE_URL');
/** This environment's share of the stack's starts a second. */
const startsPerSecond = Number(requireEnv('STARTS_PER_SECOND'));
/** A new request, or an operator's retry of one (`round` 1, 2, …). */
const bodySchema = z.object({ requestId: z.uuid(), round: z.number().int().min(1).optional() });
const processor = new BatchProcessor(EventType.SQS);

/** Step Functions is refusing starts for now (its StartExecution bucket is empty, or too many executions are open). */
export class StartThrottledError extends RetryableError {}
const THROTTLED = new Set(['ThrottlingException', 'TooManyRequestsException', 'ExecutionLimitExceeded']);

/**
 * Starts at a steady rate: each start takes the next slot, `1 / startsPerSecond` after the one
 * before. After a throttled start the interval doubles, and halves again with each start that
 * passes, down to the configured one (additive recovery would be slower than the burst is long).
 */
const pace = {
  interval: 1000 / startsPerSecond,
  next: 0,
  async slot(): Promise<void> {
    const now = Date.now();
    const at = Math.max(now, this.next);
    this.next = at + this.interval;
    if (at > now) await sleep(at - now);
  },
  throttled(): void {
    this.interval = Math.min(this.interval * 2, 2000);
  },
  passed(): void {
    this.interval = Math.max(1000 / startsPerSecond, this.interval / 2);
  },
};

/**
 * Drains the intake buffer: one Standard execution per request (and per retry), named by the
 * request id (`<id>-r<round>` for a retry), so a redelivered message finds the execution already
 * there and does nothing more. A burst waits in the buffer: starts go out at the configured rate,
 * and a throttled one returns to the buffer after a backoff that grows with its receives.
 */
async function start(record: SQSRecord): Promise<void> {
  const { requestId, round } = bodySchema.parse(JSON.parse(record.body));
  await pace.slot();
  try {
    await sfn.send(new StartExecutionCommand({ stateMachineArn, name: executionName(requestId, round), input: JSON.stringify({ requestId }) }));
    pace.passed();
    logger.info('saga started', { requestId });
  } catch (error) {
    const name = (error as { name?: string }).name ?? '';
    if (name === 'ExecutionAlreadyExists') return logger.info('saga already started', { requestId });
    if (!THROTTLED.has(name)) throw error;
    pace.throttled();
    const receives = Number(record.attributes.ApproximateReceiveCount);
    // 2, 4, 8 … up to 60 s, with jitter, so a burst's retries spread out instead of returning together.
    const delay = Math.ceil(Math.min(60, 2 ** receives) * (0.5 + Math.random() / 2));
    metrics.addMetric('StartsThrottled', MetricUnit.Count, 1);
    logger.warn('saga start throttled; back to the buffer', { requestId, receives, delay, ...errorFields(error) });
    await sqs
      .send(new ChangeMessageVisibilityCommand({ QueueUrl: queueUrl, ReceiptHandle: record.receiptHandle, VisibilityTimeout: delay }))
      .catch((cause: unknown) => logger.warn('could not set the backoff', errorFields(cause)));
    throw new StartThrottledError(`start of ${requestId} throttled (${name})`, { cause: error });
  }
}

export const handler = middy<SQSEvent, SQSBatchResponse>()
  .use(observe())
  .handler((event, context) => processPartialResponse(event, start, processor, { context, throwOnFullBatchFailure: false }));
