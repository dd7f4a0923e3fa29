import { SendTaskHeartbeatCommand } from '@aws-sdk/client-sfn';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import middy from '@middy/core';
import { inRound, type TaskRecord } from '#core/request';
import { AuditLog } from '../commons/audit-log.ts';
import { sfn, sqs } from '../commons/clients.ts';
import { requireEnv } from '../commons/env.ts';
import { errorFields, logger, metrics, observe } from '../commons/observability.ts';
import { RequestStore } from '../commons/request-store.ts';
import { sweep } from '../commons/sweep.ts';

const table = requireEnv('REQUESTS_TABLE');
const store = new RequestStore(table);
const audit = new AuditLog(table, requireEnv('AUDIT_BUCKET'));
/** Each system's queue and heartbeat timeout. */
const systems = new Map(Object.entries(JSON.parse(requireEnv('LETHE_SYSTEM_QUEUES')) as Record<string, { queueUrl: string; heartbeatSeconds: number }>));

/** How long a poll message is given before the poller would send another one. */
const POLL_GRACE_SECONDS = 300;

const inSeconds = (seconds: number) => new Date(Date.now() + seconds * 1000).toISOString();

/** Tasks checked at once, and the time kept back so a run ends before the next one starts. */
const WIDTH = 16;
const RESERVE_MS = 15_000;

/**
 * Runs on a schedule. For every task waiting on a vendor that is due, page after page until none
 * is left (or the run's time is nearly spent, which it says, the next run going on from there):
 * keeps the saga's task token alive with a heartbeat, and sends the system's worker a poll message
 * (ids and the token only), which asks the vendor and completes, fails or reschedules the task. A
 * token the saga no longer holds (the task timed out there) fails the task.
 */
export const handler = middy<unknown, { due: number; unfinished: boolean }>()
  .use(observe())
  .handler(async (_event, context) => {
    const now = new Date().toISOString();
    const { done, unfinished } = await sweep(store.dueWaitingTasks(now), (task) => check(task, now), { width: WIDTH, timeLeftMs: () => context.getRemainingTimeInMillis(), reserveMs: RESERVE_MS });
    if (unfinished) {
      logger.warn('waiting tasks left for the next run: this run is out of time', { checked: done });
      metrics.addMetric('WaitingSweepUnfinished', MetricUnit.Count, 1);
    }
    if (done > 0) logger.info('waiting tasks checked', { due: done });
    return { due: done, unfinished };
  });

async function check(task: TaskRecord, now: string): Promise<void> {
  const system = systems.get(task.system);
  if (!system || !task.taskToken) {
    logger.warn('waiting task of an unknown system or without a token', { requestId: task.requestId, system: task.system });
    return;
  }
  let nextHeartbeatAt = task.nextHeartbeatAt ?? now;
  let nextPollAt = task.nextPollAt ?? now;
  if (nextHeartbeatAt <= now) {
    try {
      await sfn.send(new SendTaskHeartbeatCommand({ taskToken: task.taskToken }));
    } catch (error) {
      const name = (error as { name?: string }).name;
      if (name === 'TaskTimedOut' || name === 'InvalidToken' || name === 'TaskDoesNotExist') return timedOut(task, now);
      logger.warn('heartbeat failed', { requestId: task.requestId, system: task.system, ...errorFields(error) });
    }
    nextHeartbeatAt = inSeconds(Math.max(5, Math.floor(system.heartbeatSeconds / 2)));
  }
  if (nextPollAt <= now) {
    nextPollAt = inSeconds(POLL_GRACE_SECONDS);
    // Scheduled first: should the send fail, the task comes back after the grace period.
    if (await store.scheduleWaiting(task, { nextPollAt, nextHeartbeatAt })) {
      const body = { requestId: task.requestId, system: task.system, action: task.action, taskToken: task.taskToken, poll: true };
      await sqs.send(new SendMessageCommand({ QueueUrl: system.queueUrl, MessageBody: JSON.stringify(body) }));
      metrics.addMetric('VendorPolls', MetricUnit.Count, 1);
    }
  } else {
    await store.scheduleWaiting(task, { nextPollAt, nextHeartbeatAt });
  }
}

/** The saga stopped waiting for the task: it fails, audited. */
async function timedOut(task: TaskRecord, now: string): Promise<void> {
  const moved = await store.transitionTask(task.requestId, task.system, task.action, 'failed', {
    errorName: 'TaskTimedOut',
    errorMessage: `${task.system}: the saga stopped waiting for ${task.jobs ?? 'the vendor'}`,
  });
  if (!moved) return;
  await audit.append(task.requestId, {
    eventId: inRound(`task.failed:${task.system}:${task.action}`, task.round),
    event: 'task.failed',
    at: now,
    actor: 'lethe:poller',
    system: task.system,
    action: task.action,
    status: 'failed',
    errorName: 'TaskTimedOut',
  });
}
