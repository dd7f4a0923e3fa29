import { MetricUnit } from '@aws-lambda-powertools/metrics';
import middy from '@middy/core';
import { dueReminder, type ReminderKind } from '#core/deadlines';
import { LETHE_SOURCE, publisherTo } from '../commons/bus.ts';
import { requireEnv } from '../commons/env.ts';
import { logger, metrics, observe } from '../commons/observability.ts';
import { RequestStore } from '../commons/request-store.ts';

/** The events reminders are, as rules match them. No identity, no pseudonym: who asked is not in them. */
export const REMINDER_EVENTS = { source: LETHE_SOURCE, approaching: 'Privacy Request Deadline Approaching', overdue: 'Privacy Request Overdue' } as const;

export interface ReminderDetail {
  readonly requestId: string;
  readonly type: string;
  readonly regulation: string;
  readonly status: string;
  readonly receivedAt: string;
  readonly dueAt: string;
  readonly reminder: ReminderKind;
}

/**
 * Every open request whose next reminder has come (half the time to its deadline, four fifths,
 * the deadline) is announced once: `Privacy Request Deadline Approaching`, then `Privacy Request
 * Overdue`. Announced first, recorded after, so a crash in between announces twice rather than
 * never. Returns how many were announced.
 */
export async function remindOfDeadlines(store: RequestStore, publish: (detailType: string, detail: ReminderDetail) => Promise<void>, now = new Date()): Promise<number> {
  let sent = 0;
  for (const request of await store.openRequests()) {
    const kind = dueReminder(request, now);
    if (!kind) continue;
    const { requestId, type, regulation, status, receivedAt, dueAt } = request;
    await publish(kind === 'due' ? REMINDER_EVENTS.overdue : REMINDER_EVENTS.approaching, { requestId, type, regulation, status, receivedAt, dueAt, reminder: kind });
    if (await store.markReminded(requestId, kind, request.reminded)) sent += 1;
  }
  return sent;
}

const store = new RequestStore(requireEnv('REQUESTS_TABLE'));
const publish = publisherTo(requireEnv('EVENT_BUS_NAME'));

/** Runs on a schedule (every 15 minutes in AWS): deadline reminders and overdue alerts on the Lethe bus. */
export const handler = middy<unknown, { sent: number }>()
  .use(observe())
  .handler(async () => {
    const sent = await remindOfDeadlines(store, (detailType, detail) => publish(detailType, [detail]));
    if (sent > 0) logger.info('deadline reminders sent', { sent });
    metrics.addMetric('DeadlineRemindersSent', MetricUnit.Count, sent);
    return { sent };
  });
