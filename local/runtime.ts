import { randomUUID } from 'node:crypto';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { APIGatewayProxyEvent } from 'aws-lambda';
import { startFauxqs } from 'fauxqs';
import { appendFileSync, chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { join, resolve } from 'node:path';
import type { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { secretSources } from '#connectors/secrets';
import type { DataMap } from '#core/config';
import { LocalKeyService } from '#functions/commons/keys';
import { LocalReceiptSigner } from '#functions/commons/receipts';
import { buildApp } from '#infra/app';
import { ENTRY_METADATA, PROJECT_ROOT, SYSTEMS_METADATA } from '#infra/constructs/secure-function';
import { loadDataMap } from '#infra/data-map';
import { createTable, startDynamoDbLocal } from './dynamodb-local.ts';
import { LocalEventBus, type RuleSpec } from './event-bus.ts';
import { apiPermissions, ensureLocalCredentials, LocalAuthorizer, type LocalCredentials } from './auth.ts';
import { LetheApi } from '../cli/api.ts';
import { dashboard } from './dashboard.ts';
import { createFrontDoor, type Route } from './http.ts';
import { LocalFunction } from './lambda.ts';
import { SqsEventSource } from './event-source.ts';
import { seedTargets, startLocalDatabases } from './sample-data.ts';
import { LocalStepFunctions, type ExecutionStatusChange } from './step-functions.ts';
import { ACCOUNT, bucketName, REGION, Resolver, type CfnTemplate } from './template.ts';

export interface LocalOptions {
  /** API port on 127.0.0.1; 0 picks a free one. */
  readonly port: number;
  /** DynamoDB Local's port; 0 picks a free one. */
  readonly dynamoDbPort: number;
  /** Where keys, the handler log, the synthesized app and `local.json` go. */
  readonly stateDir: string;
  readonly configPath: string;
  /** Receives everything the handlers log. */
  readonly log: Writable;
  readonly onExecution?: (change: ExecutionStatusChange) => void;
  /** Saga executions the starter begins a second (the stack's `startsPerSecond`). @default 100 */
  readonly startsPerSecond?: number | undefined;
  /** Step Functions' StartExecution quota to emulate. @default us-east-1's: a bucket of 1,300, refilled 300 a second */
  readonly startQuota?: { readonly size: number; readonly perSecond: number } | undefined;
  /** Hooks for the chaos suite (test/chaos) and the benchmarks (bench/); none in normal use. */
  readonly hooks?: TestHooks | undefined;
}

export interface TestHooks {
  /** A module each function's environment loads before its handler. */
  readonly preload?: string | undefined;
  /** Variables added to every function's environment. */
  readonly environment?: Readonly<Record<string, string>> | undefined;
  /** How many times each SQS batch is handed to its function, at once. */
  readonly deliveries?: number | undefined;
  /** Put the SQS and S3 emulator behind a proxy that `interruptAws` can cut. */
  readonly interruptible?: boolean | undefined;
}

/** What `local.json` records, so the CLI and tests can find a running local mode. */
export interface LocalState {
  readonly apiUrl: string;
  readonly region: string;
  readonly dynamoDbEndpoint: string;
  readonly sqsEndpoint: string;
  readonly s3Endpoint: string;
  readonly requestsTable: string;
  readonly suppressionsTable: string;
  readonly auditBucket: string;
  readonly eventBusName: string;
  /** Connection variable name → URL, for the systems' databases local mode reaches. */
  readonly databases: Readonly<Record<string, string>>;
  /** The local access key of each role that may invoke the API (`ComplianceRole`, `OperatorRole`, `SubmitterRole`). */
  readonly credentials: LocalCredentials;
  readonly pid: number;
}

export interface LocalLethe {
  readonly state: LocalState;
  readonly dataMap: DataMap;
  /** What ran so far: each function's invocations and billed time, and the state machine's transitions. */
  usage(): { functions: Record<string, { invocations: number; ms: number; memoryMb: number }>; stateTransitions: number };
  /** With `hooks.interruptible`: refuse and drop every connection to the SQS and S3 emulator for `ms`, as if it restarted. */
  interruptAws(ms: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Local mode: synthesize the CDK app (no bundling), stand up what the template declares on
 * DynamoDB Local and fauxqs, run each function in worker threads with the environment CDK gave
 * it (endpoints and the local key provider added), emulate its SQS event sources, EventBridge
 * rules, API routes and state machine, and serve them all on 127.0.0.1.
 */
export async function startLocal(options: LocalOptions): Promise<LocalLethe> {
  const stateDir = resolve(options.stateDir);
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const stops: (() => Promise<void> | void)[] = [];
  const stop = async () => {
    for (const s of stops.reverse()) await Promise.resolve(s()).catch(() => undefined);
  };
  try {
    return await start(options, stateDir, stops, stop);
  } catch (error) {
    await stop();
    throw error;
  }
}

async function start(
  options: LocalOptions,
  stateDir: string,
  stops: (() => Promise<void> | void)[],
  stop: () => Promise<void>,
): Promise<LocalLethe> {
  const keyFile = join(stateDir, 'keys.json');
  if (!existsSync(keyFile)) {
    writeFileSync(keyFile, JSON.stringify(LocalKeyService.generateMaterial(), null, 2), { mode: 0o600 });
    chmodSync(keyFile, 0o600);
  }
  const receiptKeyFile = join(stateDir, 'receipt-key.pem');
  const eventsFile = join(stateDir, 'events.jsonl');
  writeFileSync(eventsFile, '');
  LocalReceiptSigner.ensureKeyFile(receiptKeyFile);
  const openDsrKeyFile = join(stateDir, 'opendsr-key.pem');
  LocalReceiptSigner.ensureKeyFile(openDsrKeyFile);
  const dataMap = loadDataMap(options.configPath);
  const { app } = buildApp({
    skipBundling: true,
    target: 'local',
    outdir: join(stateDir, 'cdk.out'),
    configPath: options.configPath,
    ...(options.startsPerSecond !== undefined && { startsPerSecond: options.startsPerSecond }),
  });
  const template = app.synth().getStackByName('Lethe').template as CfnTemplate;

  const dynamo = await startDynamoDbLocal(options.dynamoDbPort || (await freePort()));
  stops.push(() => dynamo.stop());
  const fauxqs = await startFauxqs({ port: 0, logger: false });
  stops.push(() => fauxqs.stop());
  const proxy = options.hooks?.interruptible ? await interruptibleProxy(fauxqs.port) : undefined;
  if (proxy) stops.push(() => proxy.stop());
  const awsEndpoint = `http://127.0.0.1:${String(proxy?.port ?? fauxqs.port)}`;
  const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
  const sqs = new SQSClient({ endpoint: awsEndpoint, region: REGION, credentials, useQueueUrlAsEndpoint: false });
  const s3 = new S3Client({ endpoint: awsEndpoint, region: REGION, credentials, forcePathStyle: true });
  const queueUrl = (name: string) => `http://sqs.${REGION}.localhost:${String(fauxqs.port)}/${ACCOUNT}/${name}`;
  const resolver = new Resolver(template, queueUrl);

  const scheduleSeconds = Number(process.env['LETHE_SCHEDULE_SECONDS'] ?? 5);
  // Tables, queues (dead-letter queues first) and buckets, as declared.
  for (const [id, table] of resolver.resources('AWS::DynamoDB::Table')) {
    const p = table.Properties ?? {};
    await createTable(dynamo.client, {
      TableName: id,
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: p['KeySchema'] as never,
      AttributeDefinitions: p['AttributeDefinitions'] as never,
      ...(p['GlobalSecondaryIndexes'] ? { GlobalSecondaryIndexes: p['GlobalSecondaryIndexes'] as never } : {}),
    });
  }
  const queues = resolver.resources('AWS::SQS::Queue').sort(([, a], [, b]) => Number(!!a.Properties?.['RedrivePolicy']) - Number(!!b.Properties?.['RedrivePolicy']));
  for (const [id, queue] of queues) {
    const p = resolver.resolve(queue.Properties ?? {}) as Record<string, string | number | object | undefined>;
    const attributes: Record<string, string> = {};
    for (const name of ['VisibilityTimeout', 'MessageRetentionPeriod'] as const) {
      const value = p[name];
      if (typeof value === 'number' || typeof value === 'string') attributes[name] = String(value);
    }
    if (p['RedrivePolicy']) attributes['RedrivePolicy'] = JSON.stringify(p['RedrivePolicy']);
    const created = fauxqs.createQueue(id, { attributes });
    if (created.queueUrl !== queueUrl(id)) throw new Error(`unexpected local queue URL ${created.queueUrl}`);
  }
  for (const [id] of resolver.resources('AWS::S3::Bucket')) {
    await s3.send(new CreateBucketCommand({ Bucket: bucketName(id) }));
  }
  const databases = await startLocalDatabases(dataMap);
  stops.push(() => databases.stop());
  await seedTargets({ dynamo: dynamo.client, s3 }, dataMap, databases);
  // Every connection variable the data map names reaches the workers: set here, or a local server.
  const connectionEnv: Record<string, string> = {};
  for (const name of connectionVariables(dataMap)) {
    const value = process.env[name] || databases.urls[name]; // empty means unset, as for the servers above
    if (value) connectionEnv[name] = value;
  }

  // The front door's port must be known before the functions' environments are.
  const port = options.port || (await freePort());
  const apiUrl = `http://127.0.0.1:${String(port)}`;

  // Functions, in worker threads.
  const functions = new Map<string, LocalFunction>();
  for (const [id, fn] of resolver.resources('AWS::Lambda::Function')) {
    const entry = fn.Metadata?.[ENTRY_METADATA];
    if (typeof entry !== 'string') continue;
    const p = fn.Properties ?? {};
    const variables = resolver.resolve((p['Environment'] as { Variables?: unknown } | undefined)?.Variables ?? {}) as Record<string, string>;
    // What AWS compiles into the bundle, local mode (running the source) gives through the environment.
    const systems = fn.Metadata?.[SYSTEMS_METADATA];
    if (typeof systems === 'string') variables['LETHE_SYSTEMS'] = systems;
    // The API's URL (webhook callbacks) is local mode's front door.
    if ('API_URL' in variables) variables['API_URL'] = `${apiUrl}/`;
    functions.set(
      id,
      new LocalFunction(
        {
          logicalId: id,
          entry,
          timeoutSeconds: Number(p['Timeout'] ?? 3),
          memoryMb: Number(p['MemorySize'] ?? 128),
          environment: {
            ...variables,
            ...connectionEnv,
            PATH: process.env['PATH'] ?? '',
            TZ: 'UTC',
            AWS_REGION: REGION,
            AWS_DEFAULT_REGION: REGION,
            AWS_ACCESS_KEY_ID: 'local',
            AWS_SECRET_ACCESS_KEY: 'local',
            AWS_LAMBDA_FUNCTION_NAME: id,
            AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
            AWS_ENDPOINT_URL_SQS: awsEndpoint,
            AWS_ENDPOINT_URL_S3: awsEndpoint,
            AWS_ENDPOINT_URL_SFN: apiUrl,
            AWS_ENDPOINT_URL_EVENTBRIDGE: apiUrl,
            KEY_PROVIDER: 'local',
            LOCAL_KEY_FILE: keyFile,
            RECEIPT_SIGNER: 'local',
            LOCAL_RECEIPT_KEY_FILE: receiptKeyFile,
            OPENDSR_SIGNER: 'local',
            LOCAL_OPENDSR_KEY_FILE: openDsrKeyFile,
            LOG_SEQUENCE_SECONDS: String(scheduleSeconds),
            POWERTOOLS_TRACE_ENABLED: 'false',
            ...options.hooks?.environment,
          },
        },
        { root: PROJECT_ROOT, log: options.log, maxEnvironments: 4, preload: options.hooks?.preload },
      ),
    );
  }
  stops.push(() => Promise.all([...functions.values()].map((f) => f.stop())).then(() => undefined));
  const invoke = (arnOrName: string, payload: unknown) => {
    const id = resolver.logicalIdOf(arnOrName) ?? arnOrName;
    const fn = functions.get(id);
    if (!fn) throw new Error(`local mode has no function ${arnOrName}`);
    return fn.invoke(payload);
  };

  // EventBridge: the stack's rules on its buses and the default bus; scheduled rules on timers.
  const ruleResources = resolver.resources('AWS::Events::Rule').map(([id, rule]) => ({
    id,
    p: resolver.resolve(rule.Properties ?? {}) as {
      EventBusName?: string;
      EventPattern?: Record<string, unknown>;
      ScheduleExpression?: string;
      Targets?: { Arn: string; DeadLetterConfig?: { Arn: string }; RetryPolicy?: { MaximumRetryAttempts?: number } }[];
    },
  }));
  const rules: RuleSpec[] = ruleResources
    .filter(({ p }) => p.EventPattern)
    .map(({ id, p }) => ({
      name: id,
      bus: p.EventBusName ?? 'default',
      pattern: p.EventPattern!,
      targets: (p.Targets ?? []).map((t) => ({
        functionArn: t.Arn,
        deadLetterQueueUrl: t.DeadLetterConfig ? resolver.ref(resolver.logicalIdOf(t.DeadLetterConfig.Arn)!) : undefined,
        retryAttempts: Math.min(t.RetryPolicy?.MaximumRetryAttempts ?? 2, 2),
      })),
    }));
  // Local mode runs schedules at least every LETHE_SCHEDULE_SECONDS (default 5), one run at a time.
  for (const { id, p } of ruleResources.filter(({ p }) => p.ScheduleExpression)) {
    const every = Math.min(rateSeconds(p.ScheduleExpression!), scheduleSeconds);
    let running = false;
    const timer = setInterval(() => {
      if (running) return;
      running = true;
      const event = { version: '0', id: randomUUID(), 'detail-type': 'Scheduled Event', source: 'aws.events', time: new Date().toISOString(), resources: [id], detail: {} };
      void Promise.all((p.Targets ?? []).map((t) => invoke(t.Arn, event).catch(() => undefined))).finally(() => (running = false));
    }, every * 1000);
    stops.push(() => clearInterval(timer));
  }
  // The alert topic: what would reach its subscribers is appended to <stateDir>/alerts.jsonl.
  const alertsFile = join(stateDir, 'alerts.jsonl');
  writeFileSync(alertsFile, '');
  const isTopic = (arn: string) => resolver.resource(resolver.logicalIdOf(arn) ?? arn).Type === 'AWS::SNS::Topic';
  const bus = new LocalEventBus({
    rules,
    invokeFunction: (arn, event) => {
      if (!isTopic(arn)) return invoke(arn, event);
      appendFileSync(alertsFile, `${JSON.stringify({ topic: resolver.logicalIdOf(arn), message: event })}\n`);
      return Promise.resolve();
    },
    deadLetter: async (url, body) => void (await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: body }))),
    // What Lethe itself announces (and Step Functions' status changes), kept as an archive would keep it:
    // <stateDir>/events.jsonl. Product backends' intake events carry identities by design and are not kept.
    archive: (busName, event) => {
      if (event.source === 'lethe' || event.source.startsWith('aws.')) appendFileSync(eventsFile, `${JSON.stringify({ bus: busName, ...event })}\n`);
    },
  });
  stops.push(() => Promise.race([bus.drain(), sleep(5000)]).then(() => undefined));

  // Step Functions: the synthesized definitions.
  const stepFunctions = new LocalStepFunctions({
    machines: resolver.resources('AWS::StepFunctions::StateMachine').map(([id, sm]) => ({
      arn: resolver.ref(id),
      name: id,
      definition: JSON.parse(resolver.resolve(sm.Properties?.['DefinitionString']) as string) as never,
    })),
    invokeFunction: invoke,
    sqs,
    ...(options.startQuota && { startQuota: { ...options.startQuota } }),
    emit: (change) => {
      options.onExecution?.(change);
      bus.publish('default', {
        source: 'aws.states',
        'detail-type': 'Step Functions Execution Status Change',
        resources: [change.executionArn],
        detail: change,
      });
    },
  });
  stops.push(() => stepFunctions.stop());

  // SQS event source mappings.
  for (const [, mapping] of resolver.resources('AWS::Lambda::EventSourceMapping')) {
    const p = resolver.resolve(mapping.Properties ?? {}) as {
      EventSourceArn: string;
      FunctionName: string;
      BatchSize?: number;
      FunctionResponseTypes?: string[];
      ScalingConfig?: { MaximumConcurrency?: number };
    };
    const queueId = resolver.logicalIdOf(p.EventSourceArn);
    const fn = functions.get(resolver.logicalIdOf(p.FunctionName) ?? p.FunctionName);
    if (!queueId || !fn) throw new Error(`cannot wire event source ${p.EventSourceArn} to ${p.FunctionName}`);
    const source = new SqsEventSource(
      sqs,
      {
        queueUrl: resolver.ref(queueId),
        queueArn: p.EventSourceArn,
        batchSize: p.BatchSize ?? 10,
        reportBatchItemFailures: (p.FunctionResponseTypes ?? []).includes('ReportBatchItemFailures'),
        maximumConcurrency: Math.min(p.ScalingConfig?.MaximumConcurrency ?? 2, 4),
        deliveries: options.hooks?.deliveries,
      },
      fn,
      (error) => options.log.write(`event source ${queueId}: ${(error as Error).name}\n`),
    );
    source.start();
    stops.push(() => source.stop());
  }

  const single = (type: string) => {
    const found = resolver.resources(type).map(([id]) => id);
    if (found.length !== 1) throw new Error(`expected one ${type}, found ${String(found.length)}`);
    return found[0]!;
  };
  const tableNamed = (construct: string) => {
    const found = resolver.resources('AWS::DynamoDB::Table').map(([id]) => id).filter((id) => new RegExp(`^${construct}[0-9A-F]{8}$`).test(id));
    if (found.length !== 1) throw new Error(`expected one ${construct} table, found ${String(found.length)}`);
    return found[0]!;
  };
  // API Gateway routes.
  const routes: Route[] = resolver.resources('AWS::ApiGateway::Method').flatMap(([, method]) => {
    const p = method.Properties ?? {};
    const uri = String(resolver.resolve((p['Integration'] as { Uri?: unknown } | undefined)?.Uri ?? ''));
    const fnId = /function:([A-Za-z0-9-]+)/.exec(uri)?.[1];
    if (!fnId) return [];
    return [
      {
        method: String(p['HttpMethod']),
        resource: apiPath(resolver, p['ResourceId']),
        authorization: typeof p['AuthorizationType'] === 'string' ? p['AuthorizationType'] : 'NONE',
        invoke: (event: APIGatewayProxyEvent) => invoke(fnId, event),
      },
    ];
  });
  // SigV4 and the stack's roles, as API Gateway checks them; a local key per role.
  const permissions = apiPermissions(resolver);
  const apiCredentials = ensureLocalCredentials(stateDir, [...permissions.keys()]);
  const authorizer = new LocalAuthorizer(apiCredentials, permissions, single('AWS::ApiGateway::RestApi'));
  const frontDoor = createFrontDoor(routes, [
    { prefix: 'AWSEvents', contentType: 'application/x-amz-json-1.1', handle: (op, body) => bus.handle(op, body) },
    { prefix: 'AWSStepFunctions', contentType: 'application/x-amz-json-1.0', handle: (op, body) => stepFunctions.handle(op, body) },
  ], authorizer, dashboard(() => (dashboardApi ??= new LetheApi(apiUrl, apiCredentials['ComplianceRole']!, REGION))));
  let dashboardApi: LetheApi | undefined;
  await new Promise<void>((ok, fail) => {
    frontDoor.once('error', fail);
    frontDoor.listen(port, '127.0.0.1', ok);
  });
  stops.push(() => new Promise<void>((ok) => frontDoor.close(() => ok())));
  stops.push(() => frontDoor.closeAllConnections());

  const state: LocalState = {
    apiUrl,
    region: REGION,
    dynamoDbEndpoint: dynamo.endpoint,
    sqsEndpoint: awsEndpoint,
    s3Endpoint: awsEndpoint,
    requestsTable: tableNamed('Requests'),
    suppressionsTable: tableNamed('Suppressions'),
    auditBucket: bucketName(resolver.resources('AWS::S3::Bucket').find(([, b]) => b.Properties?.['ObjectLockEnabled'])![0]),
    eventBusName: single('AWS::Events::EventBus'),
    databases: connectionEnv,
    credentials: apiCredentials,
    pid: process.pid,
  };
  // It holds every role's secret key and the databases' URLs with their passwords: the owner's alone.
  writeFileSync(join(stateDir, 'local.json'), JSON.stringify(state, null, 2), { mode: 0o600 });
  chmodSync(join(stateDir, 'local.json'), 0o600);
  const interruptAws = async (ms: number) => {
    if (!proxy) throw new Error('local mode was started without hooks.interruptible');
    await proxy.interrupt(ms);
  };
  const usage = () => ({
    functions: Object.fromEntries([...functions].map(([id, fn]) => [id, { ...fn.usage, memoryMb: fn.spec.memoryMb }])),
    stateTransitions: stepFunctions.transitions,
  });
  return { state, dataMap, usage, interruptAws, stop };
}

/** A TCP proxy to a local port that can refuse and drop every connection for a while. */
async function interruptibleProxy(target: number): Promise<{ port: number; interrupt(ms: number): Promise<void>; stop(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const track = (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
  };
  const server = createServer((client) => {
    const upstream = connect(target, '127.0.0.1');
    track(client);
    track(upstream);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.pipe(upstream).pipe(client);
  });
  const listen = (port: number) =>
    new Promise<number>((ok, fail) => {
      server.once('error', fail);
      server.listen(port, '127.0.0.1', () => ok((server.address() as AddressInfo).port));
    });
  const close = () => {
    const closed = new Promise<void>((ok) => server.close(() => ok()));
    for (const s of sockets) s.destroy();
    return closed;
  };
  const port = await listen(0);
  return {
    port,
    interrupt: async (ms) => {
      await close();
      await sleep(ms);
      await listen(port);
    },
    stop: close,
  };
}

/** The environment variables the data map names as secret sources (connections, vendor credentials). */
function connectionVariables(dataMap: DataMap): string[] {
  return dataMap.systems.flatMap((s) => secretSources(s.settings).flatMap(({ source }) => ('env' in source ? [source.env] : [])));
}

/** Seconds of an EventBridge `rate(...)` expression; a cron expression counts as a minute here. */
function rateSeconds(expression: string): number {
  const m = /^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$/.exec(expression);
  if (!m) return 60;
  const unit = m[2]!.startsWith('minute') ? 60 : m[2]!.startsWith('hour') ? 3600 : 86_400;
  return Number(m[1]) * unit;
}

/** The path of an API Gateway resource, from its chain of parents. */
function apiPath(resolver: Resolver, resourceId: unknown): string {
  const parts: string[] = [];
  let ref = resourceId as { Ref?: string } | { 'Fn::GetAtt'?: unknown };
  while ('Ref' in ref && ref.Ref) {
    const resource = resolver.resource(ref.Ref);
    parts.unshift(String(resource.Properties?.['PathPart']));
    ref = resource.Properties?.['ParentId'] as typeof ref;
  }
  return `/${parts.join('/')}`;
}

/** A port on 127.0.0.1 that nothing listens on now. */
export function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => ok(port));
    });
  });
}
