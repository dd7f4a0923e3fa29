import { z } from 'zod';
import { ACTIONS } from '#core/request';
import { secretSourceSchema } from '../secrets.ts';

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

/**
 * `settings` of a `connector: webhook` system: one of the company's own services, reached with a
 * signed POST (see protocol.ts). The service says what it handles; the system's `actions` map
 * request types onto those.
 */
export const webhookSettingsSchema = z.strictObject({
  /** The service's endpoint: https, or http on this machine (local mode and tests). */
  url: z.url().refine((u) => {
    const url = new URL(u);
    return url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK.has(url.hostname));
  }, 'must be an https URL (http only to 127.0.0.1 or localhost)'),
  /** The shared signing secret, `whsec_` + base64 of at least 24 random bytes: a secret by reference. */
  secret: secretSourceSchema,
  /** The actions the service carries out. */
  handles: z.array(z.enum(ACTIONS)).min(1).default(['delete']),
  /** How long one POST may take before it counts as a network failure (retried; three tries fit the worker's 2 minutes). */
  callTimeoutSeconds: z.int().min(1).max(30).default(30),
  /** How long an `accepted` task may wait for the service's callback; default: the system's timeoutSeconds. */
  callbackDeadlineSeconds: z.int().min(60).max(31_536_000).optional(),
});
export type WebhookSettings = z.output<typeof webhookSettingsSchema>;
