import { DeleteMessageBatchCommand, ReceiveMessageCommand, type Message, type SQSClient } from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSRecord } from 'aws-lambda';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LocalFunction } from './lambda.ts';
import { REGION } from './template.ts';

export interface EventSourceSpec {
  readonly queueUrl: string;
  readonly queueArn: string;
  readonly batchSize: number;
  readonly reportBatchItemFailures: boolean;
  readonly maximumConcurrency: number;
  /** How many times each batch is handed to the function, at once (the chaos suite's duplicate delivery); default 1. */
  readonly deliveries?: number | undefined;
}

/**
 * An SQS event source mapping: pollers that receive batches, invoke the function with an SQS
 * event, delete what succeeded and leave failures to reappear after the visibility timeout (and,
 * past maxReceiveCount, to move to the DLQ by the queue's own redrive policy).
 */
export class SqsEventSource {
  readonly #sqs: SQSClient;
  readonly #spec: EventSourceSpec;
  readonly #fn: LocalFunction;
  readonly #onError: (error: unknown) => void;
  #running = true;
  #loops: Promise<void>[] = [];
  /** Ends the pollers' long polls at once on stop. */
  readonly #abort = new AbortController();

  constructor(sqs: SQSClient, spec: EventSourceSpec, fn: LocalFunction, onError: (error: unknown) => void) {
    this.#sqs = sqs;
    this.#spec = spec;
    this.#fn = fn;
    this.#onError = onError;
  }

  start(): void {
    for (let i = 0; i < Math.max(1, this.#spec.maximumConcurrency); i += 1) this.#loops.push(this.#poll());
  }

  async stop(): Promise<void> {
    this.#running = false;
    this.#abort.abort();
    await Promise.all(this.#loops);
  }

  async #poll(): Promise<void> {
    while (this.#running) {
      try {
        const out = await this.#sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: this.#spec.queueUrl,
            MaxNumberOfMessages: Math.min(10, this.#spec.batchSize),
            // Short long-polls: fauxqs wakes a waiting receive for a new message, not for one whose
            // visibility timeout ran out (a retry), which would wait out the whole poll.
            WaitTimeSeconds: 1,
            MessageSystemAttributeNames: ['All'],
            MessageAttributeNames: ['All'],
          }),
          { abortSignal: this.#abort.signal },
        );
        const messages = out.Messages ?? [];
        if (messages.length > 0 && this.#running) await this.#deliver(messages);
      } catch (error) {
        if (!this.#running) return;
        this.#onError(error);
        await sleep(500);
      }
    }
  }

  async #deliver(messages: Message[]): Promise<void> {
    const records = messages.map((m) => this.#record(m));
    const failed = new Set<string>();
    // Delivered more than once: a message is done only when every copy is done with it.
    const copies = await Promise.allSettled(
      Array.from({ length: this.#spec.deliveries ?? 1 }, () => this.#fn.invoke({ Records: records }) as Promise<SQSBatchResponse | undefined>),
    );
    for (const copy of copies) {
      if (copy.status === 'rejected') return; // The whole batch returns to the queue.
      if (this.#spec.reportBatchItemFailures) for (const f of copy.value?.batchItemFailures ?? []) failed.add(f.itemIdentifier);
    }
    const done = messages.filter((m) => !failed.has(m.MessageId!));
    if (done.length === 0) return;
    await this.#sqs.send(
      new DeleteMessageBatchCommand({
        QueueUrl: this.#spec.queueUrl,
        Entries: done.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })),
      }),
    );
  }

  #record(m: Message): SQSRecord {
    const a = m.Attributes ?? {};
    return {
      messageId: m.MessageId!,
      receiptHandle: m.ReceiptHandle!,
      body: m.Body ?? '',
      attributes: {
        ApproximateReceiveCount: a['ApproximateReceiveCount'] ?? '1',
        SentTimestamp: a['SentTimestamp'] ?? String(Date.now()),
        SenderId: a['SenderId'] ?? 'local',
        ApproximateFirstReceiveTimestamp: a['ApproximateFirstReceiveTimestamp'] ?? String(Date.now()),
      },
      messageAttributes: {},
      md5OfBody: m.MD5OfBody ?? '',
      eventSource: 'aws:sqs',
      eventSourceARN: this.#spec.queueArn,
      awsRegion: REGION,
    };
  }
}
