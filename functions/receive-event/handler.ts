import middy from '@middy/core';
import type { EventBridgeEvent } from 'aws-lambda';
import { ValidationError } from '#core/errors';
import { AuditLog } from '../commons/audit-log.ts';
import { requireEnv } from '../commons/env.ts';
import { submitRequest, type IntakeAnswer } from '../commons/intake.ts';
import { keyServiceFromEnv } from '../commons/keys.ts';
import { logger, metrics, observe } from '../commons/observability.ts';
import { RequestStore } from '../commons/request-store.ts';
import { MetricUnit } from '@aws-lambda-powertools/metrics';

const table = requireEnv('REQUESTS_TABLE');
const deps = {
  store: new RequestStore(table),
  audit: new AuditLog(table, requireEnv('AUDIT_BUCKET')),
  keys: keyServiceFromEnv(),
  intakeQueueUrl: requireEnv('INTAKE_QUEUE_URL'),
};

/**
 * `Privacy Request Submitted` events from the bus. An invalid event cannot succeed on retry: it is
 * logged by field path (never by value), counted, and dropped; anything else is thrown, so that
 * EventBridge retries and, when it gives up, the rule's dead-letter queue keeps the event.
 */
export const handler = middy<EventBridgeEvent<'Privacy Request Submitted', unknown>, IntakeAnswer | undefined>()
  .use(observe())
  .handler(async (event) => {
    try {
      return await submitRequest(event.detail, `event:${event.source}`, deps);
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      logger.warn('rejected invalid event', { eventId: event.id, source: event.source, issues: error.issues.map((i) => i.path) });
      metrics.addMetric('InvalidEvents', MetricUnit.Count, 1);
      return undefined;
    }
  });
