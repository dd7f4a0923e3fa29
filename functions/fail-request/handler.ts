import middy from '@middy/core';
import { z } from 'zod';
import type { EventBridgeEvent } from 'aws-lambda';
import { finishDepsFromEnv } from '../commons/datasets.ts';
import { finishRequest } from '../commons/finish.ts';
import { logger, observe } from '../commons/observability.ts';

const deps = finishDepsFromEnv();

const detailSchema = z.object({
  executionArn: z.string(),
  name: z.string(),
  status: z.enum(['FAILED', 'TIMED_OUT', 'ABORTED']),
});

/**
 * The catch-all: a saga execution that failed, timed out or was aborted leaves its request
 * `failed` (executions are named by request id), with every open task failed, and audited.
 */
export const handler = middy<EventBridgeEvent<'Step Functions Execution Status Change', unknown>, void>()
  .use(observe())
  .handler(async (event) => {
    const detail = detailSchema.parse(event.detail);
    // Executions are named by request id; a retry's `<request id>-r<round>`.
    const requestId = detail.name.slice(0, 36);
    const errorName = `Execution${detail.status}`;
    logger.warn('saga ended abnormally', { requestId, status: detail.status });
    if (!(await deps.store.get(requestId))) {
      logger.warn('no request for execution', { requestId });
      return;
    }
    await finishRequest(requestId, deps, {
      actor: 'lethe:catch-all',
      force: 'failed',
      failureOf: () => ({ errorName, errorMessage: `the saga execution ended ${detail.status}` }),
    });
  });
