import {
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectVersionsCommand,
  PutObjectCommand,
  S3ServiceException,
  paginateListObjectsV2,
  type ListObjectVersionsCommandOutput,
  type GetObjectCommandOutput,
  type S3Client,
} from '@aws-sdk/client-s3';
import { ConfigError, ConnectorPermanentError, ConnectorRetryableError, LetheError } from '#core/errors';
import { formsOf, type Identity } from '#core/identity';
import { addNearMisses, type NearMisses } from '#core/near-miss';
import type { BatchConnector, ConnectorCommand, ConnectorResult, Verification } from '#core/ports';
import type { Action } from '#core/request';
import { classifyAwsError } from '../aws-errors.ts';
import { removeJsonLines } from './jsonl.ts';
import { readParquet, removeRows, storedForms, within, type ColumnValues } from './parquet.ts';
import { wideCheckFor } from './near-miss.ts';
import { LAKE_ACTIONS, type LakeSettings, type LakeTable } from './settings.ts';

/** How often a rewrite starts over when another writer changed the object in between. */
const ATTEMPTS = 3;

/** One object without the subjects' rows: the new bytes (undefined: none of theirs), and their rows by subject. */
type Rewrite = (object: Uint8Array) => { bytes: Uint8Array | undefined; bySubject: Map<string, number> };

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
export class LakeConnector implements BatchConnector {
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
    const affected = await this.runBatch(new Map([['subject', command.identities]]));
    return { affected: affected.get('subject') ?? 0 };
  }

  async verify(command: ConnectorCommand): Promise<Verification> {
    return (await this.verifyBatch(new Map([['subject', command.identities]]))).get('subject') ?? { remaining: 0 };
  }

  /**
   * Remove several subjects in one pass: each object is read and rewritten once, whoever of them it
   * holds. Returns the rows removed per subject (a row of two subjects counts for both).
   */
  async runBatch(subjects: ReadonlyMap<string, readonly Identity[]>): Promise<Map<string, number>> {
    const counts = new Map([...subjects.keys()].map((k) => [k, 0]));
    for (const table of this.#settings.tables) {
      const rewrite = rewriterFor(table, subjects);
      if (!rewrite) continue;
      for await (const candidate of this.#candidates(table, subjects)) {
        // A rewrite deletes the older versions holding the subjects itself. When there was nothing
        // to rewrite, older versions may still hold their rows: left by a rewrite cut short, or
        // behind a delete marker. Those go too, and count: the rows were found and removed.
        const rewritten = await this.#rewriteObject(table, candidate.key, rewrite);
        const removed = rewritten.size > 0 ? rewritten : await this.#deleteVersionsHolding(table, candidate.key, candidate.older, rewrite);
        for (const [subject, n] of removed) counts.set(subject, (counts.get(subject) ?? 0) + n);
      }
    }
    return counts;
  }

  /**
   * How many rows of each subject remain, in one read of the candidate objects: their current
   * versions, and in a versioned bucket every older version and what is behind a delete marker.
   */
  async verifyBatch(subjects: ReadonlyMap<string, readonly Identity[]>): Promise<Map<string, Verification>> {
    const counts = new Map([...subjects.keys()].map((k) => [k, 0]));
    const near = new Map<string, NearMisses>();
    for (const table of this.#settings.tables) {
      const rewrite = rewriterFor(table, subjects);
      const wide = wideCheckFor(table, subjects);
      if (!rewrite || !wide) continue;
      const check = (bytes: Uint8Array) => {
        rewrite(bytes).bySubject.forEach((n, subject) => counts.set(subject, (counts.get(subject) ?? 0) + n));
        wide(bytes).forEach((n, subject) => near.set(subject, addNearMisses(near.get(subject), n)));
      };
      for await (const candidate of this.#candidates(table, subjects)) {
        const object = await this.#get(table, candidate.key);
        if (object) check(object.bytes);
        for (const versionId of candidate.older) {
          const old = await this.#get(table, candidate.key, versionId);
          if (old) check(old.bytes);
        }
      }
    }
    return new Map([...counts].map(([k, n]) => [k, near.has(k) ? { remaining: n, nearMisses: near.get(k)! } : { remaining: n }]));
  }

  /**
   * The table's objects that may hold the subject: every key under the prefix, less other
   * partitions, with its versions older than the current one (or than the delete marker that hides
   * it). Listed by version, so that keys whose current version is a delete marker are seen too; a
   * store that lists no versions (an unversioned emulator) is listed by object. A key under a Delta
   * Lake or Hudi log is refused: rewriting a table's files underneath its log corrupts the table.
   */
  async *#candidates(table: LakeTable, subjects: ReadonlyMap<string, readonly Identity[]>): AsyncGenerator<Candidate> {
    const wanted = (key: string) => !key.endsWith('/') && [...subjects.values()].some((identities) => inSubjectPartitions(key, table, identities));
    let listed = false;
    try {
      let current: Candidate | undefined;
      for await (const page of this.#versionPages(table)) {
        const entries = [
          ...(page.Versions ?? []).map((v) => ({ key: v.Key, versionId: v.VersionId, latest: v.IsLatest === true })),
          ...(page.DeleteMarkers ?? []).map((m) => ({ key: m.Key, versionId: undefined as string | undefined, latest: m.IsLatest === true })),
        ].sort((a, b) => (a.key ?? '').localeCompare(b.key ?? ''));
        for (const { key, versionId, latest } of entries) {
          if (!key) continue;
          listed = true;
          refuseTableLog(table, key);
          if (current?.key !== key) {
            if (current && wanted(current.key)) yield current;
            current = { key, older: [] };
          }
          // The current version is read as the object itself; every other version is an older one.
          if (versionId && !latest) current.older.push(versionId);
        }
      }
      if (current && wanted(current.key)) yield current;
      if (listed) return;
      for await (const page of paginateListObjectsV2({ client: this.#s3 }, { Bucket: table.bucket, Prefix: table.prefix })) {
        for (const { Key } of page.Contents ?? []) {
          if (!Key) continue;
          refuseTableLog(table, Key);
          if (wanted(Key)) yield { key: Key, older: [] };
        }
      }
    } catch (error) {
      if (error instanceof LetheError) throw error;
      throw classifyAwsError(`lake ${describe(table)}: list`, error);
    }
  }

  /** ListObjectVersions, page after page until the last (it has no paginator of its own). */
  async *#versionPages(table: LakeTable): AsyncGenerator<ListObjectVersionsCommandOutput> {
    let marker: { KeyMarker?: string; VersionIdMarker?: string } = {};
    for (;;) {
      const page = await this.#s3.send(new ListObjectVersionsCommand({ Bucket: table.bucket, Prefix: table.prefix, ...marker }));
      yield page;
      if (!page.IsTruncated) return;
      marker = { ...(page.NextKeyMarker && { KeyMarker: page.NextKeyMarker }), ...(page.NextVersionIdMarker && { VersionIdMarker: page.NextVersionIdMarker }) };
    }
  }

  /**
   * Delete each of these versions of a key (newest first) that holds any of the subjects' rows.
   * Returns each subject's rows in the newest of them that held any (a row kept through versions
   * counts once).
   */
  async #deleteVersionsHolding(table: LakeTable, key: string, versionIds: readonly string[], rewrite: Rewrite): Promise<Map<string, number>> {
    const found = new Map<string, number>();
    for (const versionId of versionIds) {
      const old = await this.#get(table, key, versionId);
      if (!old) continue;
      const { bytes, bySubject } = rewrite(old.bytes);
      if (!bytes) continue;
      await this.#deleteVersion(table, key, versionId);
      for (const [subject, n] of bySubject) if (n > 0 && !found.has(subject)) found.set(subject, n);
    }
    return found;
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

  async #rewriteObject(table: LakeTable, key: string, rewrite: Rewrite): Promise<Map<string, number>> {
    for (let attempt = 1; attempt <= ATTEMPTS; attempt += 1) {
      const read = await this.#get(table, key);
      if (!read) return new Map();
      const { bytes, bySubject } = rewrite(read.bytes);
      if (!bytes) return new Map();
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
      if (!versioned || !put.VersionId) return bySubject;
      const versions = await this.#versions(table, key);
      const ours = versions.indexOf(put.VersionId);
      if (ours < 0 || versions[ours + 1] !== out.VersionId) {
        // Another writer came between our read and our write: take ours back, and start over.
        await this.#deleteVersion(table, key, put.VersionId);
        continue;
      }
      await this.#deleteVersion(table, key, out.VersionId!);
      // A subject found only in an older version counts its rows there.
      for (const [subject, n] of await this.#deleteVersionsHolding(table, key, versions.slice(ours + 2), rewrite)) if (!bySubject.has(subject)) bySubject.set(subject, n);
      return bySubject;
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

/** A key that may hold the subject, and its versions older than the current one (newest first). */
interface Candidate {
  readonly key: string;
  readonly older: string[];
}

/** Delta Lake and Hudi keep a log of which files make the table: Lethe must not rewrite those files underneath it. */
function refuseTableLog(table: LakeTable, key: string): void {
  const log = key.split('/').find((segment) => segment === '_delta_log' || segment === '.hoodie');
  if (!log) return;
  const kind = log === '_delta_log' ? 'a Delta Lake table' : 'a Hudi table';
  throw new ConfigError([
    {
      path: `lake.tables.${table.bucket}/${table.prefix}`,
      message: `s3://${table.bucket}/${table.prefix} holds ${kind} (${log}/): rewriting its files underneath the table's log would corrupt it; erase through the table's engine (an iceberg or webhook system)`,
    },
  ]);
}

/**
 * Whether an object may hold the subject: one under `key=value` for a partition key of an identity
 * belongs to that value only, so a subject with other values of that identity is not there. A
 * subject without any value of it may be anywhere.
 */
function inSubjectPartitions(key: string, table: LakeTable, identities: readonly Identity[]): boolean {
  const segments = key.split('/');
  for (const { identity, key: name } of table.partitions) {
    const segment = segments.find((s) => s.startsWith(`${name}=`));
    const values = identities.filter((i) => i.type === identity).map((i) => i.value);
    if (!segment || values.length === 0) continue;
    if (!values.includes(safeDecode(segment.slice(name.length + 1)))) return false;
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

/** How to take the subjects out of one object of the table; undefined when none has an identity the table holds. */
function rewriterFor(table: LakeTable, subjects: ReadonlyMap<string, readonly Identity[]>): Rewrite | undefined {
  // column → value → the subjects with that value
  const byColumn = new Map<string, Map<string, string[]>>();
  for (const { identity, column } of table.columns) {
    for (const [subject, identities] of subjects) {
      // The value, and each form the subject submitted it in.
      for (const value of identities.filter((x) => x.type === identity).flatMap(formsOf)) {
        const values = byColumn.get(column) ?? new Map<string, string[]>();
        values.set(value, [...(values.get(value) ?? []), subject]);
        byColumn.set(column, values);
      }
    }
  }
  if (byColumn.size === 0) return undefined;
  const where = `lake ${describe(table)}`;
  if (table.format === 'jsonl') {
    return (object) => {
      const bySubject = new Map<string, number>();
      const { bytes } = removeJsonLines(object, byColumn, where, (owners) => owners.forEach((o) => bySubject.set(o, (bySubject.get(o) ?? 0) + 1)));
      return { bytes, bySubject };
    };
  }
  return (object) => {
    const bySubject = new Map<string, number>();
    try {
      const { bytes } = removeRows(readParquet(object), (_, read, bounds) => {
        const owners = new Map<number, Set<string>>();
        for (const [column, values] of byColumn) {
          // A row group whose statistics rule out every value is not decoded at all.
          const b = bounds(column.split('.'));
          if (b && ![...values.keys()].some((v) => storedForms(b, v).some((s) => within(b, s)))) continue;
          collect(read(column.split('.')), values, owners);
        }
        for (const subjectsOfRow of owners.values()) subjectsOfRow.forEach((o) => bySubject.set(o, (bySubject.get(o) ?? 0) + 1));
        return new Set(owners.keys());
      });
      return { bytes, bySubject };
    } catch (error) {
      if (error instanceof ConnectorPermanentError) throw new ConnectorPermanentError(`${where}: ${error.message}`, { cause: error });
      if (error instanceof LetheError) throw error;
      // A footer or page that does not parse: the object is damaged, or not what its table says.
      throw new ConnectorPermanentError(`${where}: an object cannot be read as Parquet (${(error as Error).name}); it is left as it is`, { cause: error });
    }
  };
}

/** Rows whose value is one of `values` (strings as UTF-8 bytes, integers as their stored bytes), with whose they are. */
function collect(column: ColumnValues, values: ReadonlyMap<string, readonly string[]>, owners: Map<number, Set<string>>): void {
  const wanted = new Map<string, readonly string[]>();
  for (const [v, subjects] of values) for (const s of storedForms(column, v)) wanted.set(Buffer.from(s).toString('latin1'), subjects);
  column.rows.forEach((elements, i) => {
    // A list column: the row is the subject's when any element is.
    for (const value of elements) {
      const subjects = wanted.get(Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('latin1'));
      if (!subjects) continue;
      const set = owners.get(i) ?? new Set<string>();
      subjects.forEach((s) => set.add(s));
      owners.set(i, set);
    }
  });
}
