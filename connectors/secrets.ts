import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { ConnectorPermanentError } from '#core/errors';

/**
 * Where a connection string or credential comes from. Never the data map itself: an environment
 * variable or a file (local mode), a Secrets Manager secret or an SSM SecureString parameter (AWS).
 */
export const secretSourceSchema = z.union([
  z.strictObject({ env: z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'must be an environment variable name') }),
  z.strictObject({ file: z.string().min(1) }),
  z.strictObject({ secretArn: z.string().startsWith('arn:') }),
  z.strictObject({ ssmParameter: z.string().regex(/^\/[A-Za-z0-9_.\-/]{1,1010}$/, 'must be a parameter name starting with /') }),
]);
export type SecretSource = z.infer<typeof secretSourceSchema>;

/**
 * The secret's value. A Secrets Manager secret in RDS's JSON shape ({engine, host, port, username,
 * password, dbname}) becomes a connection URL; any other secret is used as it is.
 */
/** Where a system's connection secret comes from, for the kinds that have one (SQL, Redis). */
export function connectionSource(settings: unknown): SecretSource | undefined {
  const parsed = secretSourceSchema.safeParse((settings as { connection?: { url?: unknown } } | undefined)?.connection?.url);
  return parsed.success ? parsed.data : undefined;
}

/**
 * Every secret a system's settings name, with where it is: the connection string (SQL, Redis), a
 * webhook service's signing secret, and a vendor's credentials (`http`).
 */
export function secretSources(settings: unknown): { readonly at: string; readonly source: SecretSource }[] {
  const out: { at: string; source: SecretSource }[] = [];
  const connection = connectionSource(settings);
  if (connection) out.push({ at: 'connection.url', source: connection });
  const secret = secretSourceSchema.safeParse((settings as { secret?: unknown } | undefined)?.secret);
  if (secret.success) out.push({ at: 'secret', source: secret.data });
  const credentials = (settings as { credentials?: unknown } | undefined)?.credentials;
  if (credentials && typeof credentials === 'object') {
    for (const [name, value] of Object.entries(credentials)) {
      const parsed = secretSourceSchema.safeParse(value);
      if (parsed.success) out.push({ at: `credentials.${name}`, source: parsed.data });
    }
  }
  return out;
}

export interface SecretStores {
  /** A Secrets Manager secret's string. */
  readonly secret: (arn: string) => Promise<string | undefined>;
  /** An SSM parameter's decrypted value. */
  readonly parameter: (name: string) => Promise<string | undefined>;
}

export async function readSecret(source: SecretSource, stores: SecretStores): Promise<string> {
  let value: string | undefined;
  if ('env' in source) value = process.env[source.env];
  else if ('file' in source) value = (await readFile(source.file, 'utf8')).trim();
  else if ('secretArn' in source) value = await stores.secret(source.secretArn);
  else value = await stores.parameter(source.ssmParameter);
  if (!value) {
    const where = 'env' in source ? `$${source.env}` : 'file' in source ? source.file : 'secretArn' in source ? source.secretArn : source.ssmParameter;
    throw new ConnectorPermanentError(`connection secret ${where} is empty or missing`);
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
