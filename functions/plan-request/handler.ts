import middy from '@middy/core';
import { z } from 'zod';
import { isFinalRequestStatus, type Action } from '#core/request';
import { AuditLog } from '../commons/audit-log.ts';
import { requireEnv } from '../commons/env.ts';
import { logger, observe } from '../commons/observability.ts';
import { RequestStore } from '../commons/request-store.ts';
import { systemsFromEnv, type PlannedSystem } from '../commons/systems.ts';

const table = requireEnv('REQUESTS_TABLE');
const store = new RequestStore(table);
const audit = new AuditLog(table, requireEnv('AUDIT_BUCKET'));
const systems = systemsFromEnv<PlannedSystem>();

export interface PlannedTask {
  readonly requestId: string;
  readonly system: string;
  readonly action: Action;
  readonly queueUrl: string;
  readonly heartbeatSeconds: number;
  readonly timeoutSeconds: number;
}

/**
 * First state of the saga: one task for every system whose data map entry has an action for the
 * request's type. Tasks are created `pending` once (a retried Plan creates nothing new).
 * The output carries ids, system names and queue URLs only.
 */
const inputSchema = z.object({ requestId: z.uuid() });

export const handler = middy<unknown, { requestId: string; tasks: PlannedTask[] }>()
  .use(observe())
  .handler(async (input) => {
    const { requestId } = inputSchema.parse(input);
    const request = await store.mustGet(requestId);
    if (isFinalRequestStatus(request.status)) {
      logger.info('request already final, nothing to plan', { requestId, status: request.status });
      return { requestId, tasks: [] };
    }
    const tasks: PlannedTask[] = [];
    for (const system of systems.values()) {
      const action = system.actions[request.type];
      if (!action) continue;
      const { name, queueUrl, heartbeatSeconds, timeoutSeconds } = system;
      tasks.push({ requestId, system: name, action, queueUrl, heartbeatSeconds, timeoutSeconds });
    }
    const now = new Date().toISOString();
    for (const { system, action } of tasks) {
      const connector = systems.get(system)?.connector ?? 'unknown';
      await store.putTaskIfAbsent({ requestId, system, action, connector, status: 'pending', attempts: 0, updatedAt: now });
    }
    await store.transition(requestId, 'in_progress');
    await audit.append(requestId, {
      eventId: 'request.planned',
      event: 'request.planned',
      at: now,
      actor: 'lethe:plan',
      status: 'in_progress',
      tasks: tasks.length,
    });
    logger.info('request planned', { requestId, tasks: tasks.length });
    return { requestId, tasks };
  });
