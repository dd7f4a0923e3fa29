import { Duration, Stack } from 'aws-cdk-lib';
import {
  Alarm,
  ComparisonOperator,
  Dashboard,
  GraphWidget,
  MathExpression,
  type IMetric,
  SingleValueWidget,
  TextWidget,
  TreatMissingData,
} from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import { type IEventBus, Rule } from 'aws-cdk-lib/aws-events';
import { SnsTopic } from 'aws-cdk-lib/aws-events-targets';
import { ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Key } from 'aws-cdk-lib/aws-kms';
import { Topic } from 'aws-cdk-lib/aws-sns';
import type { Queue } from 'aws-cdk-lib/aws-sqs';
import type { StateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import type { RestApi } from 'aws-cdk-lib/aws-apigateway';
import { Construct } from 'constructs';

/** What Lethe announces on its bus that someone should act on. */
export const ALERT_EVENTS = ['Privacy Request Overdue', 'Privacy Request Deadline Approaching', 'Privacy Task Failed'] as const;

export interface AlertsProps {
  readonly bus: IEventBus;
  /** Where events the topic did not take go. */
  readonly deadLetterQueue: Queue;
  /** Queues work waits in: an alarm when their oldest message is older than `stuckAfter`. */
  readonly workQueues: readonly { readonly name: string; readonly queue: Queue }[];
  readonly deadLetterQueues: readonly { readonly name: string; readonly queue: Queue }[];
  readonly stateMachine: StateMachine;
  readonly api: RestApi;
  /** @default 15 minutes */
  readonly stuckAfter?: Duration;
}

/** A Lethe metric summed over every function that emits it (Powertools adds a `service` dimension). */
const lethe = (name: string, label: string) =>
  new MathExpression({ expression: `SUM(SEARCH('{Lethe,service} MetricName="${name}"', 'Sum', 300))`, label, period: Duration.minutes(5) });

/**
 * Where people hear of trouble: one SNS topic (encrypted, its key usable by EventBridge and
 * CloudWatch) that receives the overdue, approaching-deadline and task-failed events from the bus
 * and every alarm of the stack; alarms on the age of the oldest message in each dead-letter queue
 * and each work queue; and a CloudWatch dashboard of requests, tasks, queues and the API.
 * Subscribe an address or a chat integration to `topic`.
 */
export class Alerts extends Construct {
  readonly topic: Topic;
  readonly dashboard: Dashboard;

  constructor(scope: Construct, id: string, props: AlertsProps) {
    super(scope, id);
    const key = new Key(this, 'Key', { description: 'Lethe: encrypts the alert topic', enableKeyRotation: true });
    for (const service of ['events.amazonaws.com', 'cloudwatch.amazonaws.com']) {
      key.grant(new ServicePrincipal(service), 'kms:Decrypt', 'kms:GenerateDataKey*');
    }
    this.topic = new Topic(this, 'Topic', { displayName: 'Lethe alerts', masterKey: key, enforceSSL: true });
    new Rule(this, 'ToTopic', {
      eventBus: props.bus,
      description: 'Lethe: overdue requests, approaching deadlines and failed tasks to the alert topic',
      eventPattern: { source: ['lethe'], detailType: [...ALERT_EVENTS] },
      targets: [new SnsTopic(this.topic, { deadLetterQueue: props.deadLetterQueue, retryAttempts: 8, maxEventAge: Duration.hours(24) })],
    });

    const stuckAfter = props.stuckAfter ?? Duration.minutes(15);
    for (const { name, queue } of props.deadLetterQueues) {
      new Alarm(this, `${name}Age`, {
        alarmDescription: `A message has waited over a day in the dead-letter queue ${name}: redrive or resolve it`,
        metric: queue.metricApproximateAgeOfOldestMessage({ period: Duration.minutes(5), statistic: 'Maximum' }),
        threshold: Duration.days(1).toSeconds(),
        comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: TreatMissingData.NOT_BREACHING,
      });
    }
    for (const { name, queue } of props.workQueues) {
      new Alarm(this, `${name}Stuck`, {
        alarmDescription: `Work has waited over ${stuckAfter.toHumanString()} in ${name}: its consumer is failing or throttled`,
        metric: queue.metricApproximateAgeOfOldestMessage({ period: Duration.minutes(5), statistic: 'Maximum' }),
        threshold: stuckAfter.toSeconds(),
        comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: TreatMissingData.NOT_BREACHING,
      });
    }

    const dlqDepth: IMetric[] = props.deadLetterQueues.map(({ name, queue }) => queue.metricApproximateNumberOfMessagesVisible({ label: name, period: Duration.minutes(5), statistic: 'Maximum' }));
    const queueAge: IMetric[] = props.workQueues.map(({ name, queue }) => queue.metricApproximateAgeOfOldestMessage({ label: name, period: Duration.minutes(5), statistic: 'Maximum' }));
    this.dashboard = new Dashboard(this, 'Dashboard', {
      dashboardName: `${Stack.of(this).stackName}-lethe`,
      defaultInterval: Duration.days(7),
      widgets: [
        [new TextWidget({ markdown: '# Lethe\nRequests, tasks and the queues between them. Alerts go to the SNS topic in the stack outputs; `lethe list --overdue` shows what is late.', width: 24, height: 2 })],
        [
          new GraphWidget({ title: 'Requests', width: 12, left: [lethe('RequestsReceived', 'received'), lethe('RequestsCompleted', 'completed'), lethe('RequestsPartiallyFailed', 'partially failed'), lethe('RequestsFailed', 'failed')] }),
          new GraphWidget({ title: 'Tasks', width: 12, left: [lethe('TasksSucceeded', 'succeeded'), lethe('TasksFailed', 'failed'), lethe('TaskRetries', 'retried'), lethe('TasksWaitingOnVendor', 'waiting on vendor')] }),
        ],
        [
          new SingleValueWidget({ title: 'Messages in dead-letter queues', width: 12, metrics: dlqDepth }),
          new GraphWidget({ title: 'Oldest message per work queue (s)', width: 12, left: queueAge }),
        ],
        [
          new GraphWidget({ title: 'Saga executions', width: 12, left: [props.stateMachine.metricStarted({ label: 'started' }), props.stateMachine.metricSucceeded({ label: 'succeeded' }), props.stateMachine.metricFailed({ label: 'failed' }), props.stateMachine.metricAborted({ label: 'aborted (cancelled)' }), props.stateMachine.metricTimedOut({ label: 'timed out' })] }),
          new GraphWidget({ title: 'API', width: 12, left: [props.api.metricCount({ label: 'calls' }), props.api.metricClientError({ label: '4xx' }), props.api.metricServerError({ label: '5xx' })], right: [props.api.metricLatency({ label: 'p99 latency', statistic: 'p99' })] }),
        ],
        [new GraphWidget({ title: 'Deadline reminders and records affected', width: 24, left: [lethe('DeadlineRemindersSent', 'reminders')], right: [lethe('RecordsAffected', 'records affected')] })],
      ],
    });
  }

  /** Send every alarm in `scope` to the topic (call last, once every alarm exists). */
  alarmsToTopic(scope: Construct): void {
    for (const alarm of scope.node.findAll().filter((c): c is Alarm => c instanceof Alarm)) alarm.addAlarmAction(new SnsAction(this.topic));
  }
}
