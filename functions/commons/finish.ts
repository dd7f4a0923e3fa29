import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { taintedDatasets, type DatasetConfig } from '#core/config';
import { InvalidTransitionError } from '#core/errors';
import { DEFAULT_SHRED_AFTER_SECONDS, foundNothing, inRound, isFinalRequestStatus, isFinalTaskStatus, outcomeOf, RETRYABLE_REQUEST_STATUSES, type RequestRecord, type RequestStatus, type TaskRecord, type TaskStatus } from '#core/request';
import type { AuditLog } from './audit-log.ts';
import type { Publish } from './bus.ts';
import { logger, metrics } from './observability.ts';
import { SHRED_DUE, type RequestStore } from './request-store.ts';

const OUTCOME_METRIC = {
  completed: 'RequestsCompleted',
  partially_failed: 'RequestsPartiallyFailed',
  needs_review: 'RequestsNeedingReview',
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
  deps: FinishDeps,
  options: { actor: string; failureOf: (system: string, action: string) => OpenTaskFailure; force?: 'failed' },
): Promise<RequestStatus> {
  const { store, audit } = deps;
  const now = new Date().toISOString();
  const request = await store.mustGet(requestId);
  if (isFinalRequestStatus(request.status)) {
    logger.info('request already final', { requestId, status: request.status });
    return request.status;
  }
  const tasks = await store.tasks(requestId);
  const statuses: TaskStatus[] = [];
  const failed: TaskRecord[] = [];
  for (const task of tasks) {
    if (!isFinalTaskStatus(task.status)) {
      const failure = options.failureOf(task.system, task.action);
      if (await store.transitionTask(requestId, task.system, task.action, 'failed', { ...failure })) {
        await audit.append(requestId, {
          eventId: inRound(`task.failed:${task.system}:${task.action}`, task.round),
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
      failed.push(task);
    } else {
      statuses.push(task.status);
      // A task that needs review is announced as a failure is: a person must look.
      if ((task.status === 'failed' || task.status === 'needs_review') && (task.round ?? 0) === (request.round ?? 0)) failed.push(task);
    }
  }
  const outcome = options.force ?? outcomeOf(statuses);
  const nothingFound = outcome === 'completed' && foundNothing(tasks);
  // Announced before the request is final, so that a failed announcement is retried with it.
  if (deps.publish && failed.length > 0) {
    await deps.publish(
      TASK_FAILED_EVENT,
      failed.map((t): TaskFailedDetail => ({ requestId, type: request.type, regulation: request.regulation, system: t.system, action: t.action, errorName: t.errorName ?? options.failureOf(t.system, t.action).errorName, attempts: t.attempts, dueAt: request.dueAt })),
    );
  }
  if (deps.datasets) await taintDatasets(request, tasks, store, deps.datasets, now);
  try {
    // Its data key is destroyed once the verification window has passed (a scheduled job, through
    // the Shred index); one that may be retried keeps it until its deadline, if that is later.
    const windowEnds = new Date(Date.parse(now) + (deps.shredAfterSeconds ?? DEFAULT_SHRED_AFTER_SECONDS) * 1000).toISOString();
    const shredAt = RETRYABLE_REQUEST_STATUSES.includes(outcome) && request.dueAt > windowEnds ? request.dueAt : windowEnds;
    await store.transition(requestId, outcome, { completedAt: now, shred: SHRED_DUE, shredAt, ...(nothingFound && { nothingFound: true }) });
  } catch (error) {
    if (!(error instanceof InvalidTransitionError)) throw error;
    const current = (await store.mustGet(requestId)).status;
    logger.info('request already final', { requestId, status: current });
    return current;
  }
  await audit.append(requestId, {
    eventId: inRound(`request.${outcome}`, request.round),
    event: `request.${outcome}`,
    at: now,
    actor: options.actor,
    status: outcome,
    ...(nothingFound && { nothingFound: true }),
  });
  logger.info('request finished', { requestId, status: outcome, tasks: tasks.length, ...(nothingFound && { nothingFound }) });
  metrics.addMetric(OUTCOME_METRIC[outcome], MetricUnit.Count, 1);
  return outcome;
}

/** Announced for each task a request ends with failed: which system, what error class; never who. */
export const TASK_FAILED_EVENT = 'Privacy Task Failed';

export interface TaskFailedDetail {
  readonly requestId: string;
  readonly type: string;
  readonly regulation: string;
  readonly system: string;
  readonly action: string;
  readonly errorName: string;
  readonly attempts: number;
  readonly dueAt: string;
}

export interface FinishDeps {
  readonly store: RequestStore;
  readonly audit: AuditLog;
  /** Lethe's bus, for `Privacy Task Failed`. */
  readonly publish?: Publish;
  readonly datasets?: DatasetDeps;
  /** How long after it is final a request's data key is destroyed. @default DEFAULT_SHRED_AFTER_SECONDS */
  readonly shredAfterSeconds?: number;
}

/** The datasets of the data map, and where to say that one must be rebuilt. */
export interface DatasetDeps {
  readonly configs: readonly DatasetConfig[];
  /** Publish `Dataset Retrain Required` events (EventBridge in AWS and local mode). */
  readonly publish: (details: readonly DatasetRetrainRequired[]) => Promise<void>;
}

/** What a `Dataset Retrain Required` event says: which dataset, and how many subjects since its last rebuild; never who. */
export interface DatasetRetrainRequired {
  readonly dataset: string;
  readonly kind: string;
  readonly taintedSubjects: number;
  readonly taintedSince: string;
}

/**
 * A subject erased (or anonymized) from a system taints every dataset built from it, directly or
 * through other datasets: each is counted once per request, and a new taint is announced.
 */
async function taintDatasets(request: RequestRecord, tasks: readonly TaskRecord[], store: RequestStore, deps: DatasetDeps, at: string): Promise<void> {
  const { requestId } = request;
  if (request.type !== 'erasure' && request.type !== 'anonymize') return;
  const sources = tasks.filter((t) => t.status === 'succeeded' && (t.affected ?? 0) > 0 && (t.action === 'delete' || t.action === 'anonymize')).map((t) => t.system);
  const details: DatasetRetrainRequired[] = [];
  for (const name of taintedDatasets(deps.configs, sources)) {
    const { announce, subjects, since } = await store.taintDataset(name, requestId, at);
    if (announce) details.push({ dataset: name, kind: deps.configs.find((d) => d.name === name)!.kind, taintedSubjects: subjects, taintedSince: since });
  }
  if (details.length === 0) return;
  await deps.publish(details);
  for (const d of details) await store.markTaintAnnounced(d.dataset, requestId);
  logger.info('datasets tainted', { requestId, datasets: details.map((d) => d.dataset) });
  metrics.addMetric('DatasetsTainted', MetricUnit.Count, details.length);
}
