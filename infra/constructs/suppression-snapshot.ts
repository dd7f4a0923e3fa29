import { CfnOutput, Duration, RemovalPolicy } from 'aws-cdk-lib';
import type { Resource } from 'aws-cdk-lib/aws-apigateway';
import { LambdaIntegration } from 'aws-cdk-lib/aws-apigateway';
import type { Table } from 'aws-cdk-lib/aws-dynamodb';
import { Rule, Schedule, type IRuleTarget } from 'aws-cdk-lib/aws-events';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { BlockPublicAccess, Bucket, BucketEncryption, ObjectOwnership, type IBucket } from 'aws-cdk-lib/aws-s3';
import type { ISecret } from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import type { StreamFilter } from '#core/stream-filter';
import { FILTER_KEY, TAGS_KEY } from '#core/suppression';
import { SecureFunction } from './secure-function.ts';
import { SecureQueue } from './secure-queue.ts';

export interface SuppressionSnapshotProps {
  readonly table: Table;
  readonly keyEnv: Record<string, string>;
  readonly pseudonymKey: ISecret;
  readonly accessLogs: IBucket;
  /** The API's `/v1/suppressions` resource: the filter is served under it. */
  readonly resource: Resource;
  readonly target: (fn: IFunction) => IRuleTarget;
  /** The data map's `streams`: with any, the Firehose transformation is deployed for them. */
  readonly streams?: Readonly<Record<string, StreamFilter>> | undefined;
}

/**
 * The suppression filter snapshot: intake notes changed subjects on a queue; every minute a
 * publisher merges them into the tag set and publishes the filter to a private bucket;
 * `GET /v1/suppressions/filter` hands out the filter key and a five-minute link to it.
 */
export class SuppressionSnapshot extends Construct {
  readonly changes: SecureQueue;
  readonly bucket: Bucket;
  readonly publisher: SecureFunction;
  /** The Firehose transformation, when the data map names streams. */
  readonly streamFilter?: SecureFunction;

  constructor(scope: Construct, id: string, props: SuppressionSnapshotProps) {
    super(scope, id);
    // A run lasts at most five minutes; its messages stay hidden until it has deleted them.
    this.changes = new SecureQueue(this, 'Changes', { visibilityTimeout: Duration.minutes(6), maxReceiveCount: 20 });
    this.bucket = new Bucket(this, 'Bucket', {
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      encryption: BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: props.accessLogs,
      serverAccessLogsPrefix: 'suppression-snapshots/',
      // Derived data, rebuilt from the table when missing.
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const snapshotEnv = { SNAPSHOT_BUCKET: this.bucket.bucketName, SUPPRESSIONS_TABLE: props.table.tableName, ...props.keyEnv };

    this.publisher = new SecureFunction(this, 'Publish', {
      handler: 'publish-suppressions',
      description: 'Lethe: merge changed suppressions into the tag set and publish the filter snapshot',
      timeout: Duration.minutes(5),
      // A rebuild holds every suppressed subject's tag, packed, a few times over (sorting, the
      // filter's build): about 700 MB at ten million, in 2 GB.
      memorySize: 2048,
      environment: { ...snapshotEnv, SUPPRESSION_CHANGES_QUEUE_URL: this.changes.queue.queueUrl },
    });
    this.changes.queue.grantConsumeMessages(this.publisher);
    props.table.grantReadData(this.publisher);
    props.pseudonymKey.grantRead(this.publisher);
    this.publisher.addToRolePolicy(
      new PolicyStatement({ actions: ['s3:GetObject', 's3:PutObject'], resources: [this.bucket.arnForObjects(TAGS_KEY), this.bucket.arnForObjects(FILTER_KEY)] }),
    );
    // Without s3:ListBucket a missing object answers 403, not 404: the first run must tell them apart.
    const list = new PolicyStatement({ actions: ['s3:ListBucket'], resources: [this.bucket.bucketArn], conditions: { StringLike: { 's3:prefix': ['suppressions/*'] } } });
    this.publisher.addToRolePolicy(list);
    new Rule(this, 'Schedule', {
      description: 'Lethe: publish the suppression filter snapshot',
      schedule: Schedule.rate(Duration.minutes(1)),
      targets: [props.target(this.publisher)],
    });

    const serve = new SecureFunction(this, 'Serve', {
      handler: 'get-suppression-filter',
      description: 'Lethe: GET /v1/suppressions/filter',
      environment: snapshotEnv,
    });
    serve.addToRolePolicy(new PolicyStatement({ actions: ['s3:GetObject'], resources: [this.bucket.arnForObjects(FILTER_KEY)] }));
    serve.addToRolePolicy(list);
    props.pseudonymKey.grantRead(serve);
    props.resource.addResource('filter').addMethod('GET', new LambdaIntegration(serve));

    if (props.streams && Object.keys(props.streams).length > 0) {
      // Firehose waits for a transformation up to its timeout, a minute at most, and retries it.
      const filter = new SecureFunction(this, 'StreamFilter', {
        handler: 'filter-stream',
        description: `Lethe: Firehose transformation dropping or redacting suppressed subjects' records (${Object.keys(props.streams).join(', ')})`,
        timeout: Duration.minutes(1),
        memorySize: 1024,
        environment: { ...snapshotEnv, STREAM_FILTERS: JSON.stringify(props.streams) },
      });
      filter.addToRolePolicy(new PolicyStatement({ actions: ['s3:GetObject'], resources: [this.bucket.arnForObjects(FILTER_KEY)] }));
      filter.addToRolePolicy(list);
      props.table.grantReadData(filter);
      props.pseudonymKey.grantRead(filter);
      this.streamFilter = filter;
      new CfnOutput(this, 'StreamFilterArn', {
        value: filter.functionArn,
        description: "Name this function as the delivery streams' processor (Lambda processor); their role needs lambda:InvokeFunction on it",
      });
    }
  }
}
