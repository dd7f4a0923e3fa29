import { z } from 'zod';
import type { Action } from '#core/request';

export const LAKE_ACTIONS: readonly Action[] = ['delete'];

const identityType = z.string().regex(/^[a-z][a-z0-9_]{1,63}$/, 'must be an identity type');

/**
 * `settings` of a `connector: lake` system: analytics tables as objects on S3, Parquet or JSON
 * Lines (optionally gzip), and the columns that hold identities. Lethe finds the subject's rows
 * there and rewrites each object that has any without them.
 */
export const lakeSettingsSchema = z.strictObject({
  /**
   * Erasures are collected and done together, each object rewritten once for all of them: when the
   * first has waited `windowSeconds` (at most 900, SQS's longest delay; 0: each at once), or when
   * `maxSubjects` are waiting.
   */
  batch: z
    .strictObject({ windowSeconds: z.int().min(0).max(900).default(900), maxSubjects: z.int().min(1).max(10_000).default(1000) })
    .default({ windowSeconds: 900, maxSubjects: 1000 }),
  tables: z
    .array(
      z.strictObject({
        bucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be an S3 bucket name'),
        /** The table's objects are under it, e.g. `events/`. Not a Delta Lake or Hudi table: its log lists its files. */
        prefix: z
          .string()
          .max(1024)
          .default('')
          .refine((p) => !p.split('/').some((s) => s === '_delta_log' || s === '.hoodie'), {
            message: 'is inside a Delta Lake or Hudi table log: rewriting files underneath a table log corrupts the table; erase through the table engine',
          }),
        format: z.enum(['parquet', 'jsonl']),
        /** Top-level (Parquet) or dotted (JSON) columns that hold an identity: a row with the subject's value in any is removed. */
        columns: z.array(z.strictObject({ identity: identityType, column: z.string().min(1).max(256) })).min(1),
        /**
         * Hive-style partitions (`.../user_id=42/...`) keyed by an identity: an object under another
         * value of that key is skipped unread.
         */
        partitions: z.array(z.strictObject({ identity: identityType, key: z.string().regex(/^[A-Za-z0-9_]{1,128}$/) })).default([]),
      }),
    )
    .min(1),
});
export type LakeSettings = z.output<typeof lakeSettingsSchema>;
export type LakeTable = LakeSettings['tables'][number];
