import { DeleteMessageBatchCommand, ReceiveMessageCommand, SendMessageCommand, type Message } from '@aws-sdk/client-sqs';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { RetryableError } from '#core/errors';
import { buildPackedFilter, decodeFilter, encodeFilter, type FuseFilter } from '#core/filter';
import { FILTER_KEY, TAGS_KEY } from '#core/suppression';
import { mergeTags, sortTags, tagCount } from '#core/tag-set';
import { s3, sqs } from './clients.ts';
import { logger } from './observability.ts';
import type { SubjectEntry, SuppressionStore } from './suppression-store.ts';
import { eachInParallel } from './sweep.ts';

/** What the filter object's metadata says (S3 user metadata, lower-case names). */
export interface FilterInfo {
  readonly keyVersion: string;
  readonly count: number;
  readonly builtAt: string;
  /** The tag set's ETag it was built from: a filter behind its tag set is built again. */
  readonly tagsEtag: string;
  /** The filter's size; 0 until read back from S3. */
  readonly bytes?: number;
}

/** Intake's note to the publisher: these subjects (`type:pseudonym`) changed. Pseudonyms only. */
export interface SuppressionChange {
  readonly subjects: readonly string[];
}

export async function announceChange(queueUrl: string, change: SuppressionChange): Promise<void> {
  try {
    await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: JSON.stringify(change) }));
  } catch (error) {
    throw new RetryableError('suppression changes: send failed', { cause: error });
  }
}

export interface PublishResult {
  readonly published: boolean;
  readonly changes: number;
  readonly count: number;
  /** Suppressed subjects the filter cannot hold: no tag, or a tag under another key version. */
  readonly untagged: number;
  readonly rebuilt: boolean;
  /** The published filter's size, when this run published one. */
  readonly bytes?: number;
}

export interface SnapshotOptions {
  readonly bucket: string;
  readonly changesQueueUrl: string;
  readonly store: SuppressionStore;
  /** The pseudonym key's version: tags made under another cannot be looked up with today's filter key. */
  readonly keyVersion: () => Promise<string>;
  /** Rebuild the tag set from a whole scan of the table when it is older than this. @default 24 hours */
  readonly rebuildAfterMs?: number;
  /** At most this many change messages a run; the rest wait for the next. @default 50,000 */
  readonly maxChanges?: number;
}

/**
 * The suppression filter snapshot. The tag set (`tags.bin`: the 16-byte filter tags of every
 * suppressed subject, sorted) is the publisher's state; the filter (`filter.bin`) is built from it.
 * A run drains the change queue, reads the changed subjects' current state (so message order does
 * not matter), merges them into the tag set, writes it only over the version it read (S3
 * conditional write), then publishes the filter naming that version, and only then deletes the
 * messages. A crash anywhere leaves the messages to be done again, and a filter behind its tag set
 * is built again on the next run. A missing or old tag set is rebuilt from a scan of the table.
 */
export class SuppressionSnapshot {
  readonly #o: Required<SnapshotOptions>;

  constructor(options: SnapshotOptions) {
    this.#o = { rebuildAfterMs: 24 * 3600_000, maxChanges: 50_000, ...options };
  }

  async publish(until: number): Promise<PublishResult> {
    const messages = await this.#drain(until);
    const keyVersion = await this.#o.keyVersion();
    const tags = await this.#getTags();
    const rebuild = !tags || Date.now() - Date.parse(tags.rebuiltAt) > this.#o.rebuildAfterMs;
    let next: { set: Uint8Array; untagged: number; rebuiltAt: string } | undefined;
    if (rebuild) next = await this.#scan(keyVersion);
    else if (messages.length > 0) {
      const subjects = messages.flatMap((m) => subjectsOf(m));
      next = { ...merge(tags.set, await this.#o.store.entries(subjects), keyVersion), rebuiltAt: tags.rebuiltAt };
    }
    let count = tags ? tagCount(tags.set) : 0;
    let bytes: number | undefined;
    if (next) {
      const etag = await this.#putTags(next.set, tags?.etag, next.rebuiltAt);
      count = tagCount(next.set);
      bytes = await this.#putFilter(next.set, { keyVersion, count, builtAt: new Date().toISOString(), tagsEtag: etag });
    } else if (tags && (await filterInfo(this.#o.bucket))?.tagsEtag !== tags.etag) {
      // The last run wrote the tag set and died before the filter (or another run's filter won the race).
      bytes = await this.#putFilter(tags.set, { keyVersion, count, builtAt: new Date().toISOString(), tagsEtag: tags.etag });
    }
    await this.#delete(messages);
    return { published: bytes !== undefined, changes: messages.length, count, untagged: next?.untagged ?? 0, rebuilt: rebuild, ...(bytes !== undefined && { bytes }) };
  }

  async #drain(until: number): Promise<Message[]> {
    const received: Message[] = [];
    const receiver = async () => {
      while (received.length < this.#o.maxChanges && Date.now() < until) {
        const out = await sqs.send(new ReceiveMessageCommand({ QueueUrl: this.#o.changesQueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }));
        if (!out.Messages?.length) return;
        received.push(...out.Messages);
      }
    };
    try {
      await Promise.all([receiver(), receiver(), receiver(), receiver()]);
    } catch (error) {
      throw new RetryableError('suppression changes: receive failed', { cause: error });
    }
    return received;
  }

  async #delete(messages: readonly Message[]): Promise<void> {
    const batches = Array.from({ length: Math.ceil(messages.length / 10) }, (_, i) => messages.slice(i * 10, i * 10 + 10));
    // Eight calls at a time: at 50,000 changes, 5,000 calls one after another would outlast the run.
    await eachInParallel(batches, 8, async (batch) => {
      // A message not deleted comes back and is merged again, to the same result.
      await sqs
        .send(new DeleteMessageBatchCommand({ QueueUrl: this.#o.changesQueueUrl, Entries: batch.map((m, n) => ({ Id: String(n), ReceiptHandle: m.ReceiptHandle })) }))
        .catch(() => undefined);
    });
  }

  async #getTags(): Promise<{ set: Uint8Array; etag: string; rebuiltAt: string } | undefined> {
    try {
      const out = await s3.send(new GetObjectCommand({ Bucket: this.#o.bucket, Key: TAGS_KEY }));
      const set = await out.Body!.transformToByteArray();
      const rebuiltAt = out.Metadata?.['rebuilt-at'] ?? '';
      return { set, etag: out.ETag ?? '', rebuiltAt: Number.isNaN(Date.parse(rebuiltAt)) ? new Date(0).toISOString() : rebuiltAt };
    } catch (error) {
      if ((error as { name?: string }).name === 'NoSuchKey') return undefined;
      throw new RetryableError('suppression snapshot: read the tag set', { cause: error });
    }
  }

  async #scan(keyVersion: string): Promise<{ set: Uint8Array; untagged: number; rebuiltAt: string }> {
    const rebuiltAt = new Date().toISOString();
    // Packed as the pages come (16 bytes a suppressed subject, 160 MB at ten million), sorted once.
    let packed = new Uint8Array(16 * 65_536);
    let size = 0;
    let untagged = 0;
    for await (const page of this.#o.store.scan()) {
      for (const e of page) {
        if (!e.active) continue;
        if (!usable(e, keyVersion)) {
          untagged += 1;
          continue;
        }
        if (size + 16 > packed.length) {
          const grown = new Uint8Array(packed.length * 2);
          grown.set(packed);
          packed = grown;
        }
        packed.set(Buffer.from(e.tag, 'hex'), size);
        size += 16;
      }
    }
    return { set: sortTags(packed.subarray(0, size)), untagged, rebuiltAt };
  }

  async #putTags(set: Uint8Array, etag: string | undefined, rebuiltAt: string): Promise<string> {
    try {
      const out = await s3.send(
        new PutObjectCommand({
          Bucket: this.#o.bucket,
          Key: TAGS_KEY,
          Body: set,
          ContentType: 'application/octet-stream',
          // Only over the version read: two runs at once cannot both win.
          ...(etag ? { IfMatch: etag } : { IfNoneMatch: '*' }),
          Metadata: { 'rebuilt-at': rebuiltAt },
        }),
      );
      return out.ETag ?? '';
    } catch (error) {
      throw new RetryableError('suppression snapshot: write the tag set (another run may have written it first)', { cause: error });
    }
  }

  async #putFilter(set: Uint8Array, info: FilterInfo): Promise<number> {
    const filter = encodeFilter(buildPackedFilter(set));
    try {
      await s3.send(
        new PutObjectCommand({
          Bucket: this.#o.bucket,
          Key: FILTER_KEY,
          Body: filter,
          ContentType: 'application/octet-stream',
          Metadata: { 'key-version': info.keyVersion, count: String(info.count), 'built-at': info.builtAt, 'tags-etag': info.tagsEtag },
        }),
      );
    } catch (error) {
      throw new RetryableError('suppression snapshot: publish the filter', { cause: error });
    }
    return filter.length;
  }
}

/** The published filter's metadata, from a HEAD; undefined before the first publication. */
export async function filterInfo(bucket: string): Promise<FilterInfo | undefined> {
  try {
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: FILTER_KEY }));
    const m = head.Metadata ?? {};
    return { keyVersion: m['key-version'] ?? '', count: Number(m['count'] ?? 0), builtAt: m['built-at'] ?? '', tagsEtag: m['tags-etag'] ?? '', bytes: head.ContentLength ?? 0 };
  } catch (error) {
    const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
    if (e.name === 'NotFound' || e.$metadata?.httpStatusCode === 404) return undefined;
    throw new RetryableError('suppression snapshot: read the filter', { cause: error });
  }
}

/** The subjects a change message names; a malformed message names none (and is deleted with the rest). */
function subjectsOf(message: Message): string[] {
  try {
    const body = JSON.parse(message.Body ?? '') as Partial<SuppressionChange>;
    return Array.isArray(body.subjects) ? body.subjects.filter((s): s is string => typeof s === 'string') : [];
  } catch {
    return [];
  }
}

/** Whether an entry's tag can go in a filter made under `keyVersion`. */
function usable(e: SubjectEntry, keyVersion: string): e is SubjectEntry & { tag: string } {
  return e.tag !== undefined && e.keyVersion === keyVersion && /^[0-9a-f]{32}$/.test(e.tag);
}

/** `set` with the active entries' tags in and the others' out; active entries without a usable tag counted. */
function merge(set: Uint8Array, entries: readonly SubjectEntry[], keyVersion: string): { set: Uint8Array; untagged: number } {
  const add: Uint8Array[] = [];
  const remove: Uint8Array[] = [];
  let untagged = 0;
  for (const e of entries) {
    if (!usable(e, keyVersion)) {
      if (e.active) untagged += 1;
      continue;
    }
    (e.active ? add : remove).push(new Uint8Array(Buffer.from(e.tag, 'hex')));
  }
  return { set: mergeTags(set, add, remove), untagged };
}

/**
 * The published filter as a function holds it between invocations: fetched again (if it changed)
 * once it is a minute old. Undefined while there is none under the current key version — then a
 * caller must ask the table about every identity, never pass one unasked.
 */
export class FilterCache {
  readonly #bucket: string;
  readonly #maxAgeMs: number;
  #held: { filter: FuseFilter; keyVersion: string; etag: string; at: number } | undefined;

  constructor(bucket: string, maxAgeMs = 60_000) {
    this.#bucket = bucket;
    this.#maxAgeMs = maxAgeMs;
  }

  async get(keyVersion: string): Promise<FuseFilter | undefined> {
    if (!this.#held || Date.now() - this.#held.at >= this.#maxAgeMs) await this.#refresh();
    return this.#held?.keyVersion === keyVersion ? this.#held.filter : undefined;
  }

  async #refresh(): Promise<void> {
    try {
      const out = await s3.send(new GetObjectCommand({ Bucket: this.#bucket, Key: FILTER_KEY, ...(this.#held && { IfNoneMatch: this.#held.etag }) }));
      const filter = decodeFilter(await out.Body!.transformToByteArray());
      this.#held = { filter, keyVersion: out.Metadata?.['key-version'] ?? '', etag: out.ETag ?? '', at: Date.now() };
    } catch (error) {
      const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
      if (this.#held && e.$metadata?.httpStatusCode === 304) this.#held = { ...this.#held, at: Date.now() };
      else if (e.name === 'NoSuchKey') this.#held = undefined;
      else {
        // Keep what is held for a while (ten minutes by default), then nothing: every identity goes to the table.
        if (this.#held && Date.now() - this.#held.at > 10 * this.#maxAgeMs) this.#held = undefined;
        logger.warn('suppression filter: could not fetch it', { error: e.name, holding: Boolean(this.#held) });
      }
    }
  }
}
