import { z } from 'zod';
import type { Action } from '#core/request';
import { identityTemplate } from '../templates.ts';

export const S3_ACTIONS: readonly Action[] = ['delete'];

const template = identityTemplate(1024);

/** `settings` of a `connector: s3` system: one bucket, and where the subject's objects are. */
export const s3SettingsSchema = z.strictObject({
  bucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be an S3 bucket name'),
  objects: z
    .array(
      z.union([
        /** One object, e.g. `exports/{user_id}.json`. */
        z.strictObject({ key: template }),
        /** Every object under a prefix, e.g. `uploads/{user_id}/`. */
        z.strictObject({
          prefix: template.refine((t) => !t.endsWith('}'), {
            message: 'end the prefix with a delimiter after the identity, e.g. uploads/{user_id}/, so that u1 does not also match u10',
          }),
        }),
        /** Objects under `within` whose tag `tag` holds the identity, e.g. tag `subject` = `{user_id}`. */
        z.strictObject({ within: z.string().max(1024), tag: z.string().min(1).max(128), value: template }),
      ]),
    )
    .min(1),
});
export type S3Settings = z.infer<typeof s3SettingsSchema>;
