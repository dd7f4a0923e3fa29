import { z } from 'zod';
import type { Action } from '#core/request';
import { secretSourceSchema } from '../secrets.ts';

export const SQL_ACTIONS: readonly Action[] = ['delete', 'anonymize', 'restrict', 'lift'];

/** Plain SQL identifiers only: they are quoted too, but never taken from anywhere but the data map. */
const identifier = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, 'must be a plain SQL identifier: letters, digits and _, not starting with a digit, at most 63');
const tableName = z
  .string()
  .regex(/^([A-Za-z_][A-Za-z0-9_]{0,62}\.)?[A-Za-z_][A-Za-z0-9_]{0,62}$/, 'must be a table name, optionally schema-qualified');

const strategy = z.discriminatedUnion('strategy', [
  z.strictObject({ strategy: z.literal('null') }),
  z.strictObject({ strategy: z.literal('constant'), value: z.union([z.string(), z.number(), z.boolean()]) }),
  z.strictObject({ strategy: z.literal('hmac') }),
  z.strictObject({ strategy: z.literal('random'), length: z.int().min(1).max(256) }),
]);
export type AnonymizationStrategy = z.infer<typeof strategy>;

const match = z.union([
  /**
   * Rows whose column holds one of the subject's identities of this type. `normalize`: how the
   * column is compared: `lowercase` (the default for e-mail columns) as `lower(column)`, `exact`
   * (the default for any other identity) as it is. Either way the value is also tried as the subject
   * submitted it.
   */
  z.strictObject({ identity: z.string().min(1), column: identifier, normalize: z.enum(['exact', 'lowercase']).optional() }),
  /** Rows whose column points at the subject's rows of another table of this system. */
  z.strictObject({ column: identifier, via: z.strictObject({ table: tableName, column: identifier }) }),
]);
export type Match = z.infer<typeof match>;

/** How an identity column is compared: what it says, else lower-cased for e-mail and exact for the rest. */
export const normalizationOf = (m: { identity: string; normalize?: 'exact' | 'lowercase' | undefined }): 'exact' | 'lowercase' =>
  m.normalize ?? (m.identity === 'email' ? 'lowercase' : 'exact');


/** `settings` of a `connector: postgres` or `connector: mysql` system. */
export const sqlSettingsSchema = z
  .strictObject({
    connection: z.strictObject({ url: secretSourceSchema }),
    tables: z
      .array(
        z.strictObject({
          name: tableName,
          /** Primary key, for row-by-row anonymization. */
          key: identifier.default('id'),
          match: z.array(match).min(1, 'say how to find the subject in this table'),
          anonymize: z.record(identifier, strategy).default({}),
          /** Boolean column set by `restrict` and cleared by `lift`. */
          restrictColumn: identifier.optional(),
        }),
      )
      .min(1),
    /** Linked identities this system yields for the subject, read before anything is deleted. */
    provides: z.array(z.strictObject({ identity: z.string().min(1), table: tableName, column: identifier })).default([]),
  })
  .superRefine((s, ctx) => {
    const names = new Set(s.tables.map((t) => t.name));
    s.tables.forEach((t, i) =>
      t.match.forEach((m, j) => {
        if ('via' in m && !names.has(m.via.table)) {
          ctx.addIssue({ code: 'custom', path: ['tables', i, 'match', j, 'via', 'table'], message: `"${m.via.table}" is not a table of this system` });
        }
      }),
    );
    s.tables.forEach((t, i) => {
      const strategies = Object.values(t.anonymize).map((a) => a.strategy);
      if (strategies.length > 0 && strategies.every((x) => x === 'random')) {
        ctx.addIssue({
          code: 'custom',
          path: ['tables', i, 'anonymize'],
          message: 'random values alone cannot show what is already anonymized: add a null, constant or hmac column',
        });
      }
    });
    s.provides.forEach((p, i) => {
      if (!names.has(p.table)) ctx.addIssue({ code: 'custom', path: ['provides', i, 'table'], message: `"${p.table}" is not a table of this system` });
    });
  });

export type SqlSettings = z.infer<typeof sqlSettingsSchema>;
export type SqlTable = SqlSettings['tables'][number];
