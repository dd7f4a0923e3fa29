import { GetObjectCommand, paginateListObjectsV2, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { GetCommand, TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import { setTimeout as sleep } from 'node:timers/promises';
import { chainRecord, type AuditEvent, type AuditRecord } from '#core/audit';
import { recordKey, type StoredObject } from '#core/log';
import { RetryableError } from '#core/errors';
import { dynamo, s3 } from './clients.ts';
import { requestKey } from './request-store.ts';
import { unloggedAttributes } from './transparency-log.ts';

/**
 * Appends PII-free records to a request's hash chain. DynamoDB sequences the chain: the request
 * item holds the head (`auditSeq`, `auditHead`), and each record is staged under
 * `AUDIT#<eventId>` in the same transaction, so two writers cannot both take a sequence number
 * and the same state change is never appended twice. The record is then written to the audit
 * bucket (Object Lock in AWS), from the staged copy if a previous attempt died before that. The
 * staged copy waits in the Unlogged index until the sequencer makes it a leaf of the audit log
 * (`transparency-log.ts`).
 */
export class AuditLog {
  readonly #table: string;
  readonly #bucket: string;

  constructor(table: string, bucket: string) {
    this.#table = table;
    this.#bucket = bucket;
  }

  async append(requestId: string, event: AuditEvent): Promise<AuditRecord> {
    const stagedKey = { pk: `REQ#${requestId}`, sk: `AUDIT#${event.eventId}` };
    for (let attempt = 0; attempt < 20; attempt += 1) {
      const staged = await dynamo.send(new GetCommand({ TableName: this.#table, Key: stagedKey, ConsistentRead: true }));
      if (staged.Item) {
        const record = staged.Item['record'] as AuditRecord;
        await this.#publish(record);
        return record;
      }
      const head = await dynamo.send(
        new GetCommand({
          TableName: this.#table,
          Key: requestKey(requestId),
          ProjectionExpression: 'auditSeq, auditHead',
          ConsistentRead: true,
        }),
      );
      const seq = head.Item?.['auditSeq'] as number | undefined;
      const previous = seq === undefined ? undefined : { seq, hash: head.Item?.['auditHead'] as string };
      const record = chainRecord(requestId, previous, event);
      try {
        await dynamo.send(
          new TransactWriteCommand({
            TransactItems: [
              {
                Update: {
                  TableName: this.#table,
                  Key: requestKey(requestId),
                  UpdateExpression: 'SET auditSeq = :seq, auditHead = :hash, auditHeadEvent = :event',
                  ConditionExpression: previous
                    ? 'auditSeq = :prev'
                    : 'attribute_exists(pk) AND attribute_not_exists(auditSeq)',
                  ExpressionAttributeValues: {
                    ':seq': record.seq,
                    ':hash': record.hash,
                    ':event': event.eventId,
                    ...(previous ? { ':prev': previous.seq } : {}),
                  },
                },
              },
              {
                Put: {
                  TableName: this.#table,
                  Item: { ...stagedKey, seq: record.seq, record, ...unloggedAttributes(record) },
                  ConditionExpression: 'attribute_not_exists(pk)',
                },
              },
            ],
          }),
        );
      } catch (error) {
        const name = (error as { name?: string }).name;
        if (name === 'TransactionCanceledException' || name === 'TransactionConflictException') {
          await sleep(5 + Math.random() * 20 * (attempt + 1));
          continue;
        }
        throw new RetryableError(`audit chain of ${requestId}: ${name ?? 'Error'}`, { cause: error });
      }
      await this.#publish(record);
      return record;
    }
    throw new RetryableError(`audit chain of ${requestId}: too much contention`);
  }

  async #publish(record: AuditRecord): Promise<void> {
    try {
      await s3.send(
        new PutObjectCommand({
          Bucket: this.#bucket,
          Key: auditObjectKey(record.requestId, record.seq),
          Body: JSON.stringify(record),
          ContentType: 'application/json',
        }),
      );
    } catch (error) {
      throw new RetryableError(`audit bucket: ${(error as { name?: string }).name ?? 'Error'}`, { cause: error });
    }
  }
}

export const auditPrefix = (requestId: string) => `audit/${requestId}/`;
export const auditObjectKey = recordKey;

/**
 * Every record of one request's chain as stored in the bucket, in key order. An object that is not
 * JSON is returned as a record that fails verification, never skipped.
 */
export async function readAuditChain(client: S3Client, bucket: string, requestId: string): Promise<AuditRecord[]> {
  return (await readObjects(client, bucket, auditPrefix(requestId))).map(({ key, body }) => asRecord(requestId, key, body));
}

/** Every record the audit bucket holds: each request's chain in key order, and each record's hash by its key. */
export async function readAuditRecords(client: S3Client, bucket: string) {
  const chains = new Map<string, AuditRecord[]>();
  const records = new Map<string, string>();
  for (const { key, body } of await readObjects(client, bucket, 'audit/')) {
    const requestId = key.split('/')[1] ?? '';
    const record = asRecord(requestId, key, body);
    chains.set(requestId, [...(chains.get(requestId) ?? []), record]);
    records.set(key, record.hash);
  }
  return { chains, records };
}

/** The audit log as the bucket holds it: its batches of leaves and its tree heads, in key order. */
export async function readAuditLog(client: S3Client, bucket: string) {
  const [batches, heads] = await Promise.all([readObjects(client, bucket, 'log/leaves/'), readObjects(client, bucket, 'log/heads/')]);
  return { batches, heads };
}

/** The objects under a prefix in key order, parsed as JSON (`undefined` for what is not). */
async function readObjects(client: S3Client, bucket: string, prefix: string): Promise<StoredObject[]> {
  const objects: StoredObject[] = [];
  for await (const page of paginateListObjectsV2({ client }, { Bucket: bucket, Prefix: prefix })) {
    const read = await Promise.all(
      (page.Contents ?? []).map(async ({ Key: key }) => {
        const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        const text = (await out.Body?.transformToString()) ?? '';
        try {
          return { key: key!, body: JSON.parse(text) as unknown };
        } catch {
          return { key: key!, body: undefined };
        }
      }),
    );
    objects.push(...read);
  }
  return objects;
}

/** A stored record, or one that fails verification in its place when the object is not a record. */
function asRecord(requestId: string, key: string, body: unknown): AuditRecord {
  return body !== null && typeof body === 'object' ? (body as AuditRecord) : ({ requestId, seq: Number.NaN, hash: '', prevHash: '', corrupt: key } as unknown as AuditRecord);
}
