import { Duration } from 'aws-cdk-lib';
import { Alarm, ComparisonOperator, TreatMissingData } from 'aws-cdk-lib/aws-cloudwatch';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

export interface SecureQueueProps {
  /** @default 5 */
  readonly maxReceiveCount?: number;
  /** @default 5 minutes */
  readonly visibilityTimeout?: Duration;
}

/**
 * A work queue with its dead-letter queue and an alarm on anything landing there: encrypted,
 * TLS only, and retention long enough to outlast every retry (14 days).
 */
export class SecureQueue extends Construct {
  readonly queue: Queue;
  readonly deadLetterQueue: Queue;
  readonly deadLetterAlarm: Alarm;

  constructor(scope: Construct, id: string, props: SecureQueueProps = {}) {
    super(scope, id);
    const dlq = new DeadLetterQueue(this, 'Dlq', { description: `work that Lethe gave up on in ${id}` });
    this.deadLetterQueue = dlq.queue;
    this.deadLetterAlarm = dlq.alarm;
    this.queue = new Queue(this, 'Queue', {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
      visibilityTimeout: props.visibilityTimeout ?? Duration.minutes(5),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: props.maxReceiveCount ?? 5 },
    });
  }
}

/** A dead-letter queue (14 days, encrypted, TLS only) with an alarm on its first message. */
export class DeadLetterQueue extends Construct {
  readonly queue: Queue;
  readonly alarm: Alarm;

  constructor(scope: Construct, id: string, props: { description: string }) {
    super(scope, id);
    this.queue = new Queue(this, 'Queue', {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    this.alarm = new Alarm(this, 'Alarm', {
      alarmDescription: `Messages in a dead-letter queue: ${props.description}`,
      metric: this.queue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1) }),
      threshold: 0,
      comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
  }
}
