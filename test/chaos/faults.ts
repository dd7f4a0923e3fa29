/**
 * The chaos suite's fault injection, loaded into each of local mode's function environments before
 * the handler (local mode's `faults.preload`). It wraps `run` of the connectors the chaos data map
 * uses: before each call it asks the harness's oracle (LETHE_CHAOS_ORACLE) what this call meets —
 * nothing, a retryable or a permanent error, a connector slower than its heartbeat, or the death of
 * the execution environment in the middle of its batch — and tells the oracle how the call ended,
 * so the harness keeps an exact ledger of the side effects each task had.
 *
 * The chaos data lake lives in a versioned bucket (LETHE_CHAOS_LAKE_BUCKET) served by the harness
 * (LETHE_CHAOS_VERSIONED_S3, since local mode's S3 keeps no versions): every S3 call on it goes
 * there, and before the lake connector deletes an object version — once it has written the
 * version that replaces it — the oracle may have the environment die (`torn`).
 */
import { DeleteObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { randomUUID } from 'node:crypto';
import { ConnectorPermanentError, ConnectorRetryableError } from '#core/errors';
import type { Connector, ConnectorCommand, ConnectorResult } from '#core/ports';
import { SqlConnector } from '#connectors/sql/connector';
import { DynamoDbConnector } from '#connectors/dynamodb/connector';
import { S3Connector } from '#connectors/s3/connector';
import { HttpConnector } from '#connectors/http/connector';
import { WebhookConnector } from '#connectors/webhook/connector';

export type Fault = 'none' | 'retryable' | 'permanent' | 'slow' | 'crash' | 'torn';
export interface FaultAnswer {
  readonly fault: Fault;
  readonly call: number;
  readonly slowMs: number;
}

const oracle = process.env['LETHE_CHAOS_ORACLE'];

async function ask(path: string, body: object): Promise<FaultAnswer> {
  const response = await fetch(`${oracle!}${path}`, { method: 'POST', body: JSON.stringify(body) });
  return (await response.json()) as FaultAnswer;
}

/** This execution environment, so the oracle knows which calls die with it. */
const environment = randomUUID();

if (oracle) {
  for (const type of [SqlConnector, DynamoDbConnector, S3Connector, HttpConnector, WebhookConnector]) {
    const prototype = type.prototype as Connector;
    const original = prototype.run;
    prototype.run = async function (this: Connector, command: ConnectorCommand): Promise<ConnectorResult> {
      const task = { kind: this.kind, requestId: command.requestId, action: command.action, environment };
      const { fault, call, slowMs } = await ask('/start', task);
      if (fault === 'crash') {
        // In a worker thread this ends the environment, with whatever else of its batch it was doing.
        await ask('/crash', { environment });
        process.exit(70);
      }
      if (fault === 'retryable') throw new ConnectorRetryableError(`chaos: injected retryable fault (call ${String(call)})`);
      if (fault === 'permanent') throw new ConnectorPermanentError(`chaos: injected permanent fault (call ${String(call)})`);
      const running = { ...task, call };
      try {
        if (fault === 'slow') await new Promise((ok) => setTimeout(ok, slowMs));
        const result = await original.call(this, command);
        await ask('/end', { ...running, ok: true, affected: result.affected });
        return result;
      } catch (error) {
        await ask('/end', { ...running, ok: false, error: (error as Error).name });
        throw error;
      }
    };
  }
}

const versionedS3 = process.env['LETHE_CHAOS_VERSIONED_S3'];
const lakeBucket = process.env['LETHE_CHAOS_LAKE_BUCKET'];
if (oracle && versionedS3 && lakeBucket) {
  const lake = new S3Client({ endpoint: versionedS3, region: process.env['AWS_REGION'] ?? 'eu-west-1', forcePathStyle: true, credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
  type Send = (this: S3Client, command: { input: object }) => Promise<unknown>;
  const prototype = S3Client.prototype as unknown as { send: Send };
  const send = prototype.send;
  prototype.send = async function (this: S3Client, command: { input: object }): Promise<unknown> {
    const input = command.input as { Bucket?: string; VersionId?: string };
    if (this === lake || input.Bucket !== lakeBucket) return send.call(this, command);
    if (command instanceof DeleteObjectCommand && input.VersionId) {
      const { fault } = await ask('/tear', { environment });
      if (fault === 'torn') {
        await ask('/crash', { environment });
        process.exit(70);
      }
    }
    return send.call(lake, command);
  };
}
