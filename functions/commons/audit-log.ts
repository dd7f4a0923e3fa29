import { GetObjectCommand, paginateListObjectsV2, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { GetCommand, TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import { setTimeout as sleep } from 'node:timers/promises';
import { chainRecord, type AuditEvent, type AuditRecord } from '#core/audit';
import { RetryableError } from '#core/errors';
import { dynamo, s3 } from './clients.ts';
import { requestKey } from './request-store.ts';

/**
 * Appends PII-free records to a request's hash chain. DynamoDB sequences the chain: the request
 * item holds the head (`auditSeq`, `auditHead`), and each record is staged under
 * `AUDIT#<eventId>` in the same transaction, so two writers cannot both take a sequence number
 * and the same state change is never appended twice. The record is then written to the audit
 * bucket (Object Lock in AWS), from the staged copy if a previous attempt died before that.
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
                  UpdateExpression: 'SET auditSeq = :seq, auditHead = :hash',
                  ConditionExpression: previous
                    ? 'auditSeq = :prev'
                    : 'attribute_exists(pk) AND attribute_not_exists(auditSeq)',
                  ExpressionAttributeValues: {
                    ':seq': record.seq,
                    ':hash': record.hash,
                    ...(previous ? { ':prev': previous.seq } : {}),
                  },
                },
              },
              {
                Put: {
                  TableName: this.#table,
                  Item: { ...stagedKey, seq: record.seq, record },
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
export const auditObjectKey = (requestId: string, seq: number) =>
  `${auditPrefix(requestId)}${String(seq).padStart(10, '0')}.json`;

/**
 * Every record of one request's chain as stored in the bucket, in key order. An object that is not
 * JSON is returned as a record that fails verification, never skipped.
 */
export async function readAuditChain(client: S3Client, bucket: string, requestId: string): Promise<AuditRecord[]> {
  const records: AuditRecord[] = [];
  for await (const page of paginateListObjectsV2({ client }, { Bucket: bucket, Prefix: auditPrefix(requestId) })) {
    for (const object of page.Contents ?? []) {
      const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: object.Key }));
      const text = (await out.Body?.transformToString()) ?? '';
      try {
        records.push(JSON.parse(text) as AuditRecord);
      } catch {
        records.push({ requestId, seq: Number.NaN, hash: '', prevHash: '', corrupt: object.Key } as unknown as AuditRecord);
      }
    }
  }
  return records;
}
