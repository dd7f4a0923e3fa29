import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { Worker } from 'node:worker_threads';

export interface FunctionSpec {
  readonly logicalId: string;
  /** Handler source, relative to the project root. */
  readonly entry: string;
  readonly environment: Readonly<Record<string, string>>;
  readonly timeoutSeconds: number;
  readonly memoryMb: number;
}

/** A Lambda error as Step Functions and callers see it: the error's name and message. */
export class LambdaInvocationError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

interface Slot {
  readonly worker: Worker;
  ready: Promise<void>;
  busy: boolean;
  /** The invocation it serves now. */
  current?: string | undefined;
}

/**
 * A function's execution environments: worker threads, each with the function's own environment,
 * each serving one invocation at a time (as Lambda does), up to `maxEnvironments` at once.
 * Everything the handlers write goes to the log sink.
 */
export class LocalFunction {
  readonly spec: FunctionSpec;
  readonly #root: string;
  readonly #log: Writable;
  readonly #max: number;
  readonly #slots: Slot[] = [];
  readonly #waiting: ((slot: Slot) => void)[] = [];
  readonly #pending = new Map<string, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  #stopped = false;

  readonly #preload: string | undefined;

  constructor(spec: FunctionSpec, options: { root: string; log: Writable; maxEnvironments?: number; preload?: string | undefined }) {
    this.spec = spec;
    this.#root = options.root;
    this.#log = options.log;
    this.#max = options.maxEnvironments ?? 2;
    this.#preload = options.preload;
  }

  /** Invocations so far, and their time in an environment (what Lambda bills), in ms. */
  readonly usage = { invocations: 0, ms: 0 };

  async invoke(event: unknown): Promise<unknown> {
    const slot = await this.#acquire();
    this.usage.invocations += 1;
    const started = performance.now();
    try {
      await slot.ready;
      const id = randomUUID();
      return await new Promise((resolve, reject) => {
        this.#pending.set(id, { resolve, reject });
        slot.current = id;
        slot.worker.postMessage({ id, event });
      });
    } finally {
      this.usage.ms += performance.now() - started;
      slot.current = undefined;
      this.#release(slot);
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all(this.#slots.map((s) => s.worker.terminate()));
  }

  async #acquire(): Promise<Slot> {
    if (this.#stopped) throw new Error(`${this.spec.logicalId} is stopped`);
    const idle = this.#slots.find((s) => !s.busy);
    if (idle) {
      idle.busy = true;
      return idle;
    }
    if (this.#slots.length < this.#max) {
      const slot = this.#spawn();
      this.#slots.push(slot);
      return slot;
    }
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  #release(slot: Slot): void {
    const alive = this.#slots.includes(slot);
    const next = this.#waiting.shift();
    if (!next) {
      if (alive) slot.busy = false;
      return;
    }
    if (alive) return next(slot);
    const fresh = this.#spawn();
    this.#slots.push(fresh);
    next(fresh);
  }

  #spawn(): Slot {
    const worker = new Worker(join(this.#root, 'local', 'lambda-worker.ts'), {
      env: { ...this.spec.environment },
      workerData: {
        entry: join(this.#root, this.spec.entry),
        functionName: this.spec.logicalId,
        timeoutMs: this.spec.timeoutSeconds * 1000,
        memoryMb: this.spec.memoryMb,
        preload: this.#preload,
      },
      stdout: true,
      stderr: true,
    });
    const forward = (chunk: Buffer) => this.#log.write(chunk);
    worker.stdout.on('data', forward);
    worker.stderr.on('data', forward);
    const slot: Slot = { worker, ready: Promise.resolve(), busy: true };
    // An environment that dies (crashes, exits, is killed) fails the invocation it served, as Lambda's
    // Runtime.ExitError does, and is replaced by a fresh one for the next.
    const lose = (failure: LambdaInvocationError) => {
      const index = this.#slots.indexOf(slot);
      if (index >= 0) this.#slots.splice(index, 1);
      const pending = slot.current ? this.#pending.get(slot.current) : undefined;
      if (pending && slot.current) {
        this.#pending.delete(slot.current);
        pending.reject(failure);
      }
    };
    const ready = new Promise<void>((resolve, reject) => {
      worker.on('exit', (code) => {
        const failure = new LambdaInvocationError('Runtime.ExitError', `${this.spec.logicalId}: the execution environment exited (code ${String(code)})`);
        reject(failure);
        lose(failure);
      });
      worker.on('message', (m: { ready?: true; id?: string; ok?: boolean; result?: unknown; error?: { name: string; message: string } }) => {
        if (m.ready) return resolve();
        const pending = m.id ? this.#pending.get(m.id) : undefined;
        if (!pending || !m.id) return;
        this.#pending.delete(m.id);
        if (m.ok) pending.resolve(m.result);
        else pending.reject(new LambdaInvocationError(m.error?.name ?? 'Error', m.error?.message ?? ''));
      });
      worker.on('error', (error) => {
        const failure = new LambdaInvocationError('Runtime.ImportModuleError', `${this.spec.logicalId}: ${error.message}`);
        reject(failure);
        lose(failure);
      });
    });
    ready.catch(() => undefined);
    return Object.assign(slot, { ready });
  }
}
