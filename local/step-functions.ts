import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { StateMachine } from 'aws-local-stepfunctions';
import { randomUUID } from 'node:crypto';
import { ACCOUNT, REGION } from './template.ts';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type State = Record<string, unknown> & { Type: string; Resource?: string };
type Definition = { StartAt: string; States: Record<string, State>; TimeoutSeconds?: number };

export interface MachineSpec {
  readonly arn: string;
  readonly name: string;
  readonly definition: Definition;
}

export interface ExecutionStatusChange {
  readonly executionArn: string;
  readonly stateMachineArn: string;
  readonly name: string;
  readonly status: 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'ABORTED';
  readonly startDate: number;
  readonly stopDate: number | null;
  readonly input: string;
  readonly output: string | null;
  /** Why a failed execution failed, as Step Functions reports it. */
  readonly error?: string | undefined;
  readonly cause?: string | undefined;
}

const MAX_TIMER_MS = 2 ** 31 - 1;

/** An error answered in the AWS JSON protocol (`__type`), as the SDK expects. */
export class AwsApiError extends Error {
  readonly type: string;
  readonly status: number;
  constructor(type: string, message: string, status = 400) {
    super(message);
    this.type = type;
    this.status = status;
  }
}

class TaskError extends Error {
  constructor(name: string, cause: string) {
    super(cause);
    this.name = name;
  }
}

interface Waiter {
  readonly resolve: (output: Json) => void;
  readonly reject: (error: Error) => void;
  readonly heartbeat: () => void;
}

const TOKEN_PREFIX = 'lethe-local-token:';
const LOCAL_TIMING = '__letheLocalTiming';

/**
 * Step Functions for local mode: the definition `cdk synth` produced, run by aws-local-stepfunctions.
 * Lambda Task states invoke the local functions; `sqs:sendMessage.waitForTaskToken` states send the
 * message with a task token unique to that task and wait for SendTaskSuccess / SendTaskFailure,
 * failing with States.Timeout when a heartbeat or the task's timeout is missed. Executions are
 * unique by name per state machine, and status changes are emitted as EventBridge events.
 */
export class LocalStepFunctions {
  readonly #machines = new Map<string, { spec: MachineSpec; machine: StateMachine }>();
  readonly #executions = new Map<string, ExecutionStatusChange & { abort: () => void; error?: string; cause?: string }>();
  readonly #waiters = new Map<string, Waiter>();
  readonly #invoke: (functionArn: string, payload: unknown) => Promise<unknown>;
  readonly #sqs: SQSClient;
  readonly #emit: (change: ExecutionStatusChange) => void;
  /** StartExecution's token bucket, as Step Functions keeps it per account and region. */
  readonly #bucket: { size: number; perSecond: number; tokens: number; at: number };
  /** State transitions so far, as Step Functions bills them: each state entered, each retry. */
  transitions = 0;

  constructor(options: {
    machines: readonly MachineSpec[];
    invokeFunction: (functionArn: string, payload: unknown) => Promise<unknown>;
    sqs: SQSClient;
    emit: (change: ExecutionStatusChange) => void;
    /** StartExecution's quota: bucket size and refill a second. @default us-east-1's: 1,300 and 300 */
    startQuota?: { size: number; perSecond: number };
  }) {
    const quota = options.startQuota ?? { size: 1300, perSecond: 300 };
    this.#bucket = { ...quota, tokens: quota.size, at: Date.now() };
    this.#invoke = options.invokeFunction;
    this.#sqs = options.sqs;
    this.#emit = options.emit;
    for (const spec of options.machines) {
      const definition = withLocalTiming(spec.definition);
      // The execution timeout is ours to keep (below): the library's own timer cannot hold more than 24.8 days.
      const { TimeoutSeconds: _timeout, ...untimed } = definition;
      const machine = new StateMachine(untimed as never, { validationOptions: { checkPaths: false, checkArn: false } });
      this.#machines.set(spec.arn, { spec: { ...spec, definition }, machine });
    }
  }

  /** Answer one AWS JSON protocol call (`X-Amz-Target: AWSStepFunctions.<Operation>`). */
  handle(operation: string, body: Record<string, unknown>): unknown {
    switch (operation) {
      case 'StartExecution':
        return this.startExecution(body as { stateMachineArn: string; name?: string; input?: string });
      case 'DescribeExecution':
        return this.describeExecution(body['executionArn'] as string);
      case 'StopExecution':
        return this.stopExecution(body['executionArn'] as string);
      case 'SendTaskSuccess':
        this.#settle(body['taskToken'] as string, (w) => w.resolve(JSON.parse(body['output'] as string) as Json));
        return {};
      case 'SendTaskFailure':
        this.#settle(body['taskToken'] as string, (w) =>
          w.reject(new TaskError((body['error'] as string | undefined) ?? '', (body['cause'] as string | undefined) ?? '')),
        );
        return {};
      case 'SendTaskHeartbeat':
        this.#settle(body['taskToken'] as string, (w) => w.heartbeat(), false);
        return {};
      default:
        throw new AwsApiError('UnknownOperationException', `local mode does not serve ${operation}`);
    }
  }

  startExecution(request: { stateMachineArn: string; name?: string; input?: string }): { executionArn: string; startDate: number } {
    const entry = this.#machines.get(request.stateMachineArn);
    if (!entry) throw new AwsApiError('StateMachineDoesNotExist', `no state machine ${request.stateMachineArn}`);
    this.#takeStartToken();
    const name = request.name ?? randomUUID();
    const executionArn = `arn:aws:states:${REGION}:${ACCOUNT}:execution:${entry.spec.name}:${name}`;
    const input = request.input ?? '{}';
    const existing = this.#executions.get(executionArn);
    if (existing) {
      if (existing.status === 'RUNNING' && existing.input === input) return { executionArn, startDate: existing.startDate / 1000 };
      throw new AwsApiError('ExecutionAlreadyExists', `execution ${name} already exists`);
    }
    const startDate = Date.now();
    const context = {
      Execution: { Id: executionArn, Name: name, StartTime: new Date(startDate).toISOString(), Input: JSON.parse(input) as Json },
      StateMachine: { Id: entry.spec.arn, Name: entry.spec.name },
      get Task() {
        return { Token: `${TOKEN_PREFIX}${randomUUID()}` };
      },
    };
    const run = entry.machine.run(JSON.parse(input) as never, {
      context,
      overrides: { taskResourceLocalHandlers: this.#overrides(entry.spec.definition) },
    });
    void (async () => {
      for await (const event of run.eventLogs) if (event.type === 'StateEntered' || event.type === 'StateRetried') this.transitions += 1;
    })().catch(() => undefined);
    const record = {
      executionArn,
      stateMachineArn: entry.spec.arn,
      name,
      status: 'RUNNING' as ExecutionStatusChange['status'],
      startDate,
      stopDate: null as number | null,
      input,
      output: null as string | null,
      abort: () => run.abort(),
    };
    this.#executions.set(executionArn, record);
    const timeout = entry.spec.definition.TimeoutSeconds;
    let timedOut = false;
    // Node's timers hold at most 2^31-1 ms (24.8 days); a longer timeout cannot fire in a local run.
    const timer = timeout && timeout * 1000 <= MAX_TIMER_MS
      ? setTimeout(() => {
          timedOut = true;
          run.abort();
        }, timeout * 1000)
      : undefined;
    run.result.then(
      (output: unknown) => this.#close(record, 'SUCCEEDED', { output: JSON.stringify(output) }),
      (error: unknown) => {
        const e = error as Error;
        const status = timedOut ? 'TIMED_OUT' : e.name === 'ExecutionAbortedError' ? 'ABORTED' : 'FAILED';
        this.#close(record, status, { error: e.name, cause: e.message });
      },
    ).finally(() => clearTimeout(timer));
    return { executionArn, startDate: startDate / 1000 };
  }

  /** Take a StartExecution token, or refuse as Step Functions does when its bucket is empty. */
  #takeStartToken(): void {
    const b = this.#bucket;
    const now = Date.now();
    b.tokens = Math.min(b.size, b.tokens + ((now - b.at) / 1000) * b.perSecond);
    b.at = now;
    if (b.tokens < 1) throw new AwsApiError('ThrottlingException', 'Rate exceeded');
    b.tokens -= 1;
  }

  describeExecution(executionArn: string): Record<string, unknown> {
    const e = this.#executions.get(executionArn);
    if (!e) throw new AwsApiError('ExecutionDoesNotExist', `no execution ${executionArn}`);
    return {
      executionArn,
      stateMachineArn: e.stateMachineArn,
      name: e.name,
      status: e.status,
      startDate: e.startDate / 1000,
      ...(e.stopDate ? { stopDate: e.stopDate / 1000 } : {}),
      input: e.input,
      ...(e.output ? { output: e.output } : {}),
      ...(e.error ? { error: e.error, cause: e.cause } : {}),
    };
  }

  /** Stop a running execution: it ends ABORTED, as in AWS (a stopped one stays as it ended). */
  stopExecution(executionArn: string): { stopDate: number } {
    const e = this.#executions.get(executionArn);
    if (!e) throw new AwsApiError('ExecutionDoesNotExist', `no execution ${executionArn}`);
    if (e.status === 'RUNNING') e.abort();
    return { stopDate: Date.now() / 1000 };
  }

  /** Abort every running execution (on shutdown). */
  stop(): void {
    for (const e of this.#executions.values()) if (e.status === 'RUNNING') e.abort();
  }

  #close(
    record: ExecutionStatusChange & { error?: string; cause?: string },
    status: ExecutionStatusChange['status'],
    fields: { output?: string; error?: string; cause?: string },
  ): void {
    Object.assign(record, { status, stopDate: Date.now(), ...fields });
    const { executionArn, stateMachineArn, name, startDate, stopDate, input, output, error, cause } = record;
    this.#emit({ executionArn, stateMachineArn, name, status, startDate, stopDate, input, output, ...(error ? { error, cause } : {}) });
  }

  #settle(token: string, act: (w: Waiter) => void, remove = true): void {
    const waiter = this.#waiters.get(token);
    if (!waiter) throw new AwsApiError('TaskTimedOut', 'the task of this token is closed or never existed');
    if (remove) this.#waiters.delete(token);
    act(waiter);
  }

  #overrides(definition: Definition): Record<string, (input: Json) => Promise<Json>> {
    const overrides: Record<string, (input: Json) => Promise<Json>> = {};
    for (const [name, state] of allStates(definition)) {
      if (state.Type !== 'Task') continue;
      const resource = state.Resource ?? '';
      if (resource.startsWith('arn:aws:lambda:')) {
        overrides[name] = async (input) => (await this.#invoke(resource, input)) as Json;
      } else if (resource === 'arn:aws:states:::lambda:invoke') {
        overrides[name] = async (input) => {
          const p = input as { FunctionName: string; Payload?: Json };
          return { StatusCode: 200, Payload: (await this.#invoke(p.FunctionName, p.Payload ?? {})) as Json };
        };
      } else if (resource === 'arn:aws:states:::sqs:sendMessage.waitForTaskToken') {
        overrides[name] = (input) => this.#sendAndWait(state, input);
      } else if (resource === 'arn:aws:states:::sqs:sendMessage') {
        overrides[name] = async (input) => ({ MessageId: await this.#send(input) });
      } else {
        throw new Error(`local mode cannot run Task state "${name}" (${resource})`);
      }
    }
    return overrides;
  }

  /** Send as the service integration does; its errors are named as Step Functions names them. */
  async #send(input: Json): Promise<string> {
    const { QueueUrl, MessageBody } = input as { QueueUrl: string; MessageBody: Json };
    try {
      const out = await this.#sqs.send(
        new SendMessageCommand({
          QueueUrl,
          MessageBody: typeof MessageBody === 'string' ? MessageBody : JSON.stringify(MessageBody),
        }),
      );
      return out.MessageId ?? '';
    } catch (error) {
      const e = error as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
      // The service answered (SQS.AmazonSQSException) or could not be reached (SQS.SdkClientException).
      throw new TaskError(e.$metadata?.httpStatusCode ? 'SQS.AmazonSQSException' : 'SQS.SdkClientException', `${e.name ?? 'Error'}: ${e.message ?? ''}`);
    }
  }

  async #sendAndWait(state: State, input: Json): Promise<Json> {
    const { [LOCAL_TIMING]: timing, ...params } = input as Record<string, Json>;
    const t = (timing ?? {}) as { heartbeatSeconds?: number; timeoutSeconds?: number };
    const token = findToken(params);
    if (!token) throw new TaskError('States.Runtime', 'the message carries no task token');
    const heartbeatSeconds = t.heartbeatSeconds ?? (state['HeartbeatSeconds'] as number | undefined);
    const timeoutSeconds = t.timeoutSeconds ?? (state['TimeoutSeconds'] as number | undefined) ?? 99_999_999;
    const result = new Promise<Json>((resolve, reject) => {
      let heartbeatTimer: NodeJS.Timeout | undefined;
      const fail = (name: string, cause: string) => {
        this.#waiters.delete(token);
        clearTimeout(heartbeatTimer);
        clearTimeout(timeoutTimer);
        reject(new TaskError(name, cause));
      };
      const beat = () => {
        clearTimeout(heartbeatTimer);
        if (heartbeatSeconds) heartbeatTimer = setTimeout(() => fail('States.HeartbeatTimeout', 'no heartbeat in time'), heartbeatSeconds * 1000);
      };
      const timeoutTimer = timeoutSeconds * 1000 <= MAX_TIMER_MS ? setTimeout(() => fail('States.Timeout', 'the task timed out'), timeoutSeconds * 1000) : undefined;
      const settle = () => {
        clearTimeout(heartbeatTimer);
        clearTimeout(timeoutTimer);
      };
      this.#waiters.set(token, {
        resolve: (output) => (settle(), resolve(output)),
        reject: (error) => (settle(), reject(error)),
        heartbeat: beat,
      });
      beat();
    });
    // A heartbeat may lapse while the message is still being sent (a slow queue): the outcome is
    // awaited below, and must not count as unhandled meanwhile.
    result.catch(() => undefined);
    await this.#send(params);
    return result;
  }
}

/** Every state of a definition, nested Map and Parallel states included. */
function allStates(definition: { States: Record<string, State> }): [string, State][] {
  return Object.entries(definition.States).flatMap(([name, state]) => {
    const nested = [
      ...(state['ItemProcessor'] ? [state['ItemProcessor']] : []),
      ...(state['Iterator'] ? [state['Iterator']] : []),
      ...((state['Branches'] as unknown[] | undefined) ?? []),
    ] as { States: Record<string, State> }[];
    return [[name, state] as [string, State], ...nested.flatMap(allStates)];
  });
}

/**
 * HeartbeatSecondsPath / TimeoutSecondsPath read the state's input, which an override does not
 * see: carry their values to the override in the parameters, under a key the override removes
 * (the override keeps those timers itself).
 */
function withLocalTiming(definition: Definition): Definition {
  const copy = structuredClone(definition);
  for (const [, state] of allStates(copy)) {
    // A Task state without a timeout has none to speak of in AWS (99999999 s); the library would
    // give it 60 s, failing a Lambda task that waits its turn behind a burst. Its timers hold 24.8 days.
    if (state.Type === 'Task' && state['TimeoutSeconds'] === undefined) state['TimeoutSeconds'] = Math.floor(MAX_TIMER_MS / 1000);
    const heartbeat = state['HeartbeatSecondsPath'];
    const timeout = state['TimeoutSecondsPath'];
    if (heartbeat === undefined && timeout === undefined) continue;
    state['Parameters'] = {
      ...(state['Parameters'] as object),
      [LOCAL_TIMING]: {
        ...(heartbeat ? { 'heartbeatSeconds.$': heartbeat } : {}),
        ...(timeout ? { 'timeoutSeconds.$': timeout } : {}),
      },
    };
    delete state['HeartbeatSecondsPath'];
    delete state['TimeoutSecondsPath'];
  }
  return copy;
}

function findToken(value: Json): string | undefined {
  if (typeof value === 'string') return value.startsWith(TOKEN_PREFIX) ? value : undefined;
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) {
      const found = findToken(v);
      if (found) return found;
    }
  }
  return undefined;
}
