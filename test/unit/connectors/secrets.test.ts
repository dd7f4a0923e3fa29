import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readSecret } from '#connectors/secrets';
import { ConnectorPermanentError } from '#core/errors';

const none = { secret: () => Promise.resolve(undefined), parameter: () => Promise.resolve(undefined) };

describe('Function: readSecret', () => {
  it('reads an environment variable or a file', async () => {
    process.env['LETHE_TEST_SECRET'] = 'postgres://a@b/c';
    expect(await readSecret({ env: 'LETHE_TEST_SECRET' }, none)).toBe('postgres://a@b/c');
    const file = join(mkdtempSync(join(tmpdir(), 'lethe-secret-')), 'url');
    writeFileSync(file, 'redis://127.0.0.1:6379/0\n');
    expect(await readSecret({ file }, none)).toBe('redis://127.0.0.1:6379/0');
  });

  it('turns an RDS-style Secrets Manager secret into a connection URL', async () => {
    const secret = JSON.stringify({ engine: 'mariadb', host: 'db.internal', port: 3306, username: 'lethe', password: 'p@ss/w:rd', dbname: 'app' });
    expect(await readSecret({ secretArn: 'arn:aws:secretsmanager:eu-west-1:1:secret:x' }, { ...none, secret: () => Promise.resolve(secret) })).toBe(
      'mysql://lethe:p%40ss%2Fw%3Ard@db.internal:3306/app',
    );
  });

  it('reads an SSM parameter', async () => {
    const stores = { ...none, parameter: (name: string) => Promise.resolve(name === '/lethe/app-db/url' ? 'postgres://x@y/z' : undefined) };
    expect(await readSecret({ ssmParameter: '/lethe/app-db/url' }, stores)).toBe('postgres://x@y/z');
  });

  it('fails permanently on a missing secret, naming where it looked', async () => {
    await expect(readSecret({ env: 'LETHE_NO_SUCH_SECRET' }, none)).rejects.toThrow(ConnectorPermanentError);
    await expect(readSecret({ env: 'LETHE_NO_SUCH_SECRET' }, none)).rejects.toThrow('$LETHE_NO_SUCH_SECRET');
  });
});
