import { z } from 'zod';
import type { Action } from '#core/request';

export const COGNITO_ACTIONS: readonly Action[] = ['delete', 'restrict', 'lift'];

/** `settings` of a `connector: cognito` system: one user pool and how to find the subject there. */
export const cognitoSettingsSchema = z.strictObject({
  userPoolId: z.string().regex(/^[\w-]+_[0-9a-zA-Z]+$/, 'must be a user pool id, e.g. eu-west-1_AbCdEf123'),
  users: z
    .array(
      z.union([
        /** The username is an identity, e.g. `{user_id}`. */
        z.strictObject({ username: z.string().regex(/^\{[a-z][a-z0-9_]{1,63}\}$/, 'must be one {identity_type}') }),
        /** A standard attribute holds an identity, found with ListUsers, e.g. attribute `email`, identity `email`. */
        z.strictObject({
          attribute: z.enum(['email', 'phone_number', 'sub', 'preferred_username', 'name', 'given_name', 'family_name']),
          identity: z.string().min(1),
        }),
      ]),
    )
    .min(1),
});
export type CognitoSettings = z.infer<typeof cognitoSettingsSchema>;
