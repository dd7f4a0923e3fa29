import { Match, Template } from 'aws-cdk-lib/assertions';
import { Queue } from 'aws-cdk-lib/aws-sqs';
import { pathToFileURL } from 'node:url';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '#core/errors';
import { buildApp } from '#infra/app';
import { SecureFunction } from '#infra/constructs/secure-function';

const outdir = () => mkdtempSync(join(tmpdir(), 'lethe-synth-'));
const configPath = 'test/fixtures/one-system.yaml';
let template: Template;

beforeAll(() => {
  const { stack } = buildApp({ skipBundling: true, outdir: outdir(), configPath });
  template = Template.fromStack(stack);
});

type Statement = { Action: string | string[]; Resource: unknown; Effect: string };
const statementsOf = (policyLogicalIdPrefix: string): Statement[] =>
  Object.entries(template.findResources('AWS::IAM::Policy'))
    .filter(([id]) => id.startsWith(policyLogicalIdPrefix))
    .flatMap(([, p]) => (p as { Properties: { PolicyDocument: { Statement: Statement[] } } }).Properties.PolicyDocument.Statement);
const actions = (s: Statement) => [s.Action].flat();

describe('Stack: Lethe', () => {
  it('keeps audit records in a versioned Object Lock bucket, COMPLIANCE mode, 730 days by default', () => {
    template.hasResourceProperties('AWS::S3::Bucket', {
      ObjectLockEnabled: true,
      ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled', Rule: { DefaultRetention: { Mode: 'COMPLIANCE', Days: 730 } } },
      VersioningConfiguration: { Status: 'Enabled' },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      BucketEncryption: Match.anyValue(),
    });
  });

  it('takes the audit retention from configuration', () => {
    const { stack } = buildApp({ skipBundling: true, outdir: outdir(), configPath, auditRetentionDays: 2555 });
    const longer = Template.fromStack(stack);
    longer.hasResourceProperties('AWS::S3::Bucket', {
      ObjectLockConfiguration: { Rule: { DefaultRetention: { Mode: 'COMPLIANCE', Days: 2555 } } },
    });
  });

  it('refuses every request to every bucket over plain HTTP', () => {
    const policies = template.findResources('AWS::S3::BucketPolicy');
    expect(Object.keys(policies)).toHaveLength(3); // the audit bucket, its access logs, the suppression snapshots
    for (const policy of Object.values(policies)) {
      expect(JSON.stringify(policy)).toContain('"aws:SecureTransport":"false"');
    }
  });

  it('lets workers only put audit objects, never delete them or touch retention; only the sequencer reads them', () => {
    const policies = Object.entries(template.findResources('AWS::IAM::Policy')).map(([id, p]) => ({
      fn: id.replace(/ServiceRoleDefaultPolicy.*/, ''),
      statements: (p as { Properties: { PolicyDocument: { Statement: Statement[] } } }).Properties.PolicyDocument.Statement,
    }));
    const s3Actions = policies.flatMap((p) => p.statements.flatMap(actions)).filter((a) => a.startsWith('s3:'));
    expect(new Set(s3Actions)).toEqual(new Set(['s3:PutObject', 's3:GetObject', 's3:ListBucket']));
    const onAudit = (st: Statement) => JSON.stringify(st).includes('AuditBucket');
    const readers = policies.filter((p) => p.statements.some((st) => onAudit(st) && actions(st).some((a) => a === 's3:GetObject' || a === 's3:ListBucket'))).map((p) => p.fn);
    expect(readers).toEqual(['SequenceAudit']);
  });

  it('sequences the audit log every minute, from a sparse index, and lets only the sequencer write the log', () => {
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      GlobalSecondaryIndexes: Match.arrayWith([
        Match.objectLike({ IndexName: 'Unlogged', KeySchema: [{ AttributeName: 'unlogged', KeyType: 'HASH' }, { AttributeName: 'unloggedAt', KeyType: 'RANGE' }], Projection: { ProjectionType: 'KEYS_ONLY' } }),
      ]),
    });
    template.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(1 minute)', Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^SequenceAudit'), 'Arn'] } })] });
    const logWriters = Object.entries(template.findResources('AWS::IAM::Policy'))
      .filter(([, p]) => JSON.stringify(p).includes('/log/*'))
      .map(([id]) => id.replace(/ServiceRoleDefaultPolicy.*/, ''));
    expect(logWriters).toEqual(['SequenceAudit']);
    // It may list the audit records' prefix only (to see a missing record as missing).
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Action: 's3:ListBucket', Condition: { StringLike: { 's3:prefix': ['audit/*'] } } })]) },
    });
  });

  it('gives people two roles (compliance may only read and look up; operators may also act on a request; neither may submit) and product backends a third that may only submit; all may check suppressions', () => {
    const invokes = (role: string) =>
      Object.entries(template.findResources('AWS::IAM::Policy'))
        .filter(([id]) => id.startsWith(role))
        .flatMap(([, p]) => (p as { Properties: { PolicyDocument: { Statement: Statement[] } } }).Properties.PolicyDocument.Statement)
        .map((st) => `${actions(st).join(',')} ${[st.Resource].flat().map((r) => JSON.stringify(r).replace(/.*:execute-api:[^/]*\/\*(\/[^"]*)".*$/, '$1')).join(' ')}`);
    const read = 'execute-api:Invoke /GET/v1/* /POST/v1/subjects:lookup /POST/v1/suppressions:check';
    expect(invokes('ComplianceRole')).toEqual([read]);
    expect(invokes('OperatorRole')).toEqual([read, 'execute-api:Invoke /POST/v1/requests/*']);
    expect(invokes('SubmitterRole').filter((s) => s.startsWith('execute-api'))).toEqual([
      'execute-api:Invoke /POST/v1/requests /POST/v1/suppressions:check /GET/v1/suppressions/filter /POST/opendsr/v2/requests /GET/opendsr/v2/requests/* /DELETE/opendsr/v2/requests/*',
    ]);
    expect(invokes('SubmitterRole').filter((s) => !s.startsWith('execute-api'))).toEqual([expect.stringMatching(/^events:PutEvents /)]);
    for (const role of ['OperatorRole', 'ComplianceRole', 'SubmitterRole']) template.hasOutput(`${role}Arn`, {});
  });

  it('keeps suppressions in a table of their own that intake alone writes and the check, the publisher and the stream filter read', () => {
    const tables = Object.entries(template.findResources('AWS::DynamoDB::Table'));
    const [id, table] = tables.find(([name]) => name.startsWith('Suppressions'))!;
    expect((table as { Properties: Record<string, unknown> }).Properties).toMatchObject({
      KeySchema: [{ AttributeName: 'subject', KeyType: 'HASH' }],
      BillingMode: 'PAY_PER_REQUEST',
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      SSESpecification: { SSEEnabled: true, SSEType: 'KMS' },
    });
    const reaching = (action: string) =>
      Object.entries(template.findResources('AWS::IAM::Policy'))
        .filter(([, p]) =>
          (p as { Properties: { PolicyDocument: { Statement: Statement[] } } }).Properties.PolicyDocument.Statement.some(
            (st) => actions(st).includes(action) && JSON.stringify(st.Resource).includes(id),
          ),
        )
        .map(([name]) => name.replace(/ServiceRoleDefaultPolicy.*/, ''))
        .sort();
    expect(reaching('dynamodb:UpdateItem')).toEqual(['OpenDsr', 'ReceiveEvent', 'SubmitRequest']);
    expect(reaching('dynamodb:BatchGetItem')).toEqual(['CheckSuppressions', 'SuppressionSnapshotPublish', 'SuppressionSnapshotStreamFilter']);
  });

  it('publishes the suppression filter every minute from the changes intake announces, to a private bucket only it writes', () => {
    template.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(1 minute)', Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^SuppressionSnapshotPublish'), 'Arn'] } })] });
    const [bucketId] = Object.keys(template.findResources('AWS::S3::Bucket')).filter((id) => id.startsWith('SuppressionSnapshotBucket'));
    template.hasResourceProperties('AWS::S3::Bucket', { PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true } });
    const reaching = (action: string) =>
      Object.entries(template.findResources('AWS::IAM::Policy'))
        .filter(([, p]) => (p as { Properties: { PolicyDocument: { Statement: Statement[] } } }).Properties.PolicyDocument.Statement.some((st) => actions(st).includes(action) && JSON.stringify(st.Resource).includes(bucketId!)))
        .map(([name]) => name.replace(/ServiceRoleDefaultPolicy.*/, ''))
        .sort();
    expect(reaching('s3:PutObject')).toEqual(['SuppressionSnapshotPublish']);
    expect(reaching('s3:GetObject')).toEqual(['SuppressionSnapshotPublish', 'SuppressionSnapshotServe', 'SuppressionSnapshotStreamFilter']);
    const [queueId] = Object.keys(template.findResources('AWS::SQS::Queue')).filter((id) => id.startsWith('SuppressionSnapshotChangesQueue'));
    const senders = Object.entries(template.findResources('AWS::IAM::Policy'))
      .filter(([, p]) => JSON.stringify(p).includes('sqs:SendMessage') && JSON.stringify(p).includes(queueId!))
      .map(([name]) => name.replace(/ServiceRoleDefaultPolicy.*/, ''))
      .sort();
    expect(senders).toEqual(['OpenDsr', 'ReceiveEvent', 'SubmitRequest']);
  });

  it('serves OpenDSR with a signing key of its own, and calls back on every saga status change and every cancellation by a controller', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: { source: ['aws.states'], 'detail-type': ['Step Functions Execution Status Change'], detail: { stateMachineArn: Match.anyValue() } },
      Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^OpenDsrCallbacks'), 'Arn'] }, DeadLetterConfig: Match.anyValue() })],
    });
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: { source: ['lethe'], 'detail-type': ['OpenDSR Request Changed'] },
      Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^OpenDsrCallbacks'), 'Arn'] } })],
    });
    const [, fn] = Object.entries(template.findResources('AWS::Lambda::Function')).find(([id]) => id.startsWith('OpenDsrCallbacks'))!;
    const variables = (fn as { Properties: { Environment: { Variables: Record<string, unknown> } } }).Properties.Environment.Variables;
    expect(variables['OPENDSR_SIGNER']).toBe('kms');
    expect(JSON.stringify(variables['OPENDSR_KEY_ID'])).toMatch(/OpenDsrKey/);
    // The callbacks function reads requests and records what it told; it never unwraps identities.
    expect(JSON.stringify(statementsOf('OpenDsrCallbacks'))).not.toMatch(/IdentityKey|PseudonymKey/);
  });

  it("deploys the stream filter for the data map's streams, reading the filter and the table, with its ARN as an output", () => {
    const [id, fn] = Object.entries(template.findResources('AWS::Lambda::Function')).find(([name]) => name.startsWith('SuppressionSnapshotStreamFilter'))!;
    const variables = (fn as { Properties: { Environment: { Variables: Record<string, string> } } }).Properties.Environment.Variables;
    expect(JSON.parse(variables['STREAM_FILTERS']!)).toEqual({ 'product-events': { fields: [{ path: 'user.email', identity: 'email' }], action: 'drop', redact: [] } });
    const granted = statementsOf(id.replace(/[0-9A-F]{8}$/, '')).flatMap(actions);
    expect(granted).toEqual(expect.arrayContaining(['s3:GetObject', 'dynamodb:BatchGetItem', 'secretsmanager:GetSecretValue']));
    expect(granted.filter((a) => !a.startsWith('xray:') && /Put|Update|Delete|Write/.test(a))).toEqual([]);
    expect(Object.keys(template.findOutputs('*')).filter((o) => o.startsWith('SuppressionSnapshotStreamFilterArn'))).toHaveLength(1);
  });

  it('encrypts the requests table with its own key and keeps point-in-time recovery', () => {
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      SSESpecification: { SSEEnabled: true, SSEType: 'KMS', KMSMasterKeyId: Match.anyValue() },
    });
    template.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
    // The table's key, the identity key, the receipt signing key, and the alert topic's key.
    template.resourceCountIs('AWS::KMS::Key', 5);
  });

  it('destroys data keys every hour, 30 days after a request is final by default, finding them through a sparse index', () => {
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      GlobalSecondaryIndexes: Match.arrayWith([Match.objectLike({ IndexName: 'Shred', KeySchema: [{ AttributeName: 'shred', KeyType: 'HASH' }, { AttributeName: 'shredAt', KeyType: 'RANGE' }] })]),
    });
    template.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(1 hour)', Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^ShredKeys'), 'Arn'] } })] });
    for (const fn of ['FinalizeRequest', 'FailRequest', 'ShredKeys']) {
      const f = Object.entries(template.findResources('AWS::Lambda::Function')).find(([id]) => id.startsWith(fn))![1] as { Properties: { Environment: { Variables: Record<string, unknown> } } };
      expect(f.Properties.Environment.Variables['SHRED_AFTER_SECONDS']).toBe('2592000');
    }
    const { stack } = buildApp({ skipBundling: true, outdir: outdir(), configPath, shredAfterDays: 7 });
    const finalize = Object.entries(Template.fromStack(stack).findResources('AWS::Lambda::Function')).find(([id]) => id.startsWith('FinalizeRequest'))![1] as { Properties: { Environment: { Variables: Record<string, unknown> } } };
    expect(finalize.Properties.Environment.Variables['SHRED_AFTER_SECONDS']).toBe('604800');
  });

  it('signs receipts and tree heads with an ECC P-256 key that only the receipt function and the sequencer may use, to sign', () => {
    template.hasResourceProperties('AWS::KMS::Key', { KeySpec: 'ECC_NIST_P256', KeyUsage: 'SIGN_VERIFY' });
    const signersWith = (key: string) =>
      Object.entries(template.findResources('AWS::IAM::Policy'))
        .filter(([, p]) => (p as { Properties: { PolicyDocument: { Statement: Statement[] } } }).Properties.PolicyDocument.Statement.some((st) => actions(st).includes('kms:Sign') && JSON.stringify(st.Resource).includes(key)))
        .map(([id]) => id.replace(/ServiceRoleDefaultPolicy.*/, ''))
        .sort();
    expect(signersWith('ReceiptKey')).toEqual(['GetReceipt', 'SequenceAudit']);
    // OpenDSR signs with a key of its own.
    expect(signersWith('OpenDsrKey')).toEqual(['OpenDsr', 'OpenDsrCallbacks']);
    const receiptMethods = Object.values(template.findResources('AWS::ApiGateway::Method')).filter((m) => JSON.stringify(m).includes('GetReceipt'));
    expect(receiptMethods).toHaveLength(3);
    for (const m of receiptMethods) expect((m as { Properties: { AuthorizationType: string } }).Properties.AuthorizationType).toBe('AWS_IAM');
  });

  it('lets only intake wrap and only the workers unwrap the data keys that seal raw identities', () => {
    const users = Object.entries(template.findResources('AWS::IAM::Policy'))
      .filter(([, p]) => JSON.stringify(p).includes('IdentityKey'))
      .map(([id, p]) => [id.replace(/ServiceRoleDefaultPolicy.*/, ''), JSON.stringify(p)] as const);
    expect(users.map(([fn]) => fn).sort()).toEqual(['OpenDsr', 'ReceiveEvent', 'RunConnectordynamodb', 'SubmitRequest']);
    for (const [fn, policy] of users) {
      const statements = JSON.parse(policy) as { Properties: { PolicyDocument: { Statement: Statement[] } } };
      const onKey = statements.Properties.PolicyDocument.Statement.filter((st) => JSON.stringify(st.Resource).includes('IdentityKey'));
      expect(onKey.flatMap(actions), fn).toEqual(fn === 'RunConnectordynamodb' ? ['kms:Decrypt'] : ['kms:GenerateDataKey']);
    }
  });

  it('gives every work queue a dead-letter queue, and encrypts every queue', () => {
    const queues = Object.entries(template.findResources('AWS::SQS::Queue'));
    const deadLetterTargets = new Set(
      queues.flatMap(([, q]) => {
        const target = (q as { Properties: { RedrivePolicy?: { deadLetterTargetArn: { 'Fn::GetAtt': [string] } } } }).Properties
          .RedrivePolicy?.deadLetterTargetArn['Fn::GetAtt'][0];
        return target ? [target] : [];
      }),
    );
    const eventTargetDlqs = queues.filter(([id]) => id.startsWith('EventTargetsDlq')).map(([id]) => id);
    const props = (q: unknown) => (q as { Properties: Record<string, unknown> }).Properties;
    expect(queues.filter(([, q]) => props(q)['SqsManagedSseEnabled'] !== true)).toEqual([]);
    const workQueues = queues.filter(([id]) => !deadLetterTargets.has(id) && !eventTargetDlqs.includes(id));
    expect(workQueues).toHaveLength(3);
    expect(workQueues.filter(([, q]) => props(q)['RedrivePolicy'] === undefined)).toEqual([]);
    expect(deadLetterTargets.size).toBe(3); // intake buffer, suppression changes and the users system
    // Per dead-letter queue: a message there, and one there over a day; per work queue: work older than 15 minutes.
    template.resourceCountIs('AWS::CloudWatch::Alarm', 4 + 4 + 3);
  });

  it('sends every alarm, overdue requests, approaching deadlines and failed tasks to one encrypted alert topic, and has a dashboard', () => {
    const topic = Object.keys(template.findResources('AWS::SNS::Topic'));
    expect(topic).toHaveLength(1);
    template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: Match.anyValue() });
    const alarms = Object.values(template.findResources('AWS::CloudWatch::Alarm')) as { Properties: { AlarmActions?: { Ref: string }[]; MetricName: string; Threshold: number } }[];
    expect(alarms.filter((a) => a.Properties.AlarmActions?.[0]?.Ref !== topic[0])).toEqual([]);
    expect(alarms.map((a) => `${a.Properties.MetricName} ${String(a.Properties.Threshold)}`).sort()).toEqual([
      ...Array<string>(4).fill('ApproximateAgeOfOldestMessage 86400'),
      ...Array<string>(3).fill('ApproximateAgeOfOldestMessage 900'),
      ...Array<string>(4).fill('ApproximateNumberOfMessagesVisible 0'),
    ]);
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: { source: ['lethe'], 'detail-type': ['Privacy Request Overdue', 'Privacy Request Deadline Approaching', 'Privacy Task Failed'] },
      Targets: [Match.objectLike({ Arn: { Ref: topic[0] }, DeadLetterConfig: Match.anyValue() })],
    });
    template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
    template.hasOutput('AlertTopicArn', {});
    // The functions that finish requests may announce failed tasks on the bus.
    for (const fn of ['FinalizeRequest', 'FailRequest']) {
      const f = Object.entries(template.findResources('AWS::Lambda::Function')).find(([id]) => id.startsWith(fn))![1] as { Properties: { Environment: { Variables: Record<string, unknown> } } };
      expect(f.Properties.Environment.Variables['EVENT_BUS_NAME']).toBeDefined();
    }
  });

  it('runs the saga as a Standard state machine that waits on a task token per system, with heartbeat and timeout', () => {
    template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      StateMachineType: 'STANDARD',
      TracingConfiguration: { Enabled: true },
      LoggingConfiguration: Match.objectLike({ IncludeExecutionData: false, Level: 'ALL' }),
    });
    const definition = JSON.stringify(template.findResources('AWS::StepFunctions::StateMachine'));
    expect(definition).toContain('arn:aws:states:::sqs:sendMessage.waitForTaskToken');
    expect(definition).toContain('\\"HeartbeatSecondsPath\\":\\"$.heartbeatSeconds\\"');
    expect(definition).toContain('\\"TimeoutSecondsPath\\":\\"$.timeoutSeconds\\"');
    expect(definition).toContain('\\"taskToken.$\\":\\"$$.Task.Token\\"');
    // A dead worker's task is sent again, twice at most.
    expect(definition).toContain('{\\"ErrorEquals\\":[\\"States.HeartbeatTimeout\\"],\\"IntervalSeconds\\":1,\\"MaxAttempts\\":2}');
    // Stages one at a time (resolution before action, dependencies in order); a stage's tasks together.
    expect(definition).toMatch(/\\"Stages\\":\{\\"Type\\":\\"Map\\".*?\\"MaxConcurrency\\":1/);
    expect(definition).toMatch(/\\"Tasks\\":\{\\"Type\\":\\"Map\\".*?\\"MaxConcurrency\\":40/);
  });

  it('lets the saga send only to the system queues', () => {
    const sends = statementsOf('SagaStateMachineRole').filter((s) => actions(s).some((a) => a.startsWith('sqs:')));
    expect(sends).toHaveLength(1);
    expect(JSON.stringify(sends[0]!.Resource)).toMatch(/Systemusers/);
    expect(JSON.stringify(sends[0]!.Resource)).not.toMatch(/IntakeBuffer/);
  });

  it('starts executions named by request id, and only the starter may start them', () => {
    const starters = Object.entries(template.findResources('AWS::IAM::Policy')).filter(([, p]) =>
      JSON.stringify(p).includes('states:StartExecution'),
    );
    expect(starters.map(([id]) => id)).toEqual([expect.stringMatching(/^StartSaga/) as string]);
  });

  it('drains the intake buffer at a steady rate: two starters sharing 100 starts a second, a throttled start back in the buffer, 50 receives before a dead letter', () => {
    const [starterId, starter] = Object.entries(template.findResources('AWS::Lambda::Function')).find(([id]) => id.startsWith('StartSaga'))!;
    expect((starter as { Properties: { Environment: { Variables: Record<string, unknown> } } }).Properties.Environment.Variables).toMatchObject({ STARTS_PER_SECOND: '50' });
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      FunctionName: { Ref: starterId },
      BatchSize: 10,
      ScalingConfig: { MaximumConcurrency: 2 },
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
    expect(JSON.stringify(statementsOf('StartSaga'))).toContain('sqs:ChangeMessageVisibility');
    template.hasResourceProperties('AWS::SQS::Queue', { RedrivePolicy: Match.objectLike({ maxReceiveCount: 50, deadLetterTargetArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^IntakeBufferDlq'), 'Arn'] } }) });
    expect(() => buildApp({ skipBundling: true, target: 'local', configPath: 'lethe.config.yaml', startsPerSecond: 0, outdir: mkdtempSync(join(tmpdir(), 'lethe-rate-')) })).toThrow(/startsPerSecond: must be a whole number from 1 to 1000/);
  });

  it('scopes the DynamoDB worker to its own target table and the requests table', () => {
    const dynamoStatements = statementsOf('RunConnectordynamodb').filter((s) => actions(s).some((a) => a.startsWith('dynamodb:')));
    const resources = JSON.stringify(dynamoStatements.map((s) => s.Resource));
    expect(resources).toContain(':table/users');
    expect(resources).not.toContain('"*"');
  });

  it('marks a request failed when its saga fails, times out or is aborted', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.states'],
        'detail-type': ['Step Functions Execution Status Change'],
        detail: { status: ['FAILED', 'TIMED_OUT', 'ABORTED'], stateMachineArn: [Match.anyValue()] },
      },
      Targets: [Match.objectLike({ DeadLetterConfig: Match.anyValue(), Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^FailRequest'), 'Arn'] } })],
    });
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: { 'detail-type': ['Privacy Request Submitted'] },
      EventBusName: Match.anyValue(),
    });
  });

  it('authorizes every API method with IAM but the dashboard’s code and OpenDSR discovery, which hold no data and may only be read', () => {
    const methods = Object.values(template.findResources('AWS::ApiGateway::Method')) as { Properties: { AuthorizationType: string; HttpMethod: string; Integration: unknown } }[];
    expect(methods.length).toBeGreaterThanOrEqual(2);
    const open = methods.filter((m) => m.Properties.AuthorizationType !== 'AWS_IAM');
    expect(open.map((m) => `${m.Properties.AuthorizationType} ${m.Properties.HttpMethod} ${JSON.stringify(m.Properties.Integration).match(/ServeDashboard|OpenDsr/)?.[0] ?? '?'}`).sort()).toEqual([
      'NONE GET OpenDsr',
      'NONE GET OpenDsr',
      'NONE GET OpenDsr',
      'NONE GET ServeDashboard',
      'NONE GET ServeDashboard',
    ]);
    const openPaths = Object.values(template.findResources('AWS::ApiGateway::Resource')).map((r) => (r as { Properties: { PathPart: string } }).Properties.PathPart);
    expect(openPaths).toEqual(expect.arrayContaining(['opendsr', 'v2', 'discovery', 'cert.pem', 'status', 'requests']));
    // Its function reaches nothing: no table, no bucket, no key.
    expect(statementsOf('ServeDashboard').flatMap(actions).filter((a) => !a.startsWith('xray:'))).toEqual([]);
  });

  it('reports partial batch failures on every SQS event source', () => {
    const mappings = Object.values(template.findResources('AWS::Lambda::EventSourceMapping'));
    expect(mappings).toHaveLength(2);
    for (const m of mappings) {
      expect((m as { Properties: { FunctionResponseTypes: string[] } }).Properties.FunctionResponseTypes).toEqual(['ReportBatchItemFailures']);
    }
  });
});

describe('Synth', () => {
  it('bundles with esbuild, offline and without Docker, and passes cdk-nag', async () => {
    const dir = outdir();
    const { app } = buildApp({ outdir: dir, configPath });
    app.synth();
    const bundles = readdirSync(dir).filter((d) => d.startsWith('asset.') && existsSync(join(dir, d, 'index.mjs')));
    expect(bundles).toHaveLength(23);
    // The dashboard's bundle carries its page, styles and the browser build of its script.
    const dashboard = bundles.filter((d) => existsSync(join(dir, d, 'dashboard', 'app.js')));
    expect(dashboard).toHaveLength(1);
    expect(readdirSync(join(dir, dashboard[0]!, 'dashboard')).sort()).toEqual(['app.js', 'index.html', 'style.css']);
    expect(readFileSync(join(dir, dashboard[0]!, 'dashboard', 'app.js'), 'utf8')).not.toMatch(/from\s*["']node:/);
    // The deployed handler, as Lambda runs it: the page (its base the stage's /dashboard/, with or without a trailing slash) and its files, nothing else.
    const { handler } = (await import(pathToFileURL(join(dir, dashboard[0]!, 'index.mjs')).href)) as { handler: (e: unknown) => Promise<{ statusCode: number; headers: Record<string, string>; body: string }> };
    const get = (path: string, file?: string) => handler({ path, pathParameters: file ? { file } : null, requestContext: { stage: 'prod', path: `/prod${path}` } });
    for (const path of ['/dashboard', '/dashboard/']) {
      const page = await get(path);
      expect(page).toMatchObject({ statusCode: 200, headers: { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': expect.stringContaining("default-src 'self'") as string } });
      expect(page.body).toContain('<base href="/prod/dashboard/">');
    }
    expect((await get('/dashboard/app.js', 'app.js')).body).toContain('execute-api');
    expect((await get('/dashboard/handler.js', '..%2Findex.mjs')).statusCode).toBe(404);
  }, 180_000); // esbuild bundles 23 functions: about 25 s alone, twice that beside the other test lane

  it('compiles each worker’s systems into its bundle, not its 4 KB environment', () => {
    const dir = outdir();
    const { app, stack } = buildApp({ outdir: dir, configPath });
    const assembly = app.synth();
    const worker = Object.values(Template.fromStack(stack).findResources('AWS::Lambda::Function')).find(
      (f) => (f as { Properties: { Environment?: { Variables?: Record<string, unknown> } } }).Properties.Environment?.Variables?.['CONNECTOR_KIND'] === 'dynamodb',
    ) as { Properties: { Environment: { Variables: Record<string, unknown> } }; Metadata: Record<string, string> };
    expect(worker.Properties.Environment.Variables).not.toHaveProperty('LETHE_SYSTEMS');
    expect(JSON.parse(worker.Metadata['lethe:systems']!)).toMatchObject([{ name: 'users', connector: 'dynamodb' }]);
    const bundles = readdirSync(assembly.directory).filter((d) => d.startsWith('asset.') && existsSync(join(assembly.directory, d, 'index.mjs')));
    const withSystems = bundles.filter((d) => readFileSync(join(assembly.directory, d, 'index.mjs'), 'utf8').includes('"partitionKey":"userId"'));
    expect(withSystems).toHaveLength(1);
  });

  it('fails synth when a function’s environment would exceed Lambda’s 4 KB', () => {
    const { app, stack } = buildApp({ skipBundling: true, outdir: outdir(), configPath });
    new SecureFunction(stack, 'TooBig', { handler: 'get-request', description: 'test', environment: { BIG: 'x'.repeat(5000) } });
    expect(() => app.synth()).toThrow(/TooBig: its environment is about 5003 bytes, over Lambda's 4096/);
  });

  it('fails on a cdk-nag finding nobody acknowledged', () => {
    const { app, stack } = buildApp({ skipBundling: true, outdir: outdir(), configPath });
    new Queue(stack, 'Unprotected');
    expect(() => app.synth()).toThrow(/AwsSolutions-SQS4/);
  });

  it('synthesizes the repository’s sample data map for local mode', () => {
    const { app } = buildApp({ skipBundling: true, target: 'local', outdir: outdir() });
    expect(app.synth().getStackByName('Lethe').template).toHaveProperty('Resources');
  });

  it('refuses to deploy connection secrets from the environment or a file, naming each', () => {
    let error: unknown;
    try {
      buildApp({ skipBundling: true, outdir: outdir(), configPath: 'test/fixtures/all-stores.yaml' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).issues.map((i) => `${i.path}: ${i.message}`)).toEqual([
      'systems.app-db.settings.connection.url: { env: LETHE_SAMPLE_POSTGRES_URL } is for local mode; to deploy, give it as { secretArn } or { ssmParameter }',
      'systems.shop-db.settings.connection.url: { env: LETHE_E2E_MYSQL_URL } is for local mode; to deploy, give it as { secretArn } or { ssmParameter }',
      'systems.sessions.settings.connection.url: { env: LETHE_E2E_REDIS_URL } is for local mode; to deploy, give it as { secretArn } or { ssmParameter }',
    ]);
  });

  it('fails on an invalid data map, naming each problem', () => {
    const dir = outdir();
    const configPath = join(dir, 'bad.yaml');
    writeFileSync(configPath, 'version: 1\nsystems:\n  users:\n    connector: ftp\n    identities: [email]\n');
    expect(() => buildApp({ skipBundling: true, outdir: dir, configPath })).toThrow(ConfigError);
    expect(() => buildApp({ skipBundling: true, outdir: dir, configPath })).toThrow(/systems\.users\.connector: unknown connector kind "ftp"/);
  });
});

describe('Stack: Lethe with a worker per connector kind', () => {
  const { stack } = buildApp({ skipBundling: true, outdir: outdir(), configPath: 'test/fixtures/many-systems.yaml' });
  const many = Template.fromStack(stack);
  const policyOf = (prefix: string) =>
    JSON.stringify(Object.entries(many.findResources('AWS::IAM::Policy')).filter(([id]) => id.startsWith(prefix)).map(([, p]) => p));

  it('builds one worker and one queue per kind and system', () => {
    const workers = Object.keys(many.findResources('AWS::Lambda::Function')).filter((id) => id.startsWith('RunConnector'));
    expect(workers.map((id) => id.replace(/[A-F0-9]{8}$/, '')).sort()).toEqual([
      'RunConnectorcognito',
      'RunConnectordynamodb',
      'RunConnectorhttp',
      'RunConnectoriceberg',
      'RunConnectorlake',
      'RunConnectorpostgres',
      'RunConnectorredis',
      'RunConnectors3',
      'RunConnectorwebhook',
    ]);
    many.resourceCountIs('AWS::Lambda::EventSourceMapping', 10);
  });

  it('lets each worker consume only its own systems’ queues', () => {
    const queues = Object.keys(many.findResources('AWS::SQS::Queue'));
    const functions = Object.keys(many.findResources('AWS::Lambda::Function'));
    const mappings = Object.values(many.findResources('AWS::Lambda::EventSourceMapping')) as { Properties: { EventSourceArn: { 'Fn::GetAtt': [string] }; FunctionName: { Ref: string } } }[];
    for (const worker of functions.filter((id) => id.startsWith('RunConnector'))) {
      const own = mappings.filter((m) => m.Properties.FunctionName.Ref === worker).map((m) => m.Properties.EventSourceArn['Fn::GetAtt'][0]);
      expect(own.length).toBeGreaterThan(0);
      const consumed = Object.entries(many.findResources('AWS::IAM::Policy'))
        .filter(([id]) => id.startsWith(worker.replace(/[A-F0-9]{8}$/, '')))
        .flatMap(([, p]) => (p as { Properties: { PolicyDocument: { Statement: Statement[] } } }).Properties.PolicyDocument.Statement)
        .filter((st) => actions(st).includes('sqs:ReceiveMessage'));
      const reached = queues.filter((q) => JSON.stringify(consumed.map((st) => st.Resource)).includes(`"${q}"`));
      expect(reached.sort()).toEqual(own.sort());
    }
  });

  it('keeps every secret out of functions’ environments: secrets are named by ARN or parameter, never given', () => {
    const functions = Object.entries(many.findResources('AWS::Lambda::Function')) as [string, { Properties: { Environment?: { Variables?: Record<string, unknown> } } }][];
    const secretLike = /whsec_|sk_(live|test)_|-----BEGIN|AKIA[0-9A-Z]{16}|:\/\/[^/\s:@]+:[^/\s@]+@|"(password|token|apiKey|secret)":"[^"{]/i;
    for (const [id, f] of functions) {
      for (const [name, value] of Object.entries(f.Properties.Environment?.Variables ?? {})) {
        const text = JSON.stringify(value);
        expect(`${id}.${name}: ${secretLike.test(text) ? text.slice(0, 80) : 'clean'}`).toBe(`${id}.${name}: clean`);
        // A variable named for a secret holds a reference to it.
        expect(!/SECRET|TOKEN|PASSWORD/.test(name) || /Ref|Fn::|arn:|ssm/.test(text)).toBe(true);
      }
    }
    // The data map names them by reference: the secrets themselves are in Secrets Manager and SSM.
    expect(JSON.stringify(functions)).toContain('secretArn');
  });

  it('runs the database workers, and only them, in the data map’s VPC', () => {
    const functions = many.findResources('AWS::Lambda::Function');
    const vpcOf = (prefix: string) =>
      Object.entries(functions).find(([id]) => id.startsWith(prefix))?.[1] as { Properties: { VpcConfig?: unknown } } | undefined;
    for (const kind of ['postgres', 'redis']) {
      expect(vpcOf(`RunConnector${kind}`)?.Properties.VpcConfig).toEqual({
        SubnetIds: ['subnet-0aaaaaaaaaaaaaaa1', 'subnet-0aaaaaaaaaaaaaaa2'],
        SecurityGroupIds: ['sg-0bbbbbbbbbbbbbbb1'],
      });
    }
    for (const kind of ['dynamodb', 's3', 'cognito']) expect(vpcOf(`RunConnector${kind}`)?.Properties.VpcConfig).toBeUndefined();
  });

  it('passes cdk-nag with workers in a VPC', () => {
    const { app } = buildApp({ skipBundling: true, outdir: outdir(), configPath: 'test/fixtures/many-systems.yaml' });
    expect(app.synth().getStackByName('Lethe').template).toHaveProperty('Resources');
  });

  it('lets the SQL worker read its connection secret and nothing else of Secrets Manager', () => {
    const policy = policyOf('RunConnectorpostgres');
    expect(policy).toContain('arn:aws:secretsmanager:eu-west-1:123456789012:secret:app-db-AbCdEf');
    expect(policy).not.toContain('s3:Delete');
    expect(policy).not.toContain('cognito-idp');
  });

  it('lets the vendor worker read its credential secret only', () => {
    const policy = policyOf('RunConnectorhttp');
    expect(policy).toContain('secret:hubspot-AbCdEf');
    expect(policy).not.toContain('secret:app-db-AbCdEf');
    expect(policy).not.toContain('s3:Delete');
  });

  it('lets the Redis worker read its SSM parameter only', () => {
    const policy = policyOf('RunConnectorredis');
    expect(policy).toContain('ssm:GetParameter');
    expect(policy).toContain(':parameter/lethe/cache/url');
    expect(policy).not.toContain('secretsmanager:GetSecretValue');
  });

  it('lets the lake worker list, read, write and delete versions under its table’s prefix only', () => {
    const lake = policyOf('RunConnectorlake');
    expect(lake).toContain('s3:::acme-lake/events/*');
    expect(lake).toContain('s3:DeleteObjectVersion');
    expect(lake).toContain('"s3:prefix":["events/*"]');
    expect(lake).not.toContain('acme-exports');
    expect(policyOf('RunConnectors3')).not.toContain('acme-lake');
    expect(lake).toMatch(/"sqs:SendMessage".*Systemeventslake/);
    expect(lake).not.toMatch(/Systemusers|Systemcrm/);
  });

  it('lets the Iceberg worker query its workgroup, update its tables’ catalog entries and rewrite their files only', () => {
    const iceberg = policyOf('RunConnectoriceberg');
    expect(iceberg).toContain('workgroup/primary');
    expect(iceberg).toContain('table/analytics/page_views');
    expect(iceberg).toContain('glue:UpdateTable');
    expect(iceberg).toContain('s3:::acme-warehouse/analytics/*');
    expect(iceberg).toContain('s3:::acme-athena-results/lethe/*');
    expect(iceberg).not.toContain('acme-lake');
    expect(policyOf('RunConnectorlake')).not.toContain('athena:');
  });

  it('lets the functions that finish requests announce tainted datasets on the Lethe bus, and tells them which', () => {
    for (const fn of ['FinalizeRequest', 'FailRequest']) {
      expect(policyOf(fn)).toMatch(/"events:PutEvents".*Bus/);
      const f = Object.entries(many.findResources('AWS::Lambda::Function')).find(([id]) => id.startsWith(fn))![1] as { Properties: { Environment: { Variables: Record<string, unknown> } } };
      expect(JSON.parse(f.Properties.Environment.Variables['LETHE_DATASETS'] as string)).toEqual([{ name: 'churn-model', kind: 'model', derivedFrom: ['app-db', 'events-lake'] }]);
    }
    expect(policyOf('SubmitRequest')).not.toContain('events:PutEvents');
  });

  it('grants no role a way around Object Lock, and nothing but put and read on the audit bucket, whatever the data map', () => {
    const statements = Object.values(many.findResources('AWS::IAM::Policy')).flatMap(
      (p) => (p as { Properties: { PolicyDocument: { Statement: Statement[] } } }).Properties.PolicyDocument.Statement,
    );
    const all = statements.flatMap(actions);
    for (const forbidden of ['s3:*', '*', 's3:BypassGovernanceRetention', 's3:PutObjectRetention', 's3:PutObjectLegalHold', 's3:PutBucketObjectLockConfiguration', 's3:PutLifecycleConfiguration', 's3:DeleteBucket', 's3:PutBucketPolicy']) {
      expect(all).not.toContain(forbidden);
    }
    const audit = Object.keys(many.findResources('AWS::S3::Bucket', { Properties: { ObjectLockEnabled: true } }))[0]!;
    const onAudit = statements.filter((st) => JSON.stringify(st.Resource).includes(audit)).flatMap(actions);
    // Put, and (for the sequencer alone, tested above) read.
    expect(new Set(onAudit)).toEqual(new Set(['s3:PutObject', 's3:GetObject', 's3:ListBucket']));
  });

  it('gives the lake worker a batch’s time: 15 minutes, 3 GB, and its queue six times that to hide a message', () => {
    const functions = many.findResources('AWS::Lambda::Function');
    const lake = Object.entries(functions).find(([id]) => id.startsWith('RunConnectorlake'))![1] as { Properties: { Timeout: number; MemorySize: number } };
    expect(lake.Properties).toMatchObject({ Timeout: 900, MemorySize: 3008 });
    const queue = Object.entries(many.findResources('AWS::SQS::Queue')).find(([id]) => id.startsWith('Systemeventslake') && !id.includes('Dlq'))![1] as { Properties: { VisibilityTimeout: number } };
    expect(queue.Properties.VisibilityTimeout).toBe(5400);
  });

  it('scopes the S3 worker to its bucket and the Cognito worker to its pool', () => {
    const s3 = policyOf('RunConnectors3');
    expect(s3).toContain('s3:::acme-exports/*');
    expect(s3).toContain('s3:DeleteObjectVersion');
    expect(s3).not.toContain('cognito-idp');
    const cognito = policyOf('RunConnectorcognito');
    expect(cognito).toContain('userpool/eu-west-1_AbCdEf123');
    expect(cognito).toContain('cognito-idp:AdminDeleteUser');
    expect(cognito).not.toContain('s3:Delete');
  });

  it('opens one route without IAM, the webhook callbacks, to a function that checks signatures under the webhook secret only', () => {
    const methods = Object.values(many.findResources('AWS::ApiGateway::Method')) as { Properties: { AuthorizationType: string; HttpMethod: string; Integration: unknown } }[];
    const open = methods.filter((m) => m.Properties.AuthorizationType !== 'AWS_IAM' && !/ServeDashboard|OpenDsr/.test(JSON.stringify(m.Properties.Integration)));
    expect(open).toHaveLength(1);
    expect(open[0]!.Properties).toMatchObject({ AuthorizationType: 'NONE', HttpMethod: 'POST' });
    expect(JSON.stringify(open[0]!.Properties.Integration)).toMatch(/ReceiveCallback/);
    const resources = Object.values(many.findResources('AWS::ApiGateway::Resource')).map((r) => (r as { Properties: { PathPart: string } }).Properties.PathPart);
    expect(resources).toEqual(expect.arrayContaining(['callbacks', '{requestId}', '{system}', '{action}']));

    const policy = policyOf('ReceiveCallback');
    expect(policy).toContain('secret:billing-webhook-AbCdEf');
    expect(policy).not.toContain('secret:hubspot-AbCdEf');
    expect(policy).toContain('sqs:SendMessage');
    expect(policy).toMatch(/Systembillingsvc/);
    expect(policy).not.toMatch(/Systemcrm|Systemusers/);
    expect(policy, 'the callback function never unwraps identity data keys').not.toContain('IdentityKey');
  });

  it('gives the callback URL base to the webhook worker (and OpenDSR) only, and its signing secret to it alone of the workers', () => {
    const functions = many.findResources('AWS::Lambda::Function');
    const withApiUrl = Object.entries(functions)
      .filter(([, f]) => (f as { Properties: { Environment?: { Variables?: Record<string, unknown> } } }).Properties.Environment?.Variables?.['API_URL'])
      .map(([id]) => id.replace(/[A-F0-9]{8}$/, ''));
    expect(withApiUrl.sort()).toEqual(['OpenDsr', 'OpenDsrCallbacks', 'RunConnectorwebhook']);
    expect(policyOf('RunConnectorwebhook')).toContain('secret:billing-webhook-AbCdEf');
    expect(policyOf('RunConnectorhttp')).not.toContain('secret:billing-webhook-AbCdEf');
  });
});
