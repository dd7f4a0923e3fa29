import { ArnFormat, type CfnElement, CfnOutput, Duration, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import {
  AccessLogFormat,
  AuthorizationType,
  LambdaIntegration,
  LogGroupLogDestination,
  MethodLoggingLevel,
  RequestValidator,
  RestApi,
} from 'aws-cdk-lib/aws-apigateway';
import { AttributeType, BillingMode, ProjectionType, Table, TableEncryption } from 'aws-cdk-lib/aws-dynamodb';
import { EventBus, Rule, Schedule } from 'aws-cdk-lib/aws-events';
import { LambdaFunction } from 'aws-cdk-lib/aws-events-targets';
import { AccountRootPrincipal, PolicyStatement, Role } from 'aws-cdk-lib/aws-iam';
import { Key, KeySpec, KeyUsage } from 'aws-cdk-lib/aws-kms';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';
import type { DataMap, SystemConfig } from '#core/config';
import { BY_MONTH_INDEX, LISTED_ATTRIBUTES, NOTHING_FOUND_INDEX, OPEN_INDEX, SHRED_INDEX, WAITING_INDEX } from '#core/request';
import { UNLOGGED_INDEX } from '#core/log';
import { OPENDSR_CHANGED } from '#core/opendsr';
import { ConfigError } from '#core/errors';
import { cognitoSettingsSchema } from '#connectors/cognito/settings';
import { CONNECTOR_KINDS } from '#connectors/kinds';
import { dynamoDbSettingsSchema } from '#connectors/dynamodb/settings';
import { icebergSettingsSchema } from '#connectors/iceberg/settings';
import { lakeSettingsSchema } from '#connectors/lake/settings';
import { s3SettingsSchema } from '#connectors/s3/settings';
import { secretSources } from '#connectors/secrets';
import { webhookSettingsSchema } from '#connectors/webhook/settings';
import { Alerts } from './constructs/alerts.ts';
import { AuditBucket } from './constructs/audit-bucket.ts';
import { ErasureSaga } from './constructs/erasure-saga.ts';
import { SecureFunction } from './constructs/secure-function.ts';
import { SuppressionSnapshot } from './constructs/suppression-snapshot.ts';
import { DeadLetterQueue, SecureQueue } from './constructs/secure-queue.ts';
import { ack, acknowledgeFindings, arnRef } from './nag.ts';

export interface LetheStackProps extends StackProps {
  /** The validated data map (lethe.config.yaml). */
  readonly dataMap: DataMap;
  /** Default Object Lock retention of audit records, COMPLIANCE mode. @default 730 */
  readonly auditRetentionDays?: number;
  /** Days after a request is final (its verification window) until its data key is destroyed. @default 30 */
  readonly shredAfterDays?: number;
  /**
   * Saga executions begun a second, at most: a burst beyond it waits in the intake buffer. Step
   * Functions refills StartExecution at 300 a second per account and region in the largest regions
   * (150 elsewhere), shared with everything else there. @default 100
   */
  readonly startsPerSecond?: number;
  /** The domain OpenDSR answers and callbacks are signed for. @default the API's host */
  readonly openDsrDomain?: string;
  /** A CA-issued certificate (PEM) for the OpenDsrKey, for discovery to publish. @default a self-signed one */
  readonly openDsrCertificate?: string;
}

/** Starter invocations at once: the rate is shared between them. */
const STARTER_CONCURRENCY = 2;

const WORKER_TIMEOUT = Duration.minutes(2);
/** A lake worker reads and rewrites whole objects, for a batch of subjects at a time. */
const LAKE_WORKER_TIMEOUT = Duration.minutes(15);
const workerTimeout = (kind: string) => (CONNECTOR_KINDS[kind]?.batches ? LAKE_WORKER_TIMEOUT : WORKER_TIMEOUT);

/**
 * Lethe in one stack: intake (EventBridge and IAM-authorized HTTP), the requests table, the intake
 * buffer and saga starter, the erasure saga, one queue per system and one worker per connector
 * kind, the status API, the Object Lock audit bucket and the catch-all for failed executions.
 */
export class LetheStack extends Stack {
  readonly api: RestApi;
  readonly bus: EventBus;
  readonly saga: ErasureSaga;
  /** Read-only access to the API, for compliance teams. */
  readonly complianceRole: Role;
  /** Compliance's access, and acting on requests (extending deadlines), for operators. */
  readonly operatorRole: Role;
  readonly alerts: Alerts;
  /** For product backends: may submit requests (HTTP and the bus), nothing else. */
  readonly submitterRole: Role;

  constructor(scope: Construct, id: string, props: LetheStackProps) {
    super(scope, id, props);
    const { dataMap } = props;

    const identityKey = new Key(this, 'IdentityKey', {
      description: 'Lethe: wraps the per-request data keys that seal raw identities',
      enableKeyRotation: true,
    });
    const pseudonymKey = new Secret(this, 'PseudonymKey', {
      description: 'Lethe: HMAC key that turns identities into pseudonyms',
      generateSecretString: {
        secretStringTemplate: JSON.stringify({ version: 'v1' }),
        generateStringKey: 'key',
        passwordLength: 64,
        excludePunctuation: true,
      },
    });
    ack(
      pseudonymKey,
      'AwsSolutions-SMG4',
      'Rotating the pseudonym key would unlink every stored pseudonym; rotation is a versioned, planned operation, not a schedule.',
    );

    // The tables have their own key: reading a table must not give the power to unwrap data keys.
    const tableKey = new Key(this, 'TableKey', { description: 'Lethe: encrypts the requests and suppressions tables', enableKeyRotation: true });
    const table = new Table(this, 'Requests', {
      partitionKey: { name: 'pk', type: AttributeType.STRING },
      sortKey: { name: 'sk', type: AttributeType.STRING },
      billingMode: BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: TableEncryption.CUSTOMER_MANAGED,
      encryptionKey: tableKey,
    });
    // The suppression plane: what each pseudonymous identity must no longer be used for. It is read
    // on every check, at a product's volume, and listed whole for the filter snapshot: its own table.
    const suppressions = new Table(this, 'Suppressions', {
      partitionKey: { name: 'subject', type: AttributeType.STRING },
      billingMode: BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: TableEncryption.CUSTOMER_MANAGED,
      encryptionKey: tableKey,
    });
    // Tasks waiting on a vendor, by when they are next due (a sparse index: only they have `waiting`).
    table.addGlobalSecondaryIndex({
      indexName: WAITING_INDEX,
      partitionKey: { name: 'waiting', type: AttributeType.STRING },
      sortKey: { name: 'nextCheckAt', type: AttributeType.STRING },
    });
    // Final requests whose data key is due to be destroyed (sparse: only they have `shred`).
    table.addGlobalSecondaryIndex({
      indexName: SHRED_INDEX,
      partitionKey: { name: 'shred', type: AttributeType.STRING },
      sortKey: { name: 'shredAt', type: AttributeType.STRING },
    });
    // Requests by month of receipt, and the open ones by deadline: the compliance list, never a scan.
    const listed = (key: string) => LISTED_ATTRIBUTES.filter((a) => a !== key);
    table.addGlobalSecondaryIndex({
      indexName: BY_MONTH_INDEX,
      partitionKey: { name: 'month', type: AttributeType.STRING },
      sortKey: { name: 'receivedAt', type: AttributeType.STRING },
      projectionType: ProjectionType.INCLUDE,
      nonKeyAttributes: listed('receivedAt'),
    });
    table.addGlobalSecondaryIndex({
      indexName: OPEN_INDEX,
      partitionKey: { name: 'open', type: AttributeType.STRING },
      sortKey: { name: 'dueAt', type: AttributeType.STRING },
      projectionType: ProjectionType.INCLUDE,
      nonKeyAttributes: listed('dueAt'),
    });
    // Requests completed with nothing found anywhere, by month of receipt (sparse: only they have `foundNothingIn`).
    table.addGlobalSecondaryIndex({
      indexName: NOTHING_FOUND_INDEX,
      partitionKey: { name: 'foundNothingIn', type: AttributeType.STRING },
      sortKey: { name: 'receivedAt', type: AttributeType.STRING },
      projectionType: ProjectionType.KEYS_ONLY,
    });
    // Audit records not yet leaves of the audit log (sparse: staged records keep `unlogged` until then).
    table.addGlobalSecondaryIndex({
      indexName: UNLOGGED_INDEX,
      partitionKey: { name: 'unlogged', type: AttributeType.STRING },
      sortKey: { name: 'unloggedAt', type: AttributeType.STRING },
      projectionType: ProjectionType.KEYS_ONLY,
    });
    ack(
      this,
      `AwsSolutions-IAM5[Resource::<${this.getLogicalId(table.node.defaultChild as CfnElement)}.Arn>/index/*]`,
      "CDK's table grant covers the table's own indexes (the Waiting index of tasks on vendor jobs): this table only.",
    );
    const audit = new AuditBucket(this, 'Audit', { retentionDays: props.auditRetentionDays ?? 730 });
    ack(
      this,
      `AwsSolutions-IAM5[Resource::${arnRef(audit.bucket)}/audit/*]`,
      'Write-only (s3:PutObject) access to the audit prefix (the sequencer may also read it, to write a record whose writer died); object keys are per request and not known in advance.',
    );
    ack(
      this,
      `AwsSolutions-IAM5[Resource::${arnRef(audit.bucket)}/log/*]`,
      "Write-only (s3:PutObject) access to the audit log's prefix, for its sequencer alone; object keys name leaf positions and tree sizes.",
    );
    // A start throttled by Step Functions comes back after a backoff of up to a minute: a burst may
    // take many receives to start, and is not a poison message.
    const intakeBuffer = new SecureQueue(this, 'IntakeBuffer', { visibilityTimeout: Duration.minutes(3), maxReceiveCount: 50 });

    const stateEnv = { REQUESTS_TABLE: table.tableName, AUDIT_BUCKET: audit.bucket.bucketName };
    const writesAudit = (fn: IFunction) => {
      table.grantReadWriteData(fn);
      fn.addToRolePolicy(
        new PolicyStatement({ actions: ['s3:PutObject'], resources: [audit.bucket.arnForObjects('audit/*')] }),
      );
    };
    const keyEnv = {
      KEY_PROVIDER: 'kms',
      KMS_KEY_ID: identityKey.keyArn,
      PSEUDONYM_SECRET_ID: pseudonymKey.secretArn,
    };

    const eventsDlq = new DeadLetterQueue(this, 'EventTargetsDlq', {
      description: 'events Lethe could not deliver, and invalid privacy request events',
    });

    // Intake: the same logic behind HTTP and EventBridge.
    const intake = (name: string, handler: string, description: string) => {
      const fn = new SecureFunction(this, name, {
        handler,
        description,
        environment: { ...stateEnv, ...keyEnv, INTAKE_QUEUE_URL: intakeBuffer.queue.queueUrl, SUPPRESSIONS_TABLE: suppressions.tableName },
      });
      writesAudit(fn);
      suppressions.grantWriteData(fn);
      identityKey.grant(fn, 'kms:GenerateDataKey');
      pseudonymKey.grantRead(fn);
      intakeBuffer.queue.grantSendMessages(fn);
      return fn;
    };
    const submit = intake('SubmitRequest', 'submit-request', 'Lethe: POST /v1/requests');
    const receive = intake('ReceiveEvent', 'receive-event', 'Lethe: Privacy Request Submitted events');
    receive.addEnvironment('REJECTED_EVENTS_QUEUE_URL', eventsDlq.queue.queueUrl);
    eventsDlq.queue.grantSendMessages(receive);

    // One queue per system; one worker per connector kind.
    const systemQueues = new Map<string, SecureQueue>();
    for (const system of dataMap.systems) {
      systemQueues.set(
        system.name,
        new SecureQueue(this, `System-${system.name}`, {
          visibilityTimeout: Duration.seconds(workerTimeout(system.connector).toSeconds() * 6),
          maxReceiveCount: system.maxAttempts + 2,
        }),
      );
    }
    // Database workers join the data map's VPC, when it names one, to reach private RDS or ElastiCache.
    const network = dataMap.network;
    const workers: SecureFunction[] = [];
    for (const kind of new Set(dataMap.systems.map((s) => s.connector))) {
      const systems = dataMap.systems.filter((s) => s.connector === kind);
      const worker = new SecureFunction(this, `RunConnector-${kind}`, {
        handler: 'run-connector',
        description: `Lethe: ${kind} connector worker`,
        timeout: workerTimeout(kind),
        memorySize: kind === 'lake' ? 3008 : 1024,
        environment: { ...stateEnv, ...keyEnv, CONNECTOR_KIND: kind },
        bundledSystems: JSON.stringify(systems),
        ...(network && CONNECTOR_KINDS[kind]?.privateNetwork && { network }),
      });
      workers.push(worker);
      writesAudit(worker);
      identityKey.grantDecrypt(worker);
      if (CONNECTOR_KINDS[kind]?.actions.includes('anonymize')) pseudonymKey.grantRead(worker); // the `hmac` strategy
      for (const system of systems) {
        worker.addEventSource(
          new SqsEventSource(systemQueues.get(system.name)!.queue, {
            batchSize: 5,
            reportBatchItemFailures: true,
            maxConcurrency: Math.max(2, system.concurrency),
          }),
        );
        this.#grantTarget(worker, system);
        // A batching worker schedules its batches on its own queue.
        if (CONNECTOR_KINDS[kind]?.batches) systemQueues.get(system.name)!.queue.grantSendMessages(worker);
      }
    }

    const plan = new SecureFunction(this, 'PlanRequest', {
      handler: 'plan-request',
      description: 'Lethe saga: plan the tasks of a request',
      environment: {
        ...stateEnv,
        LETHE_SYSTEMS: this.toJsonString(
          dataMap.systems.map(({ settings: _settings, description: _description, ...planned }) => ({
            ...planned,
            queueUrl: systemQueues.get(planned.name)!.queue.queueUrl,
          })),
        ),
      },
    });
    writesAudit(plan);
    const shredEnv = { SHRED_AFTER_SECONDS: String((props.shredAfterDays ?? 30) * 24 * 3600) };
    const finalize = new SecureFunction(this, 'FinalizeRequest', {
      handler: 'finalize-request',
      description: 'Lethe saga: settle the outcome of a request',
      environment: { ...stateEnv, ...shredEnv },
    });
    writesAudit(finalize);

    const longestTask = Math.max(...dataMap.systems.map((s) => s.timeoutSeconds));
    this.saga = new ErasureSaga(this, 'Saga', {
      plan,
      finalize,
      systemQueues: [...systemQueues.values()].map((q) => q.queue),
      executionTimeout: Duration.seconds(Math.min(2 * longestTask + 3600, 365 * 24 * 3600)),
    });
    for (const worker of workers) this.saga.stateMachine.grantTaskResponse(worker);
    for (const fn of [plan, finalize]) {
      ack(this, `AwsSolutions-IAM5[Resource::${arnRef(fn)}:*]`, 'Step Functions may invoke versions of its own Plan and Finalize functions only.');
    }

    const startsPerSecond = props.startsPerSecond ?? 100;
    if (!Number.isInteger(startsPerSecond) || startsPerSecond < 1 || startsPerSecond > 1000) {
      throw new ConfigError([{ path: 'startsPerSecond', message: 'must be a whole number from 1 to 1000' }]);
    }
    const starter = new SecureFunction(this, 'StartSaga', {
      handler: 'start-saga',
      description: 'Lethe: start one saga execution per request from the intake buffer, at a steady rate',
      // Ten starts at the slowest rate, with room for backing off.
      timeout: Duration.seconds(Math.max(30, Math.ceil((10 * STARTER_CONCURRENCY) / startsPerSecond) * 3)),
      environment: {
        STATE_MACHINE_ARN: this.saga.stateMachine.stateMachineArn,
        STARTS_PER_SECOND: String(startsPerSecond / STARTER_CONCURRENCY),
        INTAKE_QUEUE_URL: intakeBuffer.queue.queueUrl,
      },
    });
    this.saga.stateMachine.grantStartExecution(starter);
    // A throttled start puts its message back for a while (ChangeMessageVisibility on its own queue).
    starter.addToRolePolicy(new PolicyStatement({ actions: ['sqs:ChangeMessageVisibility'], resources: [intakeBuffer.queue.queueArn] }));
    starter.addEventSource(
      new SqsEventSource(intakeBuffer.queue, { batchSize: 10, reportBatchItemFailures: true, maxConcurrency: STARTER_CONCURRENCY }),
    );

    // Catch-all: an execution that failed, timed out or was aborted fails its request.
    const failRequest = new SecureFunction(this, 'FailRequest', {
      handler: 'fail-request',
      description: 'Lethe: mark the request of a failed saga execution failed',
      environment: { ...stateEnv, ...shredEnv },
    });
    writesAudit(failRequest);
    const target = (fn: IFunction) =>
      new LambdaFunction(fn, { deadLetterQueue: eventsDlq.queue, retryAttempts: 8, maxEventAge: Duration.hours(24) });
    new Rule(this, 'SagaEndedAbnormally', {
      description: 'Lethe: saga executions that failed, timed out or were aborted',
      eventPattern: {
        source: ['aws.states'],
        detailType: ['Step Functions Execution Status Change'],
        detail: { status: ['FAILED', 'TIMED_OUT', 'ABORTED'], stateMachineArn: [this.saga.stateMachine.stateMachineArn] },
      },
      targets: [target(failRequest)],
    });

    // Tasks waiting on vendor jobs: heartbeats and polls, every minute.
    const poller = new SecureFunction(this, 'PollVendorJobs', {
      handler: 'poll-vendor-jobs',
      description: 'Lethe: keep tasks waiting on vendor jobs alive, and have their workers poll the vendors',
      // Every minute: it pages until nothing due is left, and stops 15 s before its minute is up.
      timeout: Duration.minutes(1),
      environment: {
        ...stateEnv,
        LETHE_SYSTEM_QUEUES: this.toJsonString(
          Object.fromEntries(dataMap.systems.map((s) => [s.name, { queueUrl: systemQueues.get(s.name)!.queue.queueUrl, heartbeatSeconds: s.heartbeatSeconds }])),
        ),
      },
    });
    writesAudit(poller);
    for (const queue of systemQueues.values()) queue.queue.grantSendMessages(poller);
    this.saga.stateMachine.grantTaskResponse(poller);
    new Rule(this, 'PollVendorJobsSchedule', {
      description: 'Lethe: check tasks waiting on vendor jobs',
      schedule: Schedule.rate(Duration.minutes(1)),
      targets: [target(poller)],
    });

    // Receipts and the audit log's tree heads, signed by a KMS key whose private half never leaves KMS; anyone with the public key checks them offline.
    const signingKey = (id: string, description: string, why: string) => {
      const key = new Key(this, id, { description, keySpec: KeySpec.ECC_NIST_P256, keyUsage: KeyUsage.SIGN_VERIFY, removalPolicy: RemovalPolicy.RETAIN });
      ack(key, 'AwsSolutions-KMS5', `An asymmetric signing key cannot rotate automatically: ${why}`);
      return key;
    };
    const receiptKey = signingKey(
      'ReceiptKey',
      'Lethe: signs receipts of final privacy requests and tree heads of the audit log',
      'receipts name the key that signed them, and a new key is a new published public key.',
    );

    // The audit log: every minute, new audit records become leaves of one Merkle tree under a signed tree head.
    const sequencer = new SecureFunction(this, 'SequenceAudit', {
      handler: 'sequence-audit',
      description: 'Lethe: append new audit records to the audit log and publish a signed tree head',
      timeout: Duration.minutes(5),
      environment: { ...stateEnv, RECEIPT_SIGNER: 'kms', RECEIPT_KEY_ID: receiptKey.keyArn },
    });
    table.grantReadWriteData(sequencer);
    sequencer.addToRolePolicy(new PolicyStatement({ actions: ['s3:PutObject'], resources: [audit.bucket.arnForObjects('log/*')] }));
    // Before it logs a record, the sequencer makes sure the bucket holds it (its writer may have died
    // between staging and writing it): it reads whether it is there (a missing key answers 404 only
    // with s3:ListBucket) and writes it from the staged copy if not.
    sequencer.addToRolePolicy(new PolicyStatement({ actions: ['s3:GetObject', 's3:PutObject'], resources: [audit.bucket.arnForObjects('audit/*')] }));
    sequencer.addToRolePolicy(
      new PolicyStatement({ actions: ['s3:ListBucket'], resources: [audit.bucket.bucketArn], conditions: { StringLike: { 's3:prefix': ['audit/*'] } } }),
    );
    receiptKey.grant(sequencer, 'kms:Sign');
    new Rule(this, 'SequenceAuditSchedule', {
      description: 'Lethe: sequence the audit log',
      schedule: Schedule.rate(Duration.minutes(1)),
      targets: [target(sequencer)],
    });

    // Crypto-shredding: data keys of final requests past their verification window, once a day.
    const shredder = new SecureFunction(this, 'ShredKeys', {
      handler: 'shred-keys',
      description: 'Lethe: destroy the data keys of final requests past their verification window',
      environment: { ...stateEnv, ...shredEnv },
      // It pages until nothing due is left; a run out of time leaves the rest to the next, an hour on.
      timeout: Duration.minutes(5),
    });
    writesAudit(shredder);
    new Rule(this, 'ShredKeysSchedule', {
      description: 'Lethe: crypto-shredding of raw identifiers',
      schedule: Schedule.rate(Duration.hours(1)),
      targets: [target(shredder)],
    });

    this.bus = new EventBus(this, 'Bus', { description: 'Lethe: privacy requests from product backends, and what Lethe announces' });
    // The functions that finish requests announce failed tasks and, when the data map has
    // datasets built from erased subjects' data, the datasets to rebuild.
    for (const fn of [finalize, failRequest]) {
      fn.addEnvironment('EVENT_BUS_NAME', this.bus.eventBusName);
      this.bus.grantPutEventsTo(fn);
      if (dataMap.datasets?.length) fn.addEnvironment('LETHE_DATASETS', JSON.stringify(dataMap.datasets));
    }
    // Deadlines: reminders at half and four fifths of the time, and overdue alerts, on the bus.
    const deadlines = new SecureFunction(this, 'CheckDeadlines', {
      handler: 'check-deadlines',
      description: 'Lethe: announce approaching and passed deadlines of open requests',
      environment: { REQUESTS_TABLE: table.tableName, EVENT_BUS_NAME: this.bus.eventBusName },
    });
    table.grantReadWriteData(deadlines);
    this.bus.grantPutEventsTo(deadlines);
    new Rule(this, 'CheckDeadlinesSchedule', {
      description: 'Lethe: deadline reminders and overdue alerts',
      schedule: Schedule.rate(Duration.minutes(15)),
      targets: [target(deadlines)],
    });
    new Rule(this, 'RequestSubmitted', {
      eventBus: this.bus,
      description: 'Lethe: Privacy Request Submitted events to intake',
      eventPattern: { detailType: ['Privacy Request Submitted'] },
      targets: [target(receive)],
    });

    // HTTP API, IAM-authorized on every method.
    const status = new SecureFunction(this, 'GetRequest', {
      handler: 'get-request',
      description: 'Lethe: GET /v1/requests/{id} and GET /v1/requests',
      environment: { REQUESTS_TABLE: table.tableName },
    });
    table.grantReadData(status);
    this.api = new RestApi(this, 'Api', {
      description: 'Lethe privacy request API',
      defaultMethodOptions: { authorizationType: AuthorizationType.IAM },
      cloudWatchRole: true,
      deployOptions: {
        stageName: 'prod',
        tracingEnabled: true,
        loggingLevel: MethodLoggingLevel.ERROR,
        dataTraceEnabled: false,
        metricsEnabled: true,
        throttlingRateLimit: 100,
        throttlingBurstLimit: 200,
        accessLogDestination: new LogGroupLogDestination(
          new LogGroup(this, 'ApiAccessLogs', { retention: RetentionDays.ONE_YEAR }),
        ),
        accessLogFormat: AccessLogFormat.jsonWithStandardFields(),
      },
    });
    const validator = new RequestValidator(this, 'ApiValidator', {
      restApi: this.api,
      validateRequestParameters: true,
      validateRequestBody: true,
    });
    const v1 = this.api.root.addResource('v1');
    const requests = v1.addResource('requests');
    requests.addMethod('POST', new LambdaIntegration(submit), { requestValidator: validator });
    requests.addMethod('GET', new LambdaIntegration(status), { requestValidator: validator });
    const byId = requests.addResource('{id}');
    byId.addMethod('GET', new LambdaIntegration(status), {
      requestValidator: validator,
      requestParameters: { 'method.request.path.id': true },
    });
    // Acting on a request: POST /v1/requests/{id}:extend|cancel|retry (the path parameter holds the verb).
    const act = new SecureFunction(this, 'ActOnRequest', {
      handler: 'act-on-request',
      description: 'Lethe: POST /v1/requests/{id}:extend, :cancel and :retry',
      environment: {
        ...stateEnv,
        ...shredEnv,
        STATE_MACHINE_ARN: this.saga.stateMachine.stateMachineArn,
        INTAKE_QUEUE_URL: intakeBuffer.queue.queueUrl,
      },
    });
    writesAudit(act);
    intakeBuffer.queue.grantSendMessages(act);
    const mayStopExecutions = (fn: SecureFunction) => {
      fn.addToRolePolicy(
        new PolicyStatement({
          actions: ['states:StopExecution'],
          resources: [this.formatArn({ service: 'states', resource: 'execution', arnFormat: ArnFormat.COLON_RESOURCE_NAME, resourceName: `${this.saga.stateMachine.stateMachineName}:*` })],
        }),
      );
      ack(fn, `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:<${this.getLogicalId(this.saga.stateMachine.node.defaultChild as CfnElement)}.Name>:*]`, "Cancelling stops the request's execution of the saga; executions are named by request id, not known in advance.");
    };
    mayStopExecutions(act);
    byId.addMethod('POST', new LambdaIntegration(act), {
      requestValidator: validator,
      requestParameters: { 'method.request.path.id': true },
    });
    // A subject's requests, by identities (pseudonymized as at intake, never kept).
    const lookup = new SecureFunction(this, 'LookupSubject', {
      handler: 'lookup-subject',
      description: 'Lethe: POST /v1/subjects:lookup',
      environment: { REQUESTS_TABLE: table.tableName, ...keyEnv },
    });
    table.grantReadData(lookup);
    pseudonymKey.grantRead(lookup);
    v1.addResource('subjects:lookup').addMethod('POST', new LambdaIntegration(lookup), { requestValidator: validator });
    // Whether identities may be used: product backends ask before they collect, sell or share.
    const check = new SecureFunction(this, 'CheckSuppressions', {
      handler: 'check-suppressions',
      description: 'Lethe: POST /v1/suppressions:check',
      environment: { SUPPRESSIONS_TABLE: suppressions.tableName, ...keyEnv },
    });
    suppressions.grantReadData(check);
    pseudonymKey.grantRead(check);
    v1.addResource('suppressions:check').addMethod('POST', new LambdaIntegration(check), { requestValidator: validator });
    const snapshot = new SuppressionSnapshot(this, 'SuppressionSnapshot', {
      table: suppressions,
      keyEnv,
      pseudonymKey,
      accessLogs: audit.accessLogs,
      resource: v1.addResource('suppressions'),
      target,
      streams: dataMap.streams,
    });
    // OpenDSR 2.0: controllers submit erasures, follow and cancel them, and hear of each change.
    const openDsrKey = signingKey('OpenDsrKey', 'Lethe: signs OpenDSR answers and status callbacks', 'controllers check signatures against the certificate published for this key.');
    new CfnOutput(this, 'OpenDsrKeyArn', { value: openDsrKey.keyArn, description: 'The key OpenDSR answers are signed with: lethe opendsr csr --key-id <this> makes the request for its certificate' });
    // The API's URL without its stage (a Lambda behind the API cannot name the stage: a cycle).
    const openDsrEnv = {
      API_URL: `https://${this.api.restApiId}.execute-api.${this.region}.${this.urlSuffix}/prod/`,
      OPENDSR_SIGNER: 'kms',
      OPENDSR_KEY_ID: openDsrKey.keyArn,
      ...(props.openDsrDomain && { OPENDSR_DOMAIN: props.openDsrDomain }),
      ...(props.openDsrCertificate && { OPENDSR_CERTIFICATE: props.openDsrCertificate }),
    };
    const openDsr = intake('OpenDsr', 'opendsr', 'Lethe: OpenDSR 2.0 processor endpoints (/opendsr/v2/)');
    for (const [name, value] of Object.entries({ ...openDsrEnv, ...shredEnv, STATE_MACHINE_ARN: this.saga.stateMachine.stateMachineArn, EVENT_BUS_NAME: this.bus.eventBusName })) openDsr.addEnvironment(name, value);
    openDsrKey.grant(openDsr, 'kms:Sign', 'kms:GetPublicKey');
    mayStopExecutions(openDsr);
    this.bus.grantPutEventsTo(openDsr);
    const openDsrRoot = this.api.root.addResource('opendsr').addResource('v2');
    const publicly = 'OpenDSR discovery, its certificate and its health are public by the specification: controllers read them to find what the processor takes and to check its signatures. They hold no data.';
    for (const name of ['discovery', 'cert.pem', 'status']) {
      const method = openDsrRoot.addResource(name).addMethod('GET', new LambdaIntegration(openDsr), { authorizationType: AuthorizationType.NONE });
      ack(method, 'AwsSolutions-APIG4', publicly);
      ack(method, 'AwsSolutions-COG4', publicly);
    }
    const openDsrRequests = openDsrRoot.addResource('requests');
    openDsrRequests.addMethod('POST', new LambdaIntegration(openDsr), { requestValidator: validator });
    const openDsrById = openDsrRequests.addResource('{id}');
    for (const verb of ['GET', 'DELETE']) openDsrById.addMethod(verb, new LambdaIntegration(openDsr), { requestValidator: validator, requestParameters: { 'method.request.path.id': true } });
    const callbacks = new SecureFunction(this, 'OpenDsrCallbacks', {
      handler: 'opendsr-callbacks',
      description: 'Lethe: OpenDSR status callbacks, signed, on each change of a request from a controller',
      environment: { REQUESTS_TABLE: table.tableName, ...openDsrEnv },
    });
    table.grantReadWriteData(callbacks);
    openDsrKey.grant(callbacks, 'kms:Sign', 'kms:GetPublicKey');
    new Rule(this, 'OpenDsrSagaChanges', {
      description: 'Lethe: saga status changes, for OpenDSR callbacks',
      eventPattern: { source: ['aws.states'], detailType: ['Step Functions Execution Status Change'], detail: { stateMachineArn: [this.saga.stateMachine.stateMachineArn] } },
      targets: [target(callbacks)],
    });
    new Rule(this, 'OpenDsrChanges', {
      description: 'Lethe: OpenDSR requests cancelled by their controllers, for callbacks',
      eventBus: this.bus,
      eventPattern: { source: ['lethe'], detailType: [OPENDSR_CHANGED] },
      targets: [target(callbacks)],
    });

    // Intake tells the publisher which subjects changed.
    for (const fn of [submit, receive, openDsr]) {
      fn.addEnvironment('SUPPRESSION_CHANGES_QUEUE_URL', snapshot.changes.queue.queueUrl);
      snapshot.changes.queue.grantSendMessages(fn);
    }
    // Reports: a period's summary, and its export as CSV or JSON.
    const reports = new SecureFunction(this, 'ReportRequests', {
      handler: 'report-requests',
      description: 'Lethe: GET /v1/reports/summary and GET /v1/reports/export',
      environment: { REQUESTS_TABLE: table.tableName },
      memorySize: 1024,
    });
    table.grantReadData(reports);
    const reportResource = v1.addResource('reports');
    for (const name of ['summary', 'export']) reportResource.addResource(name).addMethod('GET', new LambdaIntegration(reports), { requestValidator: validator });

    // The dashboard's code (no data: the page signs its own reads with session credentials).
    const dashboard = new SecureFunction(this, 'ServeDashboard', {
      handler: 'serve-dashboard',
      description: 'Lethe: GET /dashboard/, the web dashboard (code only)',
      memorySize: 256,
      afterBundling: (inputDir, outputDir) => [
        `mkdir -p "${outputDir}/dashboard"`,
        `cp "${inputDir}/dashboard/index.html" "${inputDir}/dashboard/style.css" "${outputDir}/dashboard/"`,
        `"${inputDir}/node_modules/.bin/esbuild" "${inputDir}/dashboard/app.ts" --bundle --format=esm --platform=browser --target=es2022 --minify --log-level=warning --outfile="${outputDir}/dashboard/app.js"`,
      ],
    });
    const dashboardResource = this.api.root.addResource('dashboard');
    const open = 'The dashboard route serves three static files of code and holds no data; every read the page makes is an IAM-authorized API call it signs with the session credentials it was opened with.';
    for (const method of [
      dashboardResource.addMethod('GET', new LambdaIntegration(dashboard), { authorizationType: AuthorizationType.NONE }),
      dashboardResource.addResource('{file}').addMethod('GET', new LambdaIntegration(dashboard), { authorizationType: AuthorizationType.NONE, requestParameters: { 'method.request.path.file': true } }),
    ]) {
      ack(method, 'AwsSolutions-APIG4', open);
      ack(method, 'AwsSolutions-COG4', open);
    }

    // Two roles for people: compliance reads everything (and looks subjects up); operators also
    // act on requests. Neither submits.
    const read = new PolicyStatement({
      actions: ['execute-api:Invoke'],
      resources: [this.api.arnForExecuteApi('GET', '/v1/*'), this.api.arnForExecuteApi('POST', '/v1/subjects:lookup'), this.api.arnForExecuteApi('POST', '/v1/suppressions:check')],
    });
    this.complianceRole = new Role(this, 'ComplianceRole', {
      assumedBy: new AccountRootPrincipal(),
      description: 'Lethe: read privacy requests, reports, receipts and audit log proofs',
    });
    this.complianceRole.addToPolicy(read);
    this.operatorRole = new Role(this, 'OperatorRole', {
      assumedBy: new AccountRootPrincipal(),
      description: 'Lethe: read privacy requests, and extend, cancel or retry them',
    });
    this.operatorRole.addToPolicy(read);
    this.operatorRole.addToPolicy(new PolicyStatement({ actions: ['execute-api:Invoke'], resources: [this.api.arnForExecuteApi('POST', '/v1/requests/*')] }));
    // Product backends submit: a role for them to assume (or grant the same to their own roles).
    this.submitterRole = new Role(this, 'SubmitterRole', {
      assumedBy: new AccountRootPrincipal(),
      description: 'Lethe: submit privacy requests over HTTP, and check suppressions',
    });
    this.submitterRole.addToPolicy(
      new PolicyStatement({
        actions: ['execute-api:Invoke'],
        resources: [
          this.api.arnForExecuteApi('POST', '/v1/requests'),
          this.api.arnForExecuteApi('POST', '/v1/suppressions:check'),
          this.api.arnForExecuteApi('GET', '/v1/suppressions/filter'),
          // OpenDSR: a controller submits, follows and cancels its own requests.
          this.api.arnForExecuteApi('POST', '/opendsr/v2/requests'),
          this.api.arnForExecuteApi('GET', '/opendsr/v2/requests/*'),
          this.api.arnForExecuteApi('DELETE', '/opendsr/v2/requests/*'),
        ],
      }),
    );
    this.bus.grantPutEventsTo(this.submitterRole);
    const apiRef = `arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:<${this.getLogicalId(this.api.node.defaultChild as CfnElement)}>`;
    const why = "Invoke on the API's paths by method, in any stage: GET on /v1/* and POST on /v1/subjects:lookup for reading, POST on /v1/requests/* (actions on one request) for operators, POST on /v1/requests for submitting, POST on /v1/suppressions:check for everyone and GET on /v1/suppressions/filter and OpenDSR's requests for submitters too; request ids are not known in advance.";
    for (const role of [this.complianceRole, this.operatorRole, this.submitterRole]) {
      if (role === this.submitterRole) ack(role, `AwsSolutions-IAM5[Resource::${apiRef}/*/POST/v1/requests]`, why);
      if (role === this.submitterRole) ack(role, `AwsSolutions-IAM5[Resource::${apiRef}/*/GET/v1/suppressions/filter]`, why);
      if (role === this.submitterRole) for (const path of ['POST/opendsr/v2/requests', 'GET/opendsr/v2/requests/*', 'DELETE/opendsr/v2/requests/*']) ack(role, `AwsSolutions-IAM5[Resource::${apiRef}/*/${path}]`, why);
      if (role !== this.submitterRole) ack(role, `AwsSolutions-IAM5[Resource::${apiRef}/*/GET/v1/*]`, why);
      if (role !== this.submitterRole) ack(role, `AwsSolutions-IAM5[Resource::${apiRef}/*/POST/v1/subjects:lookup]`, why);
      ack(role, `AwsSolutions-IAM5[Resource::${apiRef}/*/POST/v1/suppressions:check]`, why);
      if (role === this.operatorRole) ack(role, `AwsSolutions-IAM5[Resource::${apiRef}/*/POST/v1/requests/*]`, why);
      const description = { OperatorRole: 'Assume to read and act on requests', ComplianceRole: 'Assume to read requests', SubmitterRole: 'Assume to submit requests' }[role.node.id];
      new CfnOutput(this, `${role.node.id}Arn`, { value: role.roleArn, ...(description && { description }) });
    }

    // Receipts, signed with the ReceiptKey; anyone with the public key checks them offline.
    const receipts = new SecureFunction(this, 'GetReceipt', {
      handler: 'get-receipt',
      description: 'Lethe: GET /v1/requests/{id}/receipt, GET /v1/receipts/public-key, GET /v1/log/consistency',
      environment: { ...stateEnv, RECEIPT_SIGNER: 'kms', RECEIPT_KEY_ID: receiptKey.keyArn },
    });
    table.grantReadData(receipts);
    receiptKey.grant(receipts, 'kms:Sign', 'kms:GetPublicKey');
    byId.addResource('receipt').addMethod('GET', new LambdaIntegration(receipts), {
      requestValidator: validator,
      requestParameters: { 'method.request.path.id': true },
    });
    v1.addResource('receipts').addResource('public-key').addMethod('GET', new LambdaIntegration(receipts));
    v1.addResource('log').addResource('consistency').addMethod('GET', new LambdaIntegration(receipts), {
      requestValidator: validator,
      requestParameters: { 'method.request.querystring.from': true, 'method.request.querystring.to': false },
    });

    // Webhook services report accepted tasks here, signed with their system's secret.
    const webhooks = dataMap.systems.filter((s) => s.connector === 'webhook');
    if (webhooks.length > 0) {
      const callbacks = new SecureFunction(this, 'ReceiveCallback', {
        handler: 'receive-callback',
        description: 'Lethe: POST /v1/callbacks/{requestId}/{system}/{action}, signed by webhook services',
        environment: {
          REQUESTS_TABLE: table.tableName,
          LETHE_WEBHOOKS: this.toJsonString(
            Object.fromEntries(
              webhooks.map((s) => [s.name, { secret: webhookSettingsSchema.parse(s.settings).secret, queueUrl: systemQueues.get(s.name)!.queue.queueUrl }]),
            ),
          ),
        },
      });
      table.grantReadWriteData(callbacks);
      for (const system of webhooks) {
        this.#grantSecrets(callbacks, system);
        systemQueues.get(system.name)!.queue.grantSendMessages(callbacks);
      }
      const method = v1
        .addResource('callbacks')
        .addResource('{requestId}')
        .addResource('{system}')
        .addResource('{action}')
        .addMethod('POST', new LambdaIntegration(callbacks), {
          authorizationType: AuthorizationType.NONE,
          requestValidator: validator,
          requestParameters: { 'method.request.path.requestId': true, 'method.request.path.system': true, 'method.request.path.action': true },
        });
      const signed =
        'Webhook services hold no AWS credentials: the function accepts only a Standard Webhooks HMAC-SHA256 signature under the system\'s secret, at most 5 minutes old and made for this task, and checks it before reading anything.';
      ack(method, 'AwsSolutions-APIG4', signed);
      ack(method, 'AwsSolutions-COG4', signed);
      // The webhook worker builds callback URLs on the API.
      for (const worker of workers.filter((w) => w.node.id === 'RunConnector-webhook')) worker.addEnvironment('API_URL', this.api.url);
    }

    // Alerts: the bus's overdue and failure events and every alarm to one topic; a dashboard.
    this.alerts = new Alerts(this, 'Alerts', {
      bus: this.bus,
      deadLetterQueue: eventsDlq.queue,
      stateMachine: this.saga.stateMachine,
      api: this.api,
      workQueues: [{ name: 'IntakeBuffer', queue: intakeBuffer.queue }, { name: 'SuppressionChanges', queue: snapshot.changes.queue }, ...[...systemQueues].map(([name, q]) => ({ name: `System-${name}`, queue: q.queue }))],
      deadLetterQueues: [
        { name: 'EventTargetsDlq', queue: eventsDlq.queue },
        { name: 'IntakeBufferDlq', queue: intakeBuffer.deadLetterQueue },
        { name: 'SuppressionChangesDlq', queue: snapshot.changes.deadLetterQueue },
        ...[...systemQueues].map(([name, q]) => ({ name: `System-${name}Dlq`, queue: q.deadLetterQueue })),
      ],
    });
    this.alerts.alarmsToTopic(this);
    new CfnOutput(this, 'AlertTopicArn', { value: this.alerts.topic.topicArn, description: 'Subscribe to hear of overdue requests, failed tasks and dead letters' });
    new CfnOutput(this, 'DashboardName', { value: this.alerts.dashboard.dashboardName, description: 'The CloudWatch dashboard' });

    acknowledgeFindings(this);
  }

  /** Read access to the secrets a system's settings name (connections, credentials, signing secrets), and to no other. */
  #grantSecrets(fn: IFunction, system: SystemConfig): void {
    for (const { source } of secretSources(system.settings)) {
      if ('secretArn' in source) {
        fn.addToRolePolicy(new PolicyStatement({ actions: ['secretsmanager:GetSecretValue'], resources: [source.secretArn] }));
      }
      if ('ssmParameter' in source) {
        fn.addToRolePolicy(
          new PolicyStatement({
            actions: ['ssm:GetParameter'],
            resources: [this.formatArn({ service: 'ssm', resource: 'parameter', resourceName: source.ssmParameter.slice(1) })],
          }),
        );
      }
    }
  }

  /** Least privilege on a system's own target, and on nothing else. */
  #grantTarget(worker: IFunction, system: SystemConfig): void {
    this.#grantSecrets(worker, system);
    if (system.connector === 'iceberg') {
      const settings = icebergSettingsSchema.parse(system.settings);
      worker.addToRolePolicy(
        new PolicyStatement({
          actions: ['athena:StartQueryExecution', 'athena:GetQueryExecution', 'athena:GetQueryResults', 'athena:StopQueryExecution'],
          resources: [this.formatArn({ service: 'athena', resource: 'workgroup', resourceName: settings.workGroup })],
        }),
      );
      worker.addToRolePolicy(
        new PolicyStatement({
          actions: ['glue:GetDatabase', 'glue:GetTable', 'glue:UpdateTable'],
          resources: [
            this.formatArn({ service: 'glue', resource: 'catalog' }),
            this.formatArn({ service: 'glue', resource: 'database', resourceName: settings.database }),
            ...settings.tables.map((t) => this.formatArn({ service: 'glue', resource: 'table', resourceName: `${settings.database}/${t.table}` })),
          ],
        }),
      );
      for (const location of [settings.location, settings.outputLocation].filter((l): l is string => l !== undefined)) {
        const [bucket = '', ...rest] = location.slice('s3://'.length).split('/');
        const prefix = rest.join('/');
        const arn = `arn:${this.partition}:s3:::${bucket}`;
        worker.addToRolePolicy(new PolicyStatement({ actions: ['s3:ListBucket', 's3:GetBucketLocation'], resources: [arn] }));
        worker.addToRolePolicy(
          new PolicyStatement({ actions: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload'], resources: [`${arn}/${prefix}*`] }),
        );
        ack(
          this,
          `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::${bucket}/${prefix}*]`,
          `Athena, as the ${system.name} worker, rewrites and expires the Iceberg files under ${location} (and writes query results), whose names are not known in advance.`,
        );
      }
    }
    if (system.connector === 'lake') {
      for (const { bucket, prefix } of lakeSettingsSchema.parse(system.settings).tables) {
        const arn = `arn:${this.partition}:s3:::${bucket}`;
        worker.addToRolePolicy(
          new PolicyStatement({
            actions: ['s3:ListBucket', 's3:ListBucketVersions'],
            resources: [arn],
            ...(prefix && { conditions: { StringLike: { 's3:prefix': [`${prefix}*`] } } }),
          }),
        );
        worker.addToRolePolicy(
          new PolicyStatement({
            actions: ['s3:GetObject', 's3:GetObjectVersion', 's3:PutObject', 's3:DeleteObjectVersion'],
            resources: [`${arn}/${prefix}*`],
          }),
        );
        ack(
          this,
          `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::${bucket}/${prefix}*]`,
          `The ${system.name} worker rewrites the objects of its table under ${bucket}/${prefix}, whose names are not known in advance.`,
        );
      }
    }
    if (system.connector === 's3') {
      const { bucket } = s3SettingsSchema.parse(system.settings);
      const arn = `arn:${this.partition}:s3:::${bucket}`;
      worker.addToRolePolicy(
        new PolicyStatement({ actions: ['s3:ListBucket', 's3:ListBucketVersions', 's3:GetBucketVersioning'], resources: [arn] }),
      );
      worker.addToRolePolicy(
        new PolicyStatement({
          actions: ['s3:DeleteObject', 's3:DeleteObjectVersion', 's3:GetObjectTagging', 's3:GetObjectVersionTagging'],
          resources: [`${arn}/*`],
        }),
      );
      ack(this, `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::${bucket}/*]`, `The ${system.name} worker deletes the subject's objects in its own bucket, ${bucket}; their keys are per subject.`);
    }
    if (system.connector === 'cognito') {
      const { userPoolId } = cognitoSettingsSchema.parse(system.settings);
      worker.addToRolePolicy(
        new PolicyStatement({
          actions: ['cognito-idp:ListUsers', 'cognito-idp:AdminGetUser', 'cognito-idp:AdminDeleteUser', 'cognito-idp:AdminDisableUser', 'cognito-idp:AdminEnableUser'],
          resources: [this.formatArn({ service: 'cognito-idp', resource: 'userpool', resourceName: userPoolId })],
        }),
      );
    }
    if (system.connector === 'dynamodb') {
      for (const { table } of dynamoDbSettingsSchema.parse(system.settings).tables) {
        const arn = this.formatArn({ service: 'dynamodb', resource: 'table', resourceName: table });
        worker.addToRolePolicy(
          new PolicyStatement({
            actions: ['dynamodb:Query', 'dynamodb:GetItem', 'dynamodb:BatchWriteItem', 'dynamodb:UpdateItem'],
            resources: [arn, `${arn}/index/*`],
          }),
        );
        ack(
          this,
          `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:dynamodb:<AWS::Region>:<AWS::AccountId>:table/${table}/index/*]`,
          `The ${system.name} worker queries the indexes of its own table, ${table}, to find a subject's items.`,
        );
      }
    }
  }
}
