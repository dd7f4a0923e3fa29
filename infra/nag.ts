import { Stack, Validations, type CfnElement } from 'aws-cdk-lib';
import { CfnEventSourceMapping } from 'aws-cdk-lib/aws-lambda';
import type { IConstruct } from 'constructs';
import { SecureFunction } from './constructs/secure-function.ts';
import { DeadLetterQueue } from './constructs/secure-queue.ts';

export const ack = (scope: IConstruct, id: string, reason: string): void =>
  Validations.of(scope).acknowledge({ id, reason });

/** Logical id reference as cdk-nag prints it in finding ids, e.g. `<Table1234.Arn>`. */
export const arnRef = (scope: IConstruct): string =>
  `<${Stack.of(scope).getLogicalId(scope.node.defaultChild as CfnElement)}.Arn>`;

/**
 * Every generic cdk-nag finding Lethe acknowledges, each with the reason it does not apply. Anything not
 * acknowledged here or beside the grant it concerns fails `cdk synth`.
 */
export function acknowledgeFindings(stack: Stack): void {

  for (const construct of stack.node.findAll()) {
    if (construct instanceof SecureFunction) {
      const fn = construct.node.defaultChild!;
      const pinned =
        'Pinned to Node.js 22, the version local mode and CI run the handlers on; the runtime moves when they do.';
      ack(fn, 'AwsSolutions-L1', pinned);
      ack(fn, 'Serverless-LambdaLatestVersion', pinned);
      ack(
        fn,
        'Serverless-LambdaDLQ',
        'No function is invoked asynchronously by Lambda itself: API Gateway and Step Functions invoke synchronously, SQS-triggered functions dead-letter through the queue redrive policy, and EventBridge targets through the rule target DLQ.',
      );
    }
    if (construct instanceof DeadLetterQueue) {
      const queue = construct.queue.node.defaultChild!;
      ack(queue, 'AwsSolutions-SQS3', 'This queue is itself a dead-letter queue.');
      ack(queue, 'Serverless-SQSRedrivePolicy', 'This queue is itself a dead-letter queue.');
    }
    if (construct instanceof CfnEventSourceMapping) {
      ack(
        construct,
        'Serverless-LambdaEventSourceMappingDestination',
        'SQS event sources fail over through the source queue redrive policy to its DLQ (with an alarm); on-failure destinations apply to stream sources only.',
      );
    }
  }

  ack(
    stack,
    'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
    'Grants CloudWatch Logs writes only, which every function needs to log.',
  );
  ack(
    stack,
    'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole]',
    "Only on database workers that the data map's network puts in a VPC: the network interfaces Lambda needs there, and logs.",
  );
  ack(
    stack,
    'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]',
    "API Gateway's account-level role for writing its access and error logs; CloudWatch Logs writes only.",
  );
  ack(
    stack,
    'AwsSolutions-IAM5[Resource::*]',
    'Only X-Ray (PutTraceSegments, PutTelemetryRecords, sampling) and CloudWatch Logs delivery for Step Functions, which accept no resource narrower than *.',
  );
  ack(
    stack,
    'AwsSolutions-IAM5[Action::kms:GenerateDataKey*]',
    'CDK grant for the customer-managed key that encrypts the requests table, scoped to that one key.',
  );
  ack(
    stack,
    'AwsSolutions-IAM5[Action::kms:ReEncrypt*]',
    'CDK grant for the customer-managed key that encrypts the requests table, scoped to that one key.',
  );
  ack(
    stack,
    'AwsSolutions-COG4',
    'Callers are product backends and compliance tooling with AWS credentials: every method uses IAM (SigV4) authorization, not end-user Cognito pools.',
  );
  ack(
    stack,
    'AwsSolutions-APIG3',
    'Every method is IAM-authorized (SigV4) and throttled; attach a WAFv2 web ACL to the stage where the account requires one.',
  );
}
