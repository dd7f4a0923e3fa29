import middy from '@middy/core';
import { z } from 'zod';
import { planStages, resolversOf, unreachableSystems } from '#core/plan';
import { inRound, isFinalRequestStatus, isFinalTaskStatus, type TaskKind } from '#core/request';
import { AuditLog } from '../commons/audit-log.ts';
import { requireEnv } from '../commons/env.ts';
import { logger, observe } from '../commons/observability.ts';
import { RequestStore } from '../commons/request-store.ts';
import { systemsFromEnv, type PlannedSystem } from '../commons/systems.ts';

const table = requireEnv('REQUESTS_TABLE');
const store = new RequestStore(table);
const audit = new AuditLog(table, requireEnv('AUDIT_BUCKET'));
const systems = systemsFromEnv<PlannedSystem>();
const dataMap = { version: 1 as const, systems: [...systems.values()].map((s) => ({ ...s, settings: undefined })) };

export interface PlannedTask {
  readonly requestId: string;
  readonly system: string;
  readonly action: TaskKind;
  readonly queueUrl: string;
  readonly heartbeatSeconds: number;
  readonly timeoutSeconds: number;
}

const inputSchema = z.object({ requestId: z.uuid() });

/**
 * First state of the saga: the request's stages (resolution of linked identities first, then the
 * actions in dependency order) as tasks, each created `pending` once (a retried Plan creates
 * nothing new). The output carries ids, system names and queue URLs only.
 */
export const handler = middy<unknown, { requestId: string; stages: { tasks: PlannedTask[] }[] }>()
  .use(observe())
  .handler(async (input) => {
    const { requestId } = inputSchema.parse(input);
    const request = await store.mustGet(requestId);
    if (isFinalRequestStatus(request.status)) {
      logger.info('request already final, nothing to plan', { requestId, status: request.status });
      return { requestId, stages: [] };
    }
    const given = [...new Set(request.pseudonyms.map((p) => p.type))];
    // A retried request runs again only what did not succeed: the tasks an operator reopened.
    const done = new Set(request.round ? (await store.tasks(requestId)).filter((t) => isFinalTaskStatus(t.status)).map((t) => `${t.system}#${t.action}`) : []);
    const planned = planStages(request.type, dataMap, given);
    const stages = planned.map((stage) => ({
      tasks: (stage.kind === 'resolve'
        ? stage.systems.map((system) => ({ system, action: 'resolve' as const }))
        : stage.tasks
      ).map(({ system, action }): PlannedTask => {
        const { queueUrl, heartbeatSeconds, timeoutSeconds } = systems.get(system)!;
        return { requestId, system, action, queueUrl, heartbeatSeconds, timeoutSeconds };
      }).filter((t) => !done.has(`${t.system}#${t.action}`)),
    })).filter((stage) => stage.tasks.length > 0);
    const now = new Date().toISOString();
    const tasks = stages.flatMap((s) => s.tasks);
    for (const { system, action } of tasks) {
      const connector = systems.get(system)?.connector ?? 'unknown';
      const needs = resolversOf(system, planned, dataMap, given);
      await store.putTaskIfAbsent({ requestId, system, action, connector, status: 'pending', attempts: 0, updatedAt: now, ...(needs.length > 0 && { needs }), ...(request.round && { round: request.round }) });
    }
    await store.transition(requestId, 'in_progress');
    await audit.append(requestId, {
      eventId: inRound('request.planned', request.round),
      event: 'request.planned',
      at: now,
      actor: 'lethe:plan',
      status: 'in_progress',
      tasks: tasks.length,
    });
    const unreachable = unreachableSystems(request.type, dataMap, given);
    logger.info('request planned', { requestId, stages: stages.length, tasks: tasks.length, unreachable });
    return { requestId, stages };
  });
