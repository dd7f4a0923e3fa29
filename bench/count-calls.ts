/**
 * Loaded into each of local mode's function environments (and the benchmark's own thread) before
 * anything else: counts every AWS call the code makes, by service and operation, in the units AWS
 * bills, and the KMS calls local mode's key provider stands in for. Counts go to the benchmark on
 * a BroadcastChannel.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { S3Client } from '@aws-sdk/client-s3';
import { SFNClient } from '@aws-sdk/client-sfn';
import { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { BroadcastChannel } from 'node:worker_threads';
import { LocalKeyService } from '#functions/commons/keys';
import { LocalReceiptSigner } from '#functions/commons/receipts';

export const CHANNEL = 'lethe-bench-calls';
export interface Counted {
  readonly fn: string;
  readonly op: string;
  /** What AWS bills for it, by Usage key. */
  readonly units: Record<string, number>;
}

const channel = new BroadcastChannel(CHANNEL);
channel.unref();
const fn = process.env['AWS_LAMBDA_FUNCTION_NAME'] ?? 'local-mode';
const post = (op: string, units: Record<string, number>) => channel.postMessage({ fn, op, units } satisfies Counted);

type Input = Record<string, unknown>;
const items = (input: Input, key: string) => Object.values((input[key] ?? {}) as Record<string, unknown[] | { Keys?: unknown[] }>).reduce<number>((n, v) => n + (Array.isArray(v) ? v.length : (v.Keys?.length ?? 0)), 0);

/** DynamoDB request units of one call (items up to 1 KB written, 4 KB read: Lethe's are). */
function dynamoUnits(op: string, input: Input): Record<string, number> {
  const read = input['ConsistentRead'] ? 1 : 0.5;
  switch (op) {
    case 'Put': case 'PutItem': case 'Update': case 'UpdateItem': case 'Delete': case 'DeleteItem':
      return { dynamoWriteUnits: 1 };
    case 'BatchWrite': case 'BatchWriteItem':
      return { dynamoWriteUnits: items(input, 'RequestItems') };
    case 'TransactWrite': case 'TransactWriteItems':
      return { dynamoWriteUnits: 2 * ((input['TransactItems'] as unknown[] | undefined)?.length ?? 0) };
    case 'BatchGet': case 'BatchGetItem':
      return { dynamoReadUnits: 0.5 * items(input, 'RequestItems') };
    case 'TransactGet': case 'TransactGetItems':
      return { dynamoReadUnits: 2 * ((input['TransactItems'] as unknown[] | undefined)?.length ?? 0) };
    default: // Get, Query, Scan of small items
      return { dynamoReadUnits: read };
  }
}

const S3_GET = new Set(['GetObject', 'HeadObject', 'HeadBucket']);
const S3_FREE = new Set(['DeleteObject', 'DeleteObjects']);

for (const [service, type] of [
  ['DynamoDB', DynamoDBClient],
  ['DynamoDB', DynamoDBDocumentClient],
  ['SQS', SQSClient],
  ['S3', S3Client],
  ['SFN', SFNClient],
  ['EventBridge', EventBridgeClient],
] as const) {
  const prototype = type.prototype as unknown as { send: (command: { constructor: { name: string }; input: Input }, ...rest: unknown[]) => Promise<unknown> };
  const send = prototype.send;
  prototype.send = async function (this: unknown, command, ...rest) {
    const op = command.constructor.name.replace(/Command$/, '');
    const out = await send.call(this, command, ...rest);
    const units =
      service === 'DynamoDB' ? dynamoUnits(op, command.input)
      : service === 'SQS' ? (op === 'ReceiveMessage' && !((out as { Messages?: unknown[] }).Messages?.length) ? { idleSqsRequests: 1 } : { sqsRequests: 1 })
      : service === 'S3' ? (S3_FREE.has(op) ? {} : S3_GET.has(op) ? { s3GetRequests: 1 } : { s3PutRequests: 1 })
      : service === 'EventBridge' ? { eventBridgeEvents: (command.input['Entries'] as unknown[] | undefined)?.length ?? 0 }
      : {}; // Step Functions bills transitions, not API calls
    post(`${service}.${op}`, units);
    return out;
  };
}

// Local mode's key provider and receipt signer stand in for KMS.
for (const [name, op, units] of [
  ['generateDataKey', 'KMS.GenerateDataKey', { kmsRequests: 1 }],
  ['unwrapDataKey', 'KMS.Decrypt', { kmsRequests: 1 }],
] as const) {
  const prototype = LocalKeyService.prototype as unknown as Record<string, (...args: unknown[]) => unknown>;
  const original = prototype[name]!;
  prototype[name] = function (this: unknown, ...args: unknown[]) {
    post(op, units);
    return original.apply(this, args);
  };
}
const signer = LocalReceiptSigner.prototype as unknown as { sign: (this: LocalReceiptSigner, message: Uint8Array) => Promise<Uint8Array> };
const sign = signer.sign;
signer.sign = function (this: LocalReceiptSigner, message: Uint8Array) {
  post('KMS.Sign', { kmsSignRequests: 1 });
  return sign.call(this, message);
};
