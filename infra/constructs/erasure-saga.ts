import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import {
  CustomState,
  DefinitionBody,
  JsonPath,
  LogLevel,
  Map as MapState,
  Pass,
  StateMachine,
  StateMachineType,
  Succeed,
  TaskInput,
} from 'aws-cdk-lib/aws-stepfunctions';
import { LambdaInvoke } from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';

/** Error names worth retrying inside the saga (Lethe's retryable errors and Lambda's own). */
export const RETRYABLE_ERRORS = [
  'RetryableError',
  'Lambda.ServiceException',
  'Lambda.AWSLambdaException',
  'Lambda.SdkClientException',
  'Lambda.TooManyRequestsException',
];

/** State names: they appear in execution history and the console. */
export const STATE = { plan: 'Plan', dispatch: 'Dispatch to system', finalize: 'Finalize' } as const;

export interface ErasureSagaProps {
  readonly plan: IFunction;
  readonly finalize: IFunction;
  /** Every per-system queue the saga may dispatch to. */
  readonly systemQueues: readonly IQueue[];
  /** Longest a whole request may take before the catch-all fails it. */
  readonly executionTimeout: Duration;
}

/**
 * One Standard execution per request: Plan → Map over stages, one at a time → Map over the stage's
 * tasks → each task sent to its system's queue with a task token and awaited
 * (`sqs:sendMessage.waitForTaskToken`, heartbeat and timeout from the task) → Finalize. A task that fails or goes silent is caught per task, so one system's
 * failure never stops the others; Finalize turns the results into the request's outcome.
 * The state data carries ids, system names and queue URLs only.
 */
export class ErasureSaga extends Construct {
  readonly stateMachine: StateMachine;

  constructor(scope: Construct, id: string, props: ErasureSagaProps) {
    super(scope, id);

    const plan = new LambdaInvoke(this, STATE.plan, {
      lambdaFunction: props.plan,
      payloadResponseOnly: true,
      retryOnServiceExceptions: false,
    }).addRetry({ errors: RETRYABLE_ERRORS, interval: Duration.seconds(2), maxAttempts: 6, backoffRate: 2 });

    const dispatch = new CustomState(this, STATE.dispatch, {
      stateJson: {
        Type: 'Task',
        Resource: 'arn:aws:states:::sqs:sendMessage.waitForTaskToken',
        HeartbeatSecondsPath: '$.heartbeatSeconds',
        TimeoutSecondsPath: '$.timeoutSeconds',
        Parameters: {
          'QueueUrl.$': '$.queueUrl',
          MessageBody: {
            'requestId.$': '$.requestId',
            'system.$': '$.system',
            'action.$': '$.action',
            'taskToken.$': JsonPath.taskToken,
          },
        },
      },
    });
    const taskFailed = new Pass(this, 'Task failed', {
      parameters: { 'system.$': '$.system', 'action.$': '$.action', 'error.$': '$.error' },
    });
    dispatch.addRetry({ errors: ['SQS.SdkClientException', 'SQS.AmazonSQSException'], maxAttempts: 3 });
    // A missed heartbeat means the attempt's worker died (crashed, killed, timed out): send the task
    // again, under a new token. The dead attempt's lease on the task has run out by then, so the new
    // message claims it; should the old message come back too, it finds the task held or final.
    dispatch.addRetry({ errors: ['States.HeartbeatTimeout'], interval: Duration.seconds(1), maxAttempts: 2 });
    dispatch.addCatch(taskFailed, { errors: ['States.ALL'], resultPath: '$.error' });

    // Stages run one after another; the tasks of a stage run together.
    const tasks = new MapState(this, 'Tasks', { itemsPath: '$.tasks', maxConcurrency: 40 });
    tasks.itemProcessor(dispatch);
    const stages = new MapState(this, 'Stages', { itemsPath: '$.stages', maxConcurrency: 1, resultPath: '$.results' });
    stages.itemProcessor(tasks);

    const finalize = new LambdaInvoke(this, STATE.finalize, {
      lambdaFunction: props.finalize,
      payloadResponseOnly: true,
      retryOnServiceExceptions: false,
      payload: TaskInput.fromObject({ requestId: JsonPath.stringAt('$.requestId'), results: JsonPath.objectAt('$.results') }),
    }).addRetry({ errors: RETRYABLE_ERRORS, interval: Duration.seconds(2), maxAttempts: 6, backoffRate: 2 });

    this.stateMachine = new StateMachine(this, 'StateMachine', {
      stateMachineType: StateMachineType.STANDARD,
      definitionBody: DefinitionBody.fromChainable(plan.next(stages).next(finalize).next(new Succeed(this, 'Done'))),
      timeout: props.executionTimeout,
      tracingEnabled: true,
      logs: {
        destination: new LogGroup(this, 'Logs', { retention: RetentionDays.ONE_YEAR, removalPolicy: RemovalPolicy.RETAIN }),
        level: LogLevel.ALL,
        includeExecutionData: false,
      },
    });
    for (const queue of props.systemQueues) queue.grantSendMessages(this.stateMachine);
  }
}
