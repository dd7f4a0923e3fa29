import middy from '@middy/core';
import { z } from 'zod';
import type { RequestStatus } from '#core/request';
import { finishDepsFromEnv } from '../commons/datasets.ts';
import { finishRequest } from '../commons/finish.ts';
import { observe } from '../commons/observability.ts';

const deps = finishDepsFromEnv();

/** One entry per task from the saga's Map: the worker's output, or the error the saga caught. */
const taskResult = z.object({
  system: z.string(),
  action: z.string(),
  status: z.string().optional(),
  error: z.object({ Error: z.string().optional(), Cause: z.string().optional() }).optional(),
});
/** Results per stage, each a list of results per task. */
const inputSchema = z.object({ requestId: z.uuid(), results: z.array(z.array(taskResult)) });

/** What the saga's own errors mean, for the task's record. */
const CAUSES: Record<string, string> = {
  'States.Timeout': 'the connector did not answer in time',
  'States.HeartbeatTimeout': 'the worker stopped answering (no heartbeat), also when the task was sent again',
};

/**
 * Last state of the saga: tasks the workers never closed (a heartbeat or timeout the saga caught)
 * fail with the saga's error name, and the request takes its outcome.
 */
export const handler = middy<unknown, { requestId: string; status: RequestStatus }>()
  .use(observe())
  .handler(async (input) => {
    const { requestId, results } = inputSchema.parse(input);
    const caught = new Map(results.flat().filter((r) => r.error).map((r) => [`${r.system}#${r.action}`, r.error]));
    const status = await finishRequest(requestId, deps, {
      actor: 'lethe:finalize',
      failureOf: (system, action) => {
        const error = caught.get(`${system}#${action}`);
        const errorName = error?.Error ?? 'TaskNotCompleted';
        return {
          errorName,
          errorMessage: CAUSES[errorName] ?? 'the task did not complete',
        };
      },
    });
    return { requestId, status };
  });
