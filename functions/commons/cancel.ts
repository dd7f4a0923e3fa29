import { StopExecutionCommand } from '@aws-sdk/client-sfn';
import { ConflictError, InvalidTransitionError } from '#core/errors';
import { executionArnOf, executionName, inRound, isFinalRequestStatus, type RequestRecord, type TaskRecord } from '#core/request';
import type { AuditLog } from './audit-log.ts';
import { sfn } from './clients.ts';
import { logger } from './observability.ts';
import { SHRED_DUE, type RequestStore } from './request-store.ts';

export interface CancelDeps {
  readonly store: RequestStore;
  readonly audit: AuditLog;
  readonly stateMachineArn: string;
  readonly shredAfterSeconds: number;
}

export interface Cancelled {
  readonly cancelledAt: string;
  /** Tasks stopped before they started. */
  readonly cancelled: { system: string; action: string }[];
  /** Tasks that had done their work already: it stays done. */
  readonly done: { system: string; action: string }[];
}

/**
 * Cancel a request not yet final: the request first (a Plan still to come finds it final), then its
 * tasks not yet started (a worker finds them final); a task already running finishes, and its
 * status says so. Each step is an audit record; the saga's execution is stopped. A request final
 * already, or made final meanwhile, is a ConflictError.
 */
export async function cancelRequest(deps: CancelDeps, request: RequestRecord, reason: string, actor: string, at: Date): Promise<Cancelled> {
  const { requestId } = request;
  if (isFinalRequestStatus(request.status)) throw new ConflictError(`request ${requestId} is ${request.status} already: only a request not yet final can be cancelled`);
  const now = at.toISOString();
  const shredAt = new Date(at.getTime() + deps.shredAfterSeconds * 1000).toISOString();
  const moved = await deps.store.transition(requestId, 'cancelled', { completedAt: now, shred: SHRED_DUE, shredAt, cancelReason: reason }).catch((error: unknown) => {
    if (error instanceof InvalidTransitionError) return false;
    throw error;
  });
  if (!moved) throw new ConflictError(`request ${requestId} changed meanwhile (final now): read it again`);
  await deps.audit.append(requestId, { eventId: 'request.cancelled', event: 'request.cancelled', at: now, actor, status: 'cancelled' });
  const cancelled: { system: string; action: string }[] = [];
  const done: { system: string; action: string }[] = [];
  // A task a worker takes meanwhile runs on (it moved past `pending`): it is not cancelled.
  const cancelTask = (task: TaskRecord) =>
    deps.store.transitionTask(requestId, task.system, task.action, 'cancelled').catch((error: unknown) => {
      if (error instanceof InvalidTransitionError) return false;
      throw error;
    });
  for (const task of await deps.store.tasks(requestId)) {
    if ((task.status === 'pending' || task.status === 'dispatched') && (await cancelTask(task))) {
      cancelled.push({ system: task.system, action: task.action });
      await deps.audit.append(requestId, {
        eventId: inRound(`task.cancelled:${task.system}:${task.action}`, task.round),
        event: 'task.cancelled',
        at: now,
        actor,
        system: task.system,
        action: task.action,
        status: 'cancelled',
      });
    } else if (task.status === 'succeeded') {
      done.push({ system: task.system, action: task.action });
    }
  }
  await stopExecution(deps.stateMachineArn, executionName(requestId, request.round));
  logger.info('request cancelled', { requestId, cancelled: cancelled.length, done: done.length });
  return { cancelledAt: now, cancelled, done };
}

async function stopExecution(stateMachineArn: string, name: string): Promise<void> {
  try {
    await sfn.send(new StopExecutionCommand({ executionArn: executionArnOf(stateMachineArn, name), error: 'RequestCancelled', cause: 'the request was cancelled' }));
  } catch (error) {
    // Not started yet (still in the intake buffer: its Plan finds it cancelled), or over already.
    if ((error as { name?: string }).name !== 'ExecutionDoesNotExist') throw error;
  }
}
