import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { InvalidTransitionError } from '#core/errors';
import { isFinalTaskStatus, outcomeOf, type RequestStatus, type TaskStatus } from '#core/request';
import type { AuditLog } from './audit-log.ts';
import { logger, metrics } from './observability.ts';
import type { RequestStore } from './request-store.ts';

const OUTCOME_METRIC = {
  completed: 'RequestsCompleted',
  partially_failed: 'RequestsPartiallyFailed',
  failed: 'RequestsFailed',
} as const;

export interface OpenTaskFailure {
  readonly errorName: string;
  readonly errorMessage: string;
}

/**
 * Close a request: every task not yet final is failed with the reason the saga gives for it,
 * then the request takes its outcome (or `failed` when forced). Idempotent: each state change is
 * conditional and audited once. A request already final keeps its status.
 */
export async function finishRequest(
  requestId: string,
  deps: { store: RequestStore; audit: AuditLog },
  options: { actor: string; failureOf: (system: string, action: string) => OpenTaskFailure; force?: 'failed' },
): Promise<RequestStatus> {
  const { store, audit } = deps;
  const now = new Date().toISOString();
  const tasks = await store.tasks(requestId);
  const statuses: TaskStatus[] = [];
  for (const task of tasks) {
    if (!isFinalTaskStatus(task.status)) {
      const failure = options.failureOf(task.system, task.action);
      if (await store.transitionTask(requestId, task.system, task.action, 'failed', { ...failure })) {
        await audit.append(requestId, {
          eventId: `task.failed:${task.system}:${task.action}`,
          event: 'task.failed',
          at: now,
          actor: options.actor,
          system: task.system,
          action: task.action,
          status: 'failed',
          errorName: failure.errorName,
        });
      }
      statuses.push('failed');
    } else {
      statuses.push(task.status);
    }
  }
  const outcome = options.force ?? outcomeOf(statuses);
  try {
    await store.transition(requestId, outcome, { completedAt: now });
  } catch (error) {
    if (!(error instanceof InvalidTransitionError)) throw error;
    const current = (await store.mustGet(requestId)).status;
    logger.info('request already final', { requestId, status: current });
    return current;
  }
  await audit.append(requestId, { eventId: `request.${outcome}`, event: `request.${outcome}`, at: now, actor: options.actor, status: outcome });
  logger.info('request finished', { requestId, status: outcome, tasks: tasks.length });
  metrics.addMetric(OUTCOME_METRIC[outcome], MetricUnit.Count, 1);
  return outcome;
}
