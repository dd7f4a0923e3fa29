import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { AwsApiError } from './step-functions.ts';
import { ACCOUNT, REGION } from './template.ts';

export interface RuleSpec {
  readonly name: string;
  /** `default` or the bus name. */
  readonly bus: string;
  readonly pattern: Record<string, unknown>;
  readonly targets: readonly { functionArn: string; deadLetterQueueUrl?: string | undefined; retryAttempts: number }[];
}

export interface BusEvent {
  readonly version: '0';
  readonly id: string;
  readonly 'detail-type': string;
  readonly source: string;
  readonly account: string;
  readonly time: string;
  readonly region: string;
  readonly resources: string[];
  readonly detail: unknown;
}

/**
 * EventBridge for local mode: PutEvents on the stack's buses, rules matched with EventBridge's
 * pattern semantics (exact values, prefix, anything-but, exists, nested objects), each target
 * invoked asynchronously with retries and, when they run out, the event sent to its DLQ.
 */
export class LocalEventBus {
  readonly #rules: readonly RuleSpec[];
  readonly #invoke: (functionArn: string, event: BusEvent) => Promise<unknown>;
  readonly #deadLetter: (queueUrl: string, body: string) => Promise<void>;
  readonly #inFlight = new Set<Promise<void>>();
  readonly #archive: ((bus: string, event: BusEvent) => void) | undefined;

  constructor(options: {
    rules: readonly RuleSpec[];
    invokeFunction: (functionArn: string, event: BusEvent) => Promise<unknown>;
    deadLetter: (queueUrl: string, body: string) => Promise<void>;
    /** Sees every event on every bus before it is routed, as an EventBridge archive would keep it. */
    archive?: (bus: string, event: BusEvent) => void;
  }) {
    this.#archive = options.archive;
    this.#rules = options.rules;
    this.#invoke = options.invokeFunction;
    this.#deadLetter = options.deadLetter;
  }

  handle(operation: string, body: Record<string, unknown>): unknown {
    if (operation !== 'PutEvents') throw new AwsApiError('UnknownOperationException', `local mode does not serve ${operation}`);
    const entries = (body['Entries'] as Record<string, unknown>[] | undefined) ?? [];
    if (entries.length < 1 || entries.length > 10) {
      throw new AwsApiError('ValidationException', 'PutEvents takes 1 to 10 entries');
    }
    const results = entries.map((entry) => this.#put(entry));
    return { FailedEntryCount: results.filter((r) => 'ErrorCode' in r).length, Entries: results };
  }

  /** Deliver an event Lethe's own emulators produce (e.g. execution status changes on the default bus). */
  publish(bus: string, event: Omit<BusEvent, 'version' | 'id' | 'account' | 'region' | 'time'>): void {
    this.#route(bus, { version: '0', id: randomUUID(), account: ACCOUNT, region: REGION, time: new Date().toISOString(), ...event });
  }

  /** Wait until every delivery under way has finished (for orderly shutdown). */
  async drain(): Promise<void> {
    await Promise.all([...this.#inFlight]);
  }

  #put(entry: Record<string, unknown>): { EventId: string } | { ErrorCode: string; ErrorMessage: string } {
    const source = entry['Source'];
    const detailType = entry['DetailType'];
    const detail = entry['Detail'];
    if (typeof source !== 'string' || typeof detailType !== 'string' || typeof detail !== 'string') {
      return { ErrorCode: 'MalformedDetail', ErrorMessage: 'Source, DetailType and Detail are required' };
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(detail);
    } catch {
      return { ErrorCode: 'MalformedDetail', ErrorMessage: 'Detail is not valid JSON' };
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      return { ErrorCode: 'MalformedDetail', ErrorMessage: 'Detail must be a JSON object' };
    }
    const id = randomUUID();
    const busName = busNameOf((entry['EventBusName'] as string | undefined) ?? 'default');
    this.#route(busName, {
      version: '0',
      id,
      'detail-type': detailType,
      source,
      account: ACCOUNT,
      time: typeof entry['Time'] === 'string' ? entry['Time'] : new Date().toISOString(),
      region: REGION,
      resources: (entry['Resources'] as string[] | undefined) ?? [],
      detail: parsed,
    });
    return { EventId: id };
  }

  #route(bus: string, event: BusEvent): void {
    this.#archive?.(bus, event);
    for (const rule of this.#rules) {
      if (rule.bus !== bus || !matches(rule.pattern, event)) continue;
      for (const target of rule.targets) {
        const delivery = this.#deliver(target, event).finally(() => this.#inFlight.delete(delivery));
        this.#inFlight.add(delivery);
      }
    }
  }

  async #deliver(target: RuleSpec['targets'][number], event: BusEvent): Promise<void> {
    for (let attempt = 0; attempt <= target.retryAttempts; attempt += 1) {
      try {
        await this.#invoke(target.functionArn, event);
        return;
      } catch {
        await sleep(Math.min(100 * 2 ** attempt, 2000));
      }
    }
    if (target.deadLetterQueueUrl) await this.#deadLetter(target.deadLetterQueueUrl, JSON.stringify(event));
  }
}

const busNameOf = (nameOrArn: string) => (nameOrArn.startsWith('arn:') ? nameOrArn.split('/').pop()! : nameOrArn);

/** EventBridge pattern matching: every key of the pattern must match the event. */
export function matches(pattern: Record<string, unknown>, event: unknown): boolean {
  return Object.entries(pattern).every(([key, rule]) => {
    const value = (event as Record<string, unknown> | undefined)?.[key];
    if (Array.isArray(rule)) return rule.some((r) => matchValue(r, value));
    if (rule && typeof rule === 'object') return matches(rule as Record<string, unknown>, value);
    throw new Error(`invalid event pattern at ${key}`);
  });
}

function matchValue(rule: unknown, value: unknown): boolean {
  if (Array.isArray(value)) return value.some((v) => matchValue(rule, v));
  if (rule === null || typeof rule !== 'object') return rule === value;
  const [op, arg] = Object.entries(rule as Record<string, unknown>)[0] ?? [];
  switch (op) {
    case 'prefix':
      return typeof value === 'string' && value.startsWith(arg as string);
    case 'suffix':
      return typeof value === 'string' && value.endsWith(arg as string);
    case 'exists':
      return (value !== undefined) === arg;
    case 'anything-but':
      return Array.isArray(arg) ? !arg.includes(value) : value !== arg;
    default:
      throw new Error(`local mode does not support the event pattern operator ${String(op)}`);
  }
}
