import { z } from 'zod';
import type { Action } from '#core/request';
import { identityTemplate } from '../templates.ts';
import { secretSourceSchema } from '../secrets.ts';

export const REDIS_ACTIONS: readonly Action[] = ['delete'];

const template = identityTemplate(512);

/** `settings` of a `connector: redis` system. */
export const redisSettingsSchema = z.strictObject({
  connection: z.strictObject({ url: secretSourceSchema }),
  /** What holds the subject's data; each entry applies for every identity its placeholders name. */
  entries: z
    .array(
      z.union([
        /** One key, e.g. `profile:{user_id}`. */
        z.strictObject({ key: template }),
        /** Every key matching a glob pattern (found with SCAN, never KEYS), e.g. `cart:{user_id}:*`. */
        z.strictObject({ pattern: template }),
        /** A field of a hash, e.g. hash `users:by-email`, field `{email}`. */
        z.strictObject({ hash: z.string().min(1).max(512), field: template }),
      ]),
    )
    .min(1),
});
export type RedisSettings = z.infer<typeof redisSettingsSchema>;
export type RedisEntry = RedisSettings['entries'][number];
