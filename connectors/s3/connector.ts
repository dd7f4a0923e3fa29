import {
  DeleteObjectsCommand,
  GetBucketVersioningCommand,
  GetObjectTaggingCommand,
  paginateListObjectsV2,
  ListObjectVersionsCommand,
  type ObjectIdentifier,
  type S3Client,
} from '@aws-sdk/client-s3';
import { ConnectorPermanentError } from '#core/errors';
import { formsOf, type Identity } from '#core/identity';
import { nearMissReason, NearMissTally, wideKey, wideSpellings } from '#core/near-miss';
import type { Connector, ConnectorCommand, ConnectorResult, Verification } from '#core/ports';
import type { Action } from '#core/request';
import { classifyAwsError } from '../aws-errors.ts';
import { fill } from '../templates.ts';
import { S3_ACTIONS, type S3Settings } from './settings.ts';

/** An object (version) to delete, with the data map entry that found it: errors name that, never the key. */
interface Found {
  readonly id: ObjectIdentifier;
  readonly entry: string;
  /** The value that found it (a key, a prefix, a tag's value): what a near-miss is classed by. */
  readonly spelling: string;
}

/**
 * Deletes a subject's objects in one bucket: by key template, by prefix, or by tag within a
 * prefix. In a versioned bucket every version and delete marker goes, so nothing can be restored.
 * An object that Object Lock retains is a permanent error, named by its data map entry and
 * version id (keys may contain identities), never a silent skip.
 */
export class S3Connector implements Connector {
  readonly kind = 's3';
  readonly #s3: S3Client;
  readonly #s: S3Settings;
  #versioned: Promise<boolean> | undefined;

  constructor(s3: S3Client, settings: S3Settings) {
    this.#s3 = s3;
    this.#s = settings;
  }

  describe(): { actions: readonly Action[] } {
    return { actions: S3_ACTIONS };
  }

  resolve(): Promise<Identity[]> {
    return Promise.resolve([]);
  }

  async run(command: ConnectorCommand): Promise<ConnectorResult> {
    if (command.action !== 'delete') throw new ConnectorPermanentError(`s3 connector cannot ${command.action}`);
    const found = [...(await this.#find(command.identities)).values()];
    for (let i = 0; i < found.length; i += 1000) {
      const batch = found.slice(i, i + 1000);
      const out = await this.#send(() =>
        this.#s3.send(new DeleteObjectsCommand({ Bucket: this.#s.bucket, Delete: { Objects: batch.map((f) => f.id), Quiet: true } })),
      );
      const error = out.Errors?.[0];
      if (error) {
        const which = batch.find((f) => f.id.Key === error.Key && (!error.VersionId || f.id.VersionId === error.VersionId));
        const where = `${which?.entry ?? 'an object'}${error.VersionId ? ` (version ${error.VersionId})` : ''}`;
        const locked = error.Code === 'AccessDenied' && /object lock|retention|legal hold/i.test(error.Message ?? '');
        throw new ConnectorPermanentError(
          locked
            ? `s3 bucket ${this.#s.bucket}: ${where} is under Object Lock retention or legal hold and cannot be deleted`
            : `s3 bucket ${this.#s.bucket}: ${where} could not be deleted (${error.Code ?? 'Error'})`,
        );
      }
    }
    return { affected: found.length };
  }

  /** What the action's match still finds; and, asked in other case and Unicode forms (tags compared trimmed and case-folded), the near-misses. */
  async verify(command: ConnectorCommand): Promise<Verification> {
    const mine = await this.#find(command.identities, 'action');
    const nearMisses = new NearMissTally();
    for (const [id, f] of await this.#find(command.identities, 'wide')) if (!mine.has(id)) nearMisses.add(nearMissReason(f.spelling));
    return nearMisses.result(mine.size);
  }

  async #find(identities: readonly Identity[], net: 'action' | 'wide' = 'action'): Promise<Map<string, Found>> {
    const versioned = await this.#isVersioned();
    const spell = net === 'action' ? formsOf : wideSpellings;
    const found = new Map<string, Found>();
    const add = (f: Found) => found.set(`${f.id.Key ?? ''}\u0000${f.id.VersionId ?? ''}`, f);
    for (const entry of this.#s.objects) {
      if ('key' in entry) {
        for (const key of fill(entry.key, identities, undefined, spell)) {
          for (const id of await this.#list(key, versioned)) if (id.Key === key) add({ id, entry: entry.key, spelling: key });
        }
      } else if ('prefix' in entry) {
        for (const prefix of fill(entry.prefix, identities, undefined, spell)) {
          for (const id of await this.#list(prefix, versioned)) add({ id, entry: `${entry.prefix}…`, spelling: prefix });
        }
      } else {
        const values = new Set(fill(entry.value, identities));
        if (values.size === 0) continue;
        const wide = new Set([...values].map(wideKey));
        const label = `${entry.within}… tagged ${entry.tag}`;
        for (const id of await this.#list(entry.within, versioned)) {
          const tags = await this.#send(() =>
            this.#s3.send(new GetObjectTaggingCommand({ Bucket: this.#s.bucket, Key: id.Key, VersionId: id.VersionId })),
          );
          const tag = tags.TagSet?.find((t) => t.Key === entry.tag && (net === 'action' ? values.has(t.Value ?? '') : wide.has(wideKey(t.Value ?? ''))));
          if (tag) add({ id, entry: label, spelling: tag.Value ?? '' });
        }
      }
    }
    return found;
  }

  /** Every object under a prefix: each version and delete marker when the bucket is versioned. */
  async #list(prefix: string, versioned: boolean): Promise<ObjectIdentifier[]> {
    const ids: ObjectIdentifier[] = [];
    await this.#send(async () => {
      if (versioned) {
        let markers: { KeyMarker?: string; VersionIdMarker?: string } = {};
        for (;;) {
          const page = await this.#s3.send(new ListObjectVersionsCommand({ Bucket: this.#s.bucket, Prefix: prefix, ...markers }));
          for (const v of [...(page.Versions ?? []), ...(page.DeleteMarkers ?? [])]) ids.push({ Key: v.Key, VersionId: v.VersionId });
          if (!page.IsTruncated) break;
          markers = { KeyMarker: page.NextKeyMarker, VersionIdMarker: page.NextVersionIdMarker };
        }
      } else {
        for await (const page of paginateListObjectsV2({ client: this.#s3 }, { Bucket: this.#s.bucket, Prefix: prefix })) {
          for (const o of page.Contents ?? []) ids.push({ Key: o.Key });
        }
      }
    });
    return ids;
  }

  /** Whether versioning was ever enabled (a suspended bucket still holds versions). */
  #isVersioned(): Promise<boolean> {
    this.#versioned ??= this.#send(() => this.#s3.send(new GetBucketVersioningCommand({ Bucket: this.#s.bucket }))).then(
      (out) => out.Status === 'Enabled' || out.Status === 'Suspended',
      (error: unknown) => {
        this.#versioned = undefined;
        throw error;
      },
    );
    return this.#versioned;
  }

  async #send<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      throw classifyAwsError(`s3 bucket ${this.#s.bucket}`, error);
    }
  }
}
