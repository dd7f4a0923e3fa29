import { StartExecutionCommand } from '@aws-sdk/client-sfn';
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import middy from '@middy/core';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { z } from 'zod';
import { sfn } from '../commons/clients.ts';
import { requireEnv } from '../commons/env.ts';
import { logger, observe } from '../commons/observability.ts';

const stateMachineArn = requireEnv('STATE_MACHINE_ARN');
const bodySchema = z.object({ requestId: z.uuid() });
const processor = new BatchProcessor(EventType.SQS);

/**
 * Drains the intake buffer: one Standard execution per request, named by the request id, so a
 * redelivered message finds the execution already there and does nothing more.
 */
async function start(record: SQSRecord): Promise<void> {
  const { requestId } = bodySchema.parse(JSON.parse(record.body));
  try {
    await sfn.send(new StartExecutionCommand({ stateMachineArn, name: requestId, input: JSON.stringify({ requestId }) }));
    logger.info('saga started', { requestId });
  } catch (error) {
    if ((error as { name?: string }).name !== 'ExecutionAlreadyExists') throw error;
    logger.info('saga already started', { requestId });
  }
}

export const handler = middy<SQSEvent, SQSBatchResponse>()
  .use(observe())
  .handler((event, context) => processPartialResponse(event, start, processor, { context, throwOnFullBatchFailure: false }));
