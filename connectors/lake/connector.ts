import {
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectVersionsCommand,
  PutObjectCommand,
  S3ServiceException,
  paginateListObjectsV2,
  type GetObjectCommandOutput,
  type S3Client,
} from '@aws-sdk/client-s3';
import { ConnectorPermanentError, ConnectorRetryableError } from '#core/errors';
import type { Identity } from '#core/identity';
import type { Connector, ConnectorCommand, ConnectorResult } from '#core/ports';
import type { Action } from '#core/request';
import { classifyAwsError } from '../aws-errors.ts';
import { removeJsonLines } from './jsonl.ts';
import { readParquet, removeRows, type ColumnValues } from './parquet.ts';
import { LAKE_ACTIONS, type LakeSettings, type LakeTable } from './settings.ts';

/** How often a rewrite starts over when another writer changed the object in between. */
const ATTEMPTS = 3;

type Rewrite = (object: Uint8Array) => { bytes: Uint8Array | undefined; removed: number };

/**
 * Analytics tables on S3: every object of a table that may hold the subject (Hive partitions of
 * an identity narrow the list) is read, and rewritten without the subject's rows when it has any
 * (Parquet: see parquet.ts; JSON Lines: the other lines byte for byte). The object keeps its
 * content type, encoding, user metadata, storage class and encryption settings. A rewrite must not
 * lose another writer's change: in a versioned bucket the new version must directly follow the
 * one read, else it is deleted again and the rewrite starts over; then the version read, and any
 * older version still holding the subject's rows, are deleted. In an unversioned bucket the write
 * is conditional on the ETag read. Object keys can carry identities (partition values), so errors
 * name the table and never the key.
 */
export class LakeConnector implements Connector {
  readonly kind = 'lake';
  readonly #s3: S3Client;
  readonly #settings: LakeSettings;

  constructor(s3: S3Client, settings: LakeSettings) {
    this.#s3 = s3;
    this.#settings = settings;
  }

  describe(): { actions: readonly Action[] } {
    return { actions: LAKE_ACTIONS };
  }

  resolve(): Promise<Identity[]> {
    return Promise.resolve([]);
  }

  async run(command: ConnectorCommand): Promise<ConnectorResult> {
    if (command.action !== 'delete') throw new ConnectorPermanentError(`lake: cannot ${command.action}`);
    let affected = 0;
    for (const table of this.#settings.tables) {
      const rewrite = rewriterFor(table, command.identities);
      if (!rewrite) continue;
      for await (const key of this.#candidates(table, command.identities)) affected += await this.#rewriteObject(table, key, rewrite);
    }
    return { affected };
  }

  async verify(command: ConnectorCommand): Promise<{ remaining: number }> {
    let remaining = 0;
    for (const table of this.#settings.tables) {
      const rewrite = rewriterFor(table, command.identities);
      if (!rewrite) continue;
      for await (const key of this.#candidates(table, command.identities)) {
        const object = await this.#get(table, key);
        if (object) remaining += rewrite(object.bytes).removed;
      }
    }
    return { remaining };
  }

  /** The table's objects that may hold the subject: every object under the prefix, less other partitions. */
  async *#candidates(table: LakeTable, identities: readonly Identity[]): AsyncGenerator<string> {
    try {
      for await (const page of paginateListObjectsV2({ client: this.#s3 }, { Bucket: table.bucket, Prefix: table.prefix })) {
        for (const { Key } of page.Contents ?? []) {
          if (Key && !Key.endsWith('/') && inSubjectPartitions(Key, table, identities)) yield Key;
        }
      }
    } catch (error) {
      throw classifyAwsError(`lake ${describe(table)}: list`, error);
    }
  }

  async #get(table: LakeTable, key: string, versionId?: string): Promise<{ bytes: Uint8Array; out: GetObjectCommandOutput } | undefined> {
    try {
      const out = await this.#s3.send(new GetObjectCommand({ Bucket: table.bucket, Key: key, ...(versionId && { VersionId: versionId }) }));
      return { bytes: await out.Body!.transformToByteArray(), out };
    } catch (error) {
      if (error instanceof S3ServiceException && (error.name === 'NoSuchKey' || error.$metadata.httpStatusCode === 404)) return undefined;
      throw classifyAwsError(`lake ${describe(table)}: read an object`, error);
    }
  }

  async #rewriteObject(table: LakeTable, key: string, rewrite: Rewrite): Promise<number> {
    for (let attempt = 1; attempt <= ATTEMPTS; attempt += 1) {
      const read = await this.#get(table, key);
      if (!read) return 0;
      const { bytes, removed } = rewrite(read.bytes);
      if (!bytes) return 0;
      const { out } = read;
      const versioned = Boolean(out.VersionId && out.VersionId !== 'null');
      let put;
      try {
        put = await this.#s3.send(
          new PutObjectCommand({
            Bucket: table.bucket,
            Key: key,
            Body: bytes,
            ...(out.ContentType && { ContentType: out.ContentType }),
            ...(out.ContentEncoding && { ContentEncoding: out.ContentEncoding }),
            ...(out.CacheControl && { CacheControl: out.CacheControl }),
            ...(out.ContentDisposition && { ContentDisposition: out.ContentDisposition }),
            ...(out.Metadata && { Metadata: out.Metadata }),
            ...(out.StorageClass && { StorageClass: out.StorageClass }),
            ...(out.ServerSideEncryption && { ServerSideEncryption: out.ServerSideEncryption }),
            ...(out.SSEKMSKeyId && { SSEKMSKeyId: out.SSEKMSKeyId }),
            ...(!versioned && out.ETag && { IfMatch: out.ETag }),
          }),
        );
      } catch (error) {
        // Changed since it was read (unversioned bucket): read it again.
        if (error instanceof S3ServiceException && (error.name === 'PreconditionFailed' || error.$metadata.httpStatusCode === 412)) continue;
        throw classifyAwsError(`lake ${describe(table)}: write an object`, error);
      }
      if (!versioned || !put.VersionId) return removed;
      const versions = await this.#versions(table, key);
      const ours = versions.indexOf(put.VersionId);
      if (ours < 0 || versions[ours + 1] !== out.VersionId) {
        // Another writer came between our read and our write: take ours back, and start over.
        await this.#deleteVersion(table, key, put.VersionId);
        continue;
      }
      await this.#deleteVersion(table, key, out.VersionId!);
      for (const older of versions.slice(ours + 2)) {
        const old = await this.#get(table, key, older);
        if (old && rewrite(old.bytes).removed > 0) await this.#deleteVersion(table, key, older);
      }
      return removed;
    }
    throw new ConnectorRetryableError(`lake ${describe(table)}: an object kept changing while Lethe rewrote it (${String(ATTEMPTS)} attempts)`);
  }

  /** The key's versions, newest first (as S3 lists them). */
  async #versions(table: LakeTable, key: string): Promise<string[]> {
    const ids: string[] = [];
    try {
      let marker: { KeyMarker?: string; VersionIdMarker?: string } = {};
      for (;;) {
        const page = await this.#s3.send(new ListObjectVersionsCommand({ Bucket: table.bucket, Prefix: key, ...marker }));
        for (const v of page.Versions ?? []) if (v.Key === key && v.VersionId) ids.push(v.VersionId);
        if (!page.IsTruncated) break;
        marker = { ...(page.NextKeyMarker && { KeyMarker: page.NextKeyMarker }), ...(page.NextVersionIdMarker && { VersionIdMarker: page.NextVersionIdMarker }) };
      }
    } catch (error) {
      throw classifyAwsError(`lake ${describe(table)}: list versions`, error);
    }
    return ids;
  }

  async #deleteVersion(table: LakeTable, key: string, versionId: string): Promise<void> {
    try {
      await this.#s3.send(new DeleteObjectCommand({ Bucket: table.bucket, Key: key, VersionId: versionId }));
    } catch (error) {
      if (error instanceof S3ServiceException && error.name === 'AccessDenied' && /object lock|retention|legal hold/i.test(error.message)) {
        throw new ConnectorPermanentError(`lake ${describe(table)}: version ${versionId} is retained by Object Lock; it still holds the subject's rows`);
      }
      throw classifyAwsError(`lake ${describe(table)}: delete an old version`, error);
    }
  }
}

const describe = (table: LakeTable) => `${table.bucket}/${table.prefix}`;

/** An object under `key=value` for a partition key of an identity belongs to that value only. */
function inSubjectPartitions(key: string, table: LakeTable, identities: readonly Identity[]): boolean {
  const segments = key.split('/');
  for (const { identity, key: name } of table.partitions) {
    const segment = segments.find((s) => s.startsWith(`${name}=`));
    if (!segment) continue;
    const value = safeDecode(segment.slice(name.length + 1));
    if (!identities.some((i) => i.type === identity && i.value === value)) return false;
  }
  return true;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** How to take the subject out of one object of the table; undefined when the subject has no identity the table holds. */
function rewriterFor(table: LakeTable, identities: readonly Identity[]): Rewrite | undefined {
  const byColumn = new Map<string, Set<string>>();
  for (const { identity, column } of table.columns) {
    for (const i of identities.filter((x) => x.type === identity)) {
      const set = byColumn.get(column) ?? new Set<string>();
      set.add(i.value);
      byColumn.set(column, set);
    }
  }
  if (byColumn.size === 0) return undefined;
  const where = `lake ${describe(table)}`;
  if (table.format === 'jsonl') return (object) => removeJsonLines(object, byColumn, where);
  return (object) => {
    try {
      return removeRows(readParquet(object), (_, read) => {
        const rows = new Set<number>();
        for (const [column, values] of byColumn) collect(read(column.split('.')), values, rows);
        return rows;
      });
    } catch (error) {
      if (error instanceof ConnectorPermanentError) throw new ConnectorPermanentError(`${where}: ${error.message}`, { cause: error });
      throw error;
    }
  };
}

/** Rows whose value is one of `values`: strings as UTF-8 bytes, integers as their stored bytes. */
function collect(column: ColumnValues, values: ReadonlySet<string>, rows: Set<number>): void {
  const wanted = new Set<string>();
  for (const v of values) {
    if (column.physical === 6 || column.physical === 7) wanted.add(Buffer.from(v, 'utf8').toString('latin1'));
    else if ((column.physical === 1 || column.physical === 2) && /^-?\d{1,19}$/.test(v)) {
      const b = Buffer.alloc(column.physical === 1 ? 4 : 8);
      if (column.physical === 1) {
        const n = Number(v);
        if (n < -(2 ** 31) || n >= 2 ** 31) continue;
        b.writeInt32LE(n);
      } else b.writeBigInt64LE(BigInt.asIntN(64, BigInt(v)));
      wanted.add(b.toString('latin1'));
    }
  }
  column.rows.forEach((value, i) => {
    if (value && wanted.has(Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('latin1'))) rows.add(i);
  });
}
