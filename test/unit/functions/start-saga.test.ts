import { ExecutionAlreadyExists, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { handlerEnvironment, lambdaContext } from '../../fixtures/lambda.ts';

handlerEnvironment({ STATE_MACHINE_ARN: 'arn:aws:states:us-east-1:000000000000:stateMachine:saga' });
const sfn = mockClient(SFNClient);
let handler: (e: SQSEvent, c: unknown) => Promise<SQSBatchResponse>;

beforeAll(async () => {
  ({ handler } = (await import('#functions/start-saga/handler')) as unknown as { handler: typeof handler });
});
afterEach(() => sfn.reset());

const record = (messageId: string, body: string) => ({ messageId, body, receiptHandle: messageId, attributes: {} });
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
});
