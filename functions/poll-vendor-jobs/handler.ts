import { SendTaskHeartbeatCommand } from '@aws-sdk/client-sfn';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import middy from '@middy/core';
import { inRound } from '#core/request';
import { AuditLog } from '../commons/audit-log.ts';
import { sfn, sqs } from '../commons/clients.ts';
import { requireEnv } from '../commons/env.ts';
import { errorFields, logger, metrics, observe } from '../commons/observability.ts';
import { RequestStore } from '../commons/request-store.ts';

const table = requireEnv('REQUESTS_TABLE');
const store = new RequestStore(table);
const audit = new AuditLog(table, requireEnv('AUDIT_BUCKET'));
/** Each system's queue and heartbeat timeout. */
const systems = new Map(Object.entries(JSON.parse(requireEnv('LETHE_SYSTEM_QUEUES')) as Record<string, { queueUrl: string; heartbeatSeconds: number }>));

/** How long a poll message is given before the poller would send another one. */
const POLL_GRACE_SECONDS = 300;

const inSeconds = (seconds: number) => new Date(Date.now() + seconds * 1000).toISOString();

/**
 * Runs on a schedule. For every task waiting on a vendor that is due: keeps the saga's task token
 * alive with a heartbeat, and sends the system's worker a poll message (ids and the token only),
 * which asks the vendor and completes, fails or reschedules the task. A token the saga no longer
 * holds (the task timed out there) fails the task.
 */
export const handler = middy<unknown, { due: number }>()
  .use(observe())
  .handler(async () => {
    const now = new Date().toISOString();
    const due = await store.dueWaitingTasks(now);
    for (const task of due) {
      const system = systems.get(task.system);
      if (!system || !task.taskToken) {
        logger.warn('waiting task of an unknown system or without a token', { requestId: task.requestId, system: task.system });
        continue;
      }
      let nextHeartbeatAt = task.nextHeartbeatAt ?? now;
      let nextPollAt = task.nextPollAt ?? now;
      if (nextHeartbeatAt <= now) {
        try {
          await sfn.send(new SendTaskHeartbeatCommand({ taskToken: task.taskToken }));
        } catch (error) {
          const name = (error as { name?: string }).name;
          if (name === 'TaskTimedOut' || name === 'InvalidToken' || name === 'TaskDoesNotExist') {
            const moved = await store.transitionTask(task.requestId, task.system, task.action, 'failed', {
              errorName: 'TaskTimedOut',
              errorMessage: `${task.system}: the saga stopped waiting for ${task.jobs ?? 'the vendor'}`,
            });
            if (moved) {
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
            continue;
          }
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
    if (due.length > 0) logger.info('waiting tasks checked', { due: due.length });
    return { due: due.length };
  });
