import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { ConnectorPermanentError } from '#core/errors';

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

/**
 * The secret's value. A Secrets Manager secret in RDS's JSON shape ({engine, host, port, username,
 * password, dbname}) becomes a connection URL; any other secret is used as it is.
 */
export async function readSecret(source: SecretSource, fetchSecret: (arn: string) => Promise<string | undefined>): Promise<string> {
  let value: string | undefined;
  if ('env' in source) value = process.env[source.env];
  else if ('file' in source) value = (await readFile(source.file, 'utf8')).trim();
  else value = await fetchSecret(source.secretArn);
  if (!value) {
    throw new ConnectorPermanentError(`connection secret ${'env' in source ? `$${source.env}` : 'file' in source ? source.file : source.secretArn} is empty or missing`);
  }
  return fromRdsSecret(value) ?? value;
}

function fromRdsSecret(value: string): string | undefined {
  let parsed: { engine?: string; host?: string; port?: number; username?: string; password?: string; dbname?: string };
  try {
    parsed = JSON.parse(value) as typeof parsed;
  } catch {
    return undefined;
  }
  if (!parsed.host || !parsed.username) return undefined;
  const scheme = /mysql|maria/i.test(parsed.engine ?? '') ? 'mysql' : 'postgres';
  const auth = `${encodeURIComponent(parsed.username)}${parsed.password ? `:${encodeURIComponent(parsed.password)}` : ''}`;
  return `${scheme}://${auth}@${parsed.host}${parsed.port ? `:${String(parsed.port)}` : ''}/${encodeURIComponent(parsed.dbname ?? '')}`;
}
