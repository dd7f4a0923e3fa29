import { HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { BatchGetCommand, BatchWriteCommand, type BatchGetCommandOutput, GetCommand, QueryCommand, TransactWriteCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { createHash, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AuditRecord } from '#core/audit';
import { RetryableError } from '#core/errors';
import {
  bytesOf,
  hexOf,
  leafBatchKey,
  recordKey,
  LOG_FORMAT_VERSION,
  recordLeafHash,
  treeHeadKey,
  UNLOGGED_INDEX,
  UNLOGGED_SHARDS,
  type LeafBatch,
  type TreeHead,
  type TreeHeadBody,
} from '#core/log';
import { appendLeaves, compactRoot, consistencyRanges, inclusionRanges, nodesOf, rangeHash, type CompactTree, type Hash, type Range } from '#core/merkle';
import type { ReceiptSigner } from '#core/ports';
import { canonicalBytes, SIGNATURE_ALG } from '#core/signing';
import { dynamo, s3 } from './clients.ts';
import { isConditionFailure } from './request-store.ts';
import { eachInParallel } from './sweep.ts';

/** What one transaction logs: 99 records and the log's head (DynamoDB's limit is 100 items). */
const PER_TRANSACTION = 99;
const HEAD_KEY = { pk: 'LOG', sk: 'HEAD' };
const nodeKey = (level: number, index: number) => ({ pk: `LOGNODE#${String(level)}#${String(index)}`, sk: 'NODE' });

/** The Unlogged index attributes a staged audit record carries until it is logged. */
export function unloggedAttributes(record: AuditRecord): { unlogged: string; unloggedAt: string } {
  const shard = createHash('sha256').update(record.requestId).digest().readUInt8(0) % UNLOGGED_SHARDS;
  return { unlogged: `U#${String(shard)}`, unloggedAt: `${record.at}#${record.requestId}#${String(record.seq).padStart(10, '0')}` };
}

interface HeadItem {
  size?: number;
  frontier?: string[];
  published?: number;
  treeHead?: TreeHead;
  pending?: TreeHead;
  lockOwner?: string;
}

interface Staged {
  pk: string;
  sk: string;
  record: AuditRecord;
}

/**
 * The audit log's sequencer and reader, over the requests table and the audit bucket.
 *
 * The table holds the log's state under `LOG/HEAD` (size, the compact tree's frontier, the last
 * published tree head, a lease), and every perfect subtree's root under `LOGNODE#<level>#<index>`
 * (leaves with their record's id), written once, before the transaction that grows the tree past
 * them, so a proof for any published head needs only O(log² n) reads. One sequencer runs at a
 * time (the lease, and reserved concurrency 1 in AWS). Each run:
 *
 * 1. publishes whatever an earlier run committed but did not publish, byte for byte as it signed it;
 * 2. takes records from the Unlogged index, re-reads them consistently, orders them by time, and
 *    commits them in transactions of 99: the head's new size and frontier, and on each record its
 *    `logIndex` (conditional on having none), so no record is ever logged twice;
 * 3. signs a tree head for the new size, keeps it in the table, then writes the batch of new leaves
 *    and the head to the bucket, and only then marks them published.
 */
export class TransparencyLog {
  readonly #table: string;
  readonly #bucket: string;
  readonly #signer: ReceiptSigner;

  constructor(table: string, bucket: string, signer: ReceiptSigner) {
    this.#table = table;
    this.#bucket = bucket;
    this.#signer = signer;
  }

  /** Log what is waiting, until there is nothing left or `until` (epoch ms) passes. */
  async sequence(until: number, leaseSeconds = 300): Promise<{ appended: number; treeSize: number; busy?: true }> {
    const owner = randomUUID();
    const now = Date.now();
    let head: HeadItem;
    try {
      const out = await dynamo.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: HEAD_KEY,
          UpdateExpression: 'SET lockedUntil = :until, lockOwner = :owner',
          ConditionExpression: 'attribute_not_exists(lockedUntil) OR lockedUntil < :now',
          ExpressionAttributeValues: { ':until': now + leaseSeconds * 1000, ':owner': owner, ':now': now },
          ReturnValues: 'ALL_NEW',
        }),
      );
      head = out.Attributes as HeadItem;
    } catch (error) {
      if (isConditionFailure(error)) return { appended: 0, treeSize: -1, busy: true };
      throw new RetryableError('audit log: take the lease', { cause: error });
    }
    let tree: CompactTree = { size: head.size ?? 0, frontier: (head.frontier ?? []).map(bytesOf) };
    let published = head.published ?? 0;
    let pending = head.pending;
    let appended = 0;
    try {
      if (published < tree.size || pending) ({ published, pending } = await this.#publish(owner, tree, published, pending));
      while (Date.now() < until) {
        const waiting = await this.#waiting(500);
        if (waiting.length === 0) break;
        await this.#ensureInBucket(waiting);
        let committed = 0;
        for (let i = 0; i < waiting.length; i += PER_TRANSACTION) {
          const next = await this.#commit(owner, tree, waiting.slice(i, i + PER_TRANSACTION));
          if (!next) break;
          committed += next.size - tree.size;
          tree = next;
        }
        appended += committed;
        if (committed === 0) break;
      }
      if (published < tree.size) await this.#publish(owner, tree, published, pending);
    } finally {
      await dynamo
        .send(
          new UpdateCommand({
            TableName: this.#table,
            Key: HEAD_KEY,
            UpdateExpression: 'REMOVE lockedUntil, lockOwner',
            ConditionExpression: 'lockOwner = :owner',
            ExpressionAttributeValues: { ':owner': owner },
          }),
        )
        .catch(() => undefined); // the lease runs out by itself
    }
    return { appended, treeSize: tree.size };
  }

  /** The newest published tree head, if any. */
  async latest(): Promise<TreeHead | undefined> {
    const out = await this.#get(HEAD_KEY, 'treeHead');
    return out?.['treeHead'] as TreeHead | undefined;
  }

  /** Where a staged audit record (`AUDIT#<eventId>` of a request) is in the log, once it is. */
  async leafIndexOf(requestId: string, eventId: string): Promise<number | undefined> {
    const item = await this.#get({ pk: `REQ#${requestId}`, sk: `AUDIT#${eventId}` }, 'logIndex');
    return item?.['logIndex'] as number | undefined;
  }

  /** A leaf's inclusion proof under the newest published tree head; undefined while that head does not cover it. */
  async inclusion(leafIndex: number): Promise<{ treeHead: TreeHead; inclusionProof: string[] } | undefined> {
    const treeHead = await this.latest();
    if (!treeHead || leafIndex >= treeHead.treeSize) return undefined;
    return { treeHead, inclusionProof: await this.#proof(inclusionRanges(leafIndex, treeHead.treeSize)) };
  }

  /** The roots of these ranges of leaves, from the stored perfect subtrees, hex. */
  async #proof(ranges: readonly Range[]): Promise<string[]> {
    const nodes = await this.#nodes(ranges.flatMap(nodesOf));
    const proof = ranges.map((r) =>
      rangeHash(r, (level, index) => {
        const hash = nodes.get(`${String(level)}#${String(index)}`);
        if (!hash) throw new RetryableError(`audit log: node ${String(level)}/${String(index)} is missing`);
        return hash;
      }),
    );
    return proof.map(hexOf);
  }

  /** The consistency proof from the tree of `from` leaves to the tree of `to` (default: the newest published head's size). */
  async consistency(from: number, to?: number): Promise<{ treeHead: TreeHead; from: number; to: number; proof: string[] } | undefined> {
    const treeHead = await this.latest();
    const size = to ?? treeHead?.treeSize;
    if (!treeHead || size === undefined || size > treeHead.treeSize || from > size) return undefined;
    return { treeHead, from, to: size, proof: await this.#proof(consistencyRanges(from, size)) };
  }

  /** Records waiting to be logged, read back consistently (the index lags), oldest first. */
  async #waiting(limit: number): Promise<Staged[]> {
    const keys: { pk: string; sk: string }[] = [];
    for (let shard = 0; shard < UNLOGGED_SHARDS; shard += 1) {
      const out = await dynamo.send(
        new QueryCommand({
          TableName: this.#table,
          IndexName: UNLOGGED_INDEX,
          KeyConditionExpression: '#shard = :shard',
          ExpressionAttributeNames: { '#shard': 'unlogged' },
          ExpressionAttributeValues: { ':shard': `U#${String(shard)}` },
          ProjectionExpression: 'pk, sk',
          Limit: Math.ceil(limit / UNLOGGED_SHARDS),
        }),
      );
      for (const item of out.Items ?? []) keys.push({ pk: item['pk'] as string, sk: item['sk'] as string });
    }
    const items = await this.#batchGet(keys, 'pk, sk, #record, logIndex', { '#record': 'record' });
    return items
      .filter((item) => item['logIndex'] === undefined && item['record'] !== undefined)
      .map((item) => item as unknown as Staged)
      .sort((a, b) => a.record.at.localeCompare(b.record.at) || a.record.requestId.localeCompare(b.record.requestId) || a.record.seq - b.record.seq);
  }

  /** Append records: their nodes first, then one transaction. Undefined when the transaction was refused (nothing changed). */
  async #commit(owner: string, tree: CompactTree, staged: readonly Staged[]): Promise<CompactTree | undefined> {
    const next = appendLeaves(tree, staged.map((s) => recordLeafHash(s.record.hash)));
    await this.#batchWrite(
      next.nodes.map((n) => {
        const leaf = n.level === 0 ? staged[n.index - tree.size]!.record : undefined;
        return { ...nodeKey(n.level, n.index), hash: hexOf(n.hash), ...(leaf && { requestId: leaf.requestId, seq: leaf.seq, recordHash: leaf.hash }) };
      }),
    );
    try {
      await dynamo.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Update: {
                TableName: this.#table,
                Key: HEAD_KEY,
                UpdateExpression: 'SET #size = :size, frontier = :frontier',
                ConditionExpression: tree.size === 0 ? 'lockOwner = :owner AND attribute_not_exists(#size)' : 'lockOwner = :owner AND #size = :old',
                ExpressionAttributeNames: { '#size': 'size' },
                ExpressionAttributeValues: {
                  ':size': next.tree.size,
                  ':frontier': next.tree.frontier.map(hexOf),
                  ':owner': owner,
                  ...(tree.size > 0 && { ':old': tree.size }),
                },
              },
            },
            ...staged.map((s, i) => ({
              Update: {
                TableName: this.#table,
                Key: { pk: s.pk, sk: s.sk },
                UpdateExpression: 'SET logIndex = :index REMOVE #shard, unloggedAt',
                ConditionExpression: 'attribute_exists(pk) AND attribute_not_exists(logIndex)',
                ExpressionAttributeNames: { '#shard': 'unlogged' },
                ExpressionAttributeValues: { ':index': tree.size + i },
              },
            })),
          ],
        }),
      );
    } catch (error) {
      if ((error as { name?: string }).name === 'TransactionCanceledException') return undefined;
      throw new RetryableError('audit log: commit leaves', { cause: error });
    }
    return next.tree;
  }

  /** Sign (or reuse the signed) head of `tree`, write the new leaves and the head to the bucket, then mark them published. */
  async #publish(owner: string, tree: CompactTree, published: number, pending: TreeHead | undefined): Promise<{ published: number; pending: undefined }> {
    let head = pending;
    if (head?.treeSize !== tree.size) {
      const body: TreeHeadBody = {
        v: LOG_FORMAT_VERSION,
        treeSize: tree.size,
        rootHash: hexOf(compactRoot(tree)),
        timestamp: new Date().toISOString(),
        keyId: this.#signer.keyId,
        alg: SIGNATURE_ALG,
      };
      head = { ...body, signature: Buffer.from(await this.#signer.sign(canonicalBytes(body))).toString('base64') };
      await this.#update('SET pending = :head', owner, { ':head': head });
    }
    if (tree.size > published) {
      const leaves = await this.#batchGet(
        Array.from({ length: tree.size - published }, (_, i) => nodeKey(0, published + i)),
        'pk, requestId, seq, recordHash',
      );
      const byKey = new Map(leaves.map((l) => [l['pk'] as string, l]));
      const batch: LeafBatch = {
        v: LOG_FORMAT_VERSION,
        first: published,
        leaves: Array.from({ length: tree.size - published }, (_, i) => {
          const leaf = byKey.get(nodeKey(0, published + i).pk);
          if (!leaf) throw new RetryableError(`audit log: leaf ${String(published + i)} is missing`);
          return { requestId: leaf['requestId'] as string, seq: leaf['seq'] as number, hash: leaf['recordHash'] as string };
        }),
      };
      await this.#put(leafBatchKey(published), batch);
    }
    await this.#put(treeHeadKey(head.treeSize), head);
    await this.#update('SET published = :size, treeHead = :head REMOVE pending', owner, { ':size': tree.size, ':head': head });
    return { published: tree.size, pending: undefined };
  }

  async #update(expression: string, owner: string, values: Record<string, unknown>): Promise<void> {
    try {
      await dynamo.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: HEAD_KEY,
          UpdateExpression: expression,
          ConditionExpression: 'lockOwner = :owner',
          ExpressionAttributeValues: { ...values, ':owner': owner },
        }),
      );
    } catch (error) {
      throw new RetryableError(isConditionFailure(error) ? 'audit log: the lease was lost' : 'audit log: update the head', { cause: error });
    }
  }

  /**
   * A leaf must name a record the bucket holds. Its writer stages it, then writes it to the bucket;
   * should it die in between (or the bucket not answer), and nothing append that event again, the
   * sequencer writes it from the staged copy before logging it.
   */
  async #ensureInBucket(staged: readonly Staged[]): Promise<void> {
    await eachInParallel(staged, 16, async ({ record }) => {
      const key = recordKey(record.requestId, record.seq);
      try {
        await s3.send(new HeadObjectCommand({ Bucket: this.#bucket, Key: key }));
        return;
      } catch (error) {
        if ((error as { name?: string }).name !== 'NotFound') throw new RetryableError(`audit bucket: ${(error as { name?: string }).name ?? 'Error'}`, { cause: error });
      }
      await this.#put(key, record);
    });
  }

  async #put(key: string, body: unknown): Promise<void> {
    try {
      await s3.send(new PutObjectCommand({ Bucket: this.#bucket, Key: key, Body: JSON.stringify(body), ContentType: 'application/json' }));
    } catch (error) {
      throw new RetryableError(`audit bucket: ${(error as { name?: string }).name ?? 'Error'}`, { cause: error });
    }
  }

  async #get(key: { pk: string; sk: string }, projection: string): Promise<Record<string, unknown> | undefined> {
    try {
      return (await dynamo.send(new GetCommand({ TableName: this.#table, Key: key, ProjectionExpression: projection, ConsistentRead: true }))).Item;
    } catch (error) {
      throw new RetryableError('audit log: read', { cause: error });
    }
  }

  async #nodes(ids: readonly { level: number; index: number }[]): Promise<Map<string, Hash>> {
    const unique = [...new Map(ids.map((n) => [`${String(n.level)}#${String(n.index)}`, n])).values()];
    const items = await this.#batchGet(unique.map((n) => nodeKey(n.level, n.index)), 'pk, #hash', { '#hash': 'hash' });
    return new Map(items.map((item) => [(item['pk'] as string).slice('LOGNODE#'.length), bytesOf(item['hash'] as string)]));
  }

  /** BatchGetItem in hundreds, consistently, retrying what DynamoDB leaves unprocessed. */
  async #batchGet(keys: readonly Record<string, string>[], projection: string, names?: Record<string, string>): Promise<Record<string, unknown>[]> {
    const items: Record<string, unknown>[] = [];
    for (let i = 0; i < keys.length; i += 100) {
      let request: Record<string, unknown>[] | undefined = keys.slice(i, i + 100);
      for (let attempt = 0; request?.length; attempt += 1) {
        if (attempt > 8) throw new RetryableError('audit log: reads left unprocessed');
        if (attempt > 0) await sleep(Math.min(50 * 2 ** attempt, 2000));
        try {
          const out: BatchGetCommandOutput = await dynamo.send(
            new BatchGetCommand({
              RequestItems: { [this.#table]: { Keys: request, ConsistentRead: true, ProjectionExpression: projection, ...(names && { ExpressionAttributeNames: names }) } },
            }),
          );
          items.push(...(out.Responses?.[this.#table] ?? []));
          request = out.UnprocessedKeys?.[this.#table]?.Keys;
        } catch (error) {
          throw new RetryableError('audit log: read', { cause: error });
        }
      }
    }
    return items;
  }

  /** BatchWriteItem in 25s, retrying what DynamoDB leaves unprocessed. */
  async #batchWrite(items: readonly Record<string, unknown>[]): Promise<void> {
    for (let i = 0; i < items.length; i += 25) {
      let request = items.slice(i, i + 25).map((Item) => ({ PutRequest: { Item } }));
      for (let attempt = 0; request.length > 0; attempt += 1) {
        if (attempt > 8) throw new RetryableError('audit log: writes left unprocessed');
        if (attempt > 0) await sleep(Math.min(50 * 2 ** attempt, 2000));
        try {
          const out = await dynamo.send(new BatchWriteCommand({ RequestItems: { [this.#table]: request } }));
          request = (out.UnprocessedItems?.[this.#table] ?? []) as typeof request;
        } catch (error) {
          throw new RetryableError('audit log: write nodes', { cause: error });
        }
      }
    }
  }
}
