import { ExecutionAlreadyExists, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { ChangeMessageVisibilityCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { handlerEnvironment, lambdaContext } from '../../fixtures/lambda.ts';

handlerEnvironment({
  STATE_MACHINE_ARN: 'arn:aws:states:us-east-1:000000000000:stateMachine:saga',
  STARTS_PER_SECOND: '50',
  INTAKE_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/000000000000/intake',
});
const sfn = mockClient(SFNClient);
const sqs = mockClient(SQSClient);
let handler: (e: SQSEvent, c: unknown) => Promise<SQSBatchResponse>;

beforeAll(async () => {
  ({ handler } = (await import('#functions/start-saga/handler')) as unknown as { handler: typeof handler });
});
afterEach(() => {
  sfn.reset();
  sqs.reset();
});

const record = (messageId: string, body: string, receives = 1) => ({ messageId, body, receiptHandle: messageId, attributes: { ApproximateReceiveCount: String(receives) } });
const ids = ['3f0e1c2a-1b2c-4d3e-8f4a-5b6c7d8e9f00', '3f0e1c2a-1b2c-4d3e-8f4a-5b6c7d8e9f01'];

describe('Function: start-saga handler', () => {
  it('starts one execution per request, named by the request id', async () => {
    sfn.on(StartExecutionCommand).resolves({ executionArn: 'arn' });

    const out = await handler({ Records: ids.map((id, i) => record(`m${String(i)}`, JSON.stringify({ requestId: id }))) } as SQSEvent, lambdaContext());

    expect(out.batchItemFailures).toEqual([]);
    expect(sfn).toHaveReceivedCommandWith(StartExecutionCommand, { name: ids[0], input: JSON.stringify({ requestId: ids[0] }) });
    expect(sfn).toHaveReceivedCommandWith(StartExecutionCommand, { name: ids[1] });
  });

  it('treats an execution that already exists as done', async () => {
    sfn.on(StartExecutionCommand).rejects(new ExecutionAlreadyExists({ message: 'exists', $metadata: {} }));

    const out = await handler({ Records: [record('m0', JSON.stringify({ requestId: ids[0] }))] } as SQSEvent, lambdaContext());

    expect(out.batchItemFailures).toEqual([]);
  });

  it('reports only the messages that failed, so the rest are not redelivered', async () => {
    sfn.on(StartExecutionCommand, { name: ids[0] }).rejects(Object.assign(new Error('throttled'), { name: 'ThrottlingException' }));
    sfn.on(StartExecutionCommand, { name: ids[1] }).resolves({ executionArn: 'arn' });

    const out = await handler(
      { Records: [record('m0', JSON.stringify({ requestId: ids[0] })), record('m1', JSON.stringify({ requestId: ids[1] })), record('m2', 'not json')] } as SQSEvent,
      lambdaContext(),
    );

    expect(out.batchItemFailures.map((f) => f.itemIdentifier).sort()).toEqual(['m0', 'm2']);
  });

  it('puts a throttled start back in the buffer for a backoff that grows with its receives', async () => {
    sfn.on(StartExecutionCommand).rejects(Object.assign(new Error('throttled'), { name: 'ThrottlingException' }));

    const first = await handler({ Records: [record('m0', JSON.stringify({ requestId: ids[0] }), 1)] } as SQSEvent, lambdaContext());
    const fifth = await handler({ Records: [record('m1', JSON.stringify({ requestId: ids[1] }), 5)] } as SQSEvent, lambdaContext());

    expect([...first.batchItemFailures, ...fifth.batchItemFailures]).toEqual([{ itemIdentifier: 'm0' }, { itemIdentifier: 'm1' }]);
    const delays = sqs.commandCalls(ChangeMessageVisibilityCommand).map((c) => [c.args[0].input.ReceiptHandle, c.args[0].input.VisibilityTimeout]);
    expect(delays).toHaveLength(2);
    expect(delays[0]![1]).toBeGreaterThanOrEqual(1);
    expect(delays[0]![1]).toBeLessThanOrEqual(2);
    expect(delays[1]![1]).toBeGreaterThanOrEqual(16);
    expect(delays[1]![1]).toBeLessThanOrEqual(32);
  });

  it('never starts faster than its share of the rate (50 a second here: 20 ms apart)', async () => {
    const at: number[] = [];
    sfn.on(StartExecutionCommand).callsFake(() => {
      at.push(performance.now());
      return { executionArn: 'arn' };
    });
    const many = Array.from({ length: 10 }, (_, i) => record(`m${String(i)}`, JSON.stringify({ requestId: `3f0e1c2a-1b2c-4d3e-8f4a-5b6c7d8e9f1${String(i)}` })));

    const out = await handler({ Records: many } as SQSEvent, lambdaContext());

    expect(out.batchItemFailures).toEqual([]);
    expect(at).toHaveLength(10);
    // Timers may fire a little late, never early (1 ms of rounding allowed).
    for (let i = 1; i < at.length; i += 1) expect(at[i]! - at[i - 1]!).toBeGreaterThanOrEqual(19);
  });
});
