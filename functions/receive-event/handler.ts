import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import middy from '@middy/core';
import type { EventBridgeEvent } from 'aws-lambda';
import { ValidationError } from '#core/errors';
import { sqs } from '../commons/clients.ts';
import { requireEnv } from '../commons/env.ts';
import { intakeDepsFromEnv, submitRequest, type IntakeAnswer } from '../commons/intake.ts';
import { logger, metrics, observe } from '../commons/observability.ts';

const deps = intakeDepsFromEnv();

const rejectedQueueUrl = requireEnv('REJECTED_EVENTS_QUEUE_URL');

/**
 * `Privacy Request Submitted` events from the bus. An invalid event cannot succeed on retry: its
 * rejection goes straight to the dead-letter queue (alarmed), as a record without the event's
 * detail (which may hold identifiers): event id, source, time and the paths of the bad fields, so
 * the producer can find and fix the event. Nothing else is written. Any other failure is thrown,
 * so that EventBridge retries.
 */
export const handler = middy<EventBridgeEvent<'Privacy Request Submitted', unknown>, IntakeAnswer | undefined>()
  .use(observe())
  .handler(async (event) => {
    try {
      return await submitRequest(event.detail, `event:${event.source}`, deps);
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      const paths = error.issues.map((i) => i.path || '(root)');
      await sqs.send(
        new SendMessageCommand({
          QueueUrl: rejectedQueueUrl,
          MessageBody: JSON.stringify({
            rejected: 'Privacy Request Submitted',
            eventId: event.id,
            source: event.source,
            time: event.time,
            invalidFields: error.issues,
          }),
          MessageAttributes: {
            rejectedBy: { DataType: 'String', StringValue: 'ValidationError' },
            invalidFields: { DataType: 'String', StringValue: paths.join(',').slice(0, 1024) },
          },
        }),
      );
      logger.warn('rejected invalid event', { eventId: event.id, source: event.source, invalidFields: paths });
      metrics.addMetric('InvalidEvents', MetricUnit.Count, 1);
      return undefined;
    }
  });
