import { z } from 'zod';
import type { Action } from '#core/request';

export const ICEBERG_ACTIONS: readonly Action[] = ['delete'];

const name = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'must be a plain name: letters, digits and _');

/**
 * `settings` of a `connector: iceberg` system: Apache Iceberg tables queried through Athena. An
 * erasure is a DELETE, then the compaction and the snapshot expiry that physically remove the rows.
 */
export const icebergSettingsSchema = z.strictObject({
  /** The Athena workgroup the queries run in; it must give them an output location (or give `outputLocation`). */
  workGroup: z.string().regex(/^[A-Za-z0-9._-]{1,128}$/).default('primary'),
  outputLocation: z.string().regex(/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?$/, 'must be an s3:// location').optional(),
  catalog: z.string().regex(/^[A-Za-z0-9_-]{1,128}$/).default('AwsDataCatalog'),
  database: name,
  /** Where the tables' data and metadata are (`s3://bucket/prefix/`): the worker's S3 grants in AWS. */
  location: z.string().regex(/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\/.+\/$/, 'must be an s3:// folder ending in /, e.g. s3://warehouse/analytics/'),
  /** How long to wait for one query before the attempt is given up (retried later). */
  queryTimeoutSeconds: z.int().min(10).max(840).default(600),
  /** As for lake tables: erasures collected into one DELETE and one compaction. */
  batch: z
    .strictObject({ windowSeconds: z.int().min(0).max(900).default(900), maxSubjects: z.int().min(1).max(1000).default(500) })
    .default({ windowSeconds: 900, maxSubjects: 500 }),
  tables: z
    .array(
      z.strictObject({
        table: name,
        /** Columns holding an identity (compared as text); a row with the subject's value in any is deleted. */
        columns: z.array(z.strictObject({ identity: z.string().regex(/^[a-z][a-z0-9_]{1,63}$/), column: name })).min(1),
      }),
    )
    .min(1),
});
export type IcebergSettings = z.output<typeof icebergSettingsSchema>;
