import { StartExecutionCommand } from '@aws-sdk/client-sfn';
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import middy from '@middy/core';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { z } from 'zod';
import { executionName } from '#core/request';
import { sfn } from '../commons/clients.ts';
import { requireEnv } from '../commons/env.ts';
import { logger, observe } from '../commons/observability.ts';

const stateMachineArn = requireEnv('STATE_MACHINE_ARN');
/** A new request, or an operator's retry of one (`round` 1, 2, …). */
const bodySchema = z.object({ requestId: z.uuid(), round: z.number().int().min(1).optional() });
const processor = new BatchProcessor(EventType.SQS);

/**
 * Drains the intake buffer: one Standard execution per request (and per retry), named by the
 * request id (`<id>-r<round>` for a retry), so a redelivered message finds the execution already
 * there and does nothing more.
 */
async function start(record: SQSRecord): Promise<void> {
  const { requestId, round } = bodySchema.parse(JSON.parse(record.body));
  try {
    await sfn.send(new StartExecutionCommand({ stateMachineArn, name: executionName(requestId, round), input: JSON.stringify({ requestId }) }));
    logger.info('saga started', { requestId });
  } catch (error) {
    if ((error as { name?: string }).name !== 'ExecutionAlreadyExists') throw error;
    logger.info('saga already started', { requestId });
  }
}

export const handler = middy<SQSEvent, SQSBatchResponse>()
  .use(observe())
  .handler((event, context) => processPartialResponse(event, start, processor, { context, throwOnFullBatchFailure: false }));
