import { z } from 'zod';

/**
 * Where a connection string or credential comes from. Never the data map itself: an environment
 * variable or a file (local mode), or a Secrets Manager secret (AWS).
 */
export const secretSourceSchema = z.union([
  z.strictObject({ env: z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'must be an environment variable name') }),
  z.strictObject({ file: z.string().min(1) }),
  z.strictObject({ secretArn: z.string().startsWith('arn:') }),
]);
export type SecretSource = z.infer<typeof secretSourceSchema>;
