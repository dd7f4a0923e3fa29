import { PGlite } from '@electric-sql/pglite';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mysqlDatabase, pglite, postgres, type SqlDatabase } from '#connectors/sql/database';
import { SqlConnector } from '#connectors/sql/connector';
import { sqlSettingsSchema } from '#connectors/sql/settings';
import { ConnectorPermanentError, ConnectorRetryableError } from '#core/errors';
import type { Identity } from '#core/identity';
import type { Restriction } from '#core/ports';
import { HOSTILE_RUNS, hostileIdentifier } from '../fixtures/hostile.ts';

/**
 * The SQL connector against real servers: PostgreSQL at LETHE_TEST_POSTGRES_URL (else embedded
 * PGlite), MySQL/MariaDB at LETHE_TEST_MYSQL_URL. Without a MySQL URL that suite is skipped with
 * the reason printed, except under CI=true, where it fails instead.
 */
const ci = process.env['CI'] === 'true';
const postgresUrl = process.env['LETHE_TEST_POSTGRES_URL'];
const mysqlUrl = process.env['LETHE_TEST_MYSQL_URL'];
if (ci && (!postgresUrl || !mysqlUrl)) throw new Error('CI=true: LETHE_TEST_POSTGRES_URL and LETHE_TEST_MYSQL_URL are required');
if (!mysqlUrl) console.warn('skipping the MySQL/MariaDB connector tests: no LETHE_TEST_MYSQL_URL');

const backends: { name: string; skip?: string; open: () => Promise<SqlDatabase>; unreachable?: string }[] = [
  postgresUrl
    ? { name: 'PostgreSQL server', open: () => Promise.resolve(postgres(postgresUrl)), unreachable: 'postgres://postgres@127.0.0.1:9/none' }
    : { name: 'PostgreSQL (embedded PGlite)', open: async () => pglite(await PGlite.create()) },
  {
    name: 'MySQL/MariaDB server',
    ...(mysqlUrl ? {} : { skip: 'no LETHE_TEST_MYSQL_URL' }),
    open: () => Promise.resolve(mysqlDatabase(mysqlUrl!)),
    unreachable: 'mysql://root@127.0.0.1:9/none',
  },
];

const keyedHash = (v: string) => `${Buffer.from(v).toString('hex').padEnd(64, '0').slice(0, 64)}`;
const HOSTILE = ["' OR '1'='1", '*', '%', '_', "ada@example.com'; DROP TABLE x; --", 'аda@example.com', 'a'.repeat(5000), '\\', '"'];

describe.each(backends)('Class: SqlConnector ($name)', ({ skip, open, unreachable }) => {
  let db: SqlDatabase;
  let t: { users: string; orders: string; addresses: string };

  beforeAll(async () => {
    if (skip) return;
    db = await open();
  });
  afterAll(async () => {
    if (!skip) await db.close();
  });

  beforeEach(async () => {
    if (skip) return;
    const suffix = randomBytes(4).toString('hex');
    t = { users: `users_${suffix}`, orders: `orders_${suffix}`, addresses: `addresses_${suffix}` };
    const text = db.dialect === 'mysql' ? 'VARCHAR(255)' : 'TEXT';
    await db.query(
      `CREATE TABLE ${t.users} (id ${text} PRIMARY KEY, email ${text}, name ${text}, phone ${text}, crm_contact_id ${text}, restricted BOOLEAN DEFAULT FALSE)`,
    );
    for (const child of [t.orders, t.addresses]) {
      await db.query(`CREATE TABLE ${child} (id ${text} PRIMARY KEY, user_id ${text} REFERENCES ${t.users}(id), note ${text})`);
    }
    const users = [
      ['u1', 'ada@example.com', 'Ada', '+442079460958', 'crm-1'],
      ['u2', 'grace@example.com', 'Grace', '+12025550173', 'crm-2'],
      ...HOSTILE.slice(0, 6).map((email, i) => [`canary-${String(i)}`, `canary${String(i)}@example.com`, email, null, null]),
    ];
    for (const u of users) await db.query(`INSERT INTO ${t.users} (id, email, name, phone, crm_contact_id) VALUES (${ph(5)})`, u);
    for (const [id, user] of [['o1', 'u1'], ['o2', 'u1'], ['o3', 'u2']]) await db.query(`INSERT INTO ${t.orders} (id, user_id, note) VALUES (${ph(3)})`, [id, user, 'x']);
    await db.query(`INSERT INTO ${t.addresses} (id, user_id, note) VALUES (${ph(3)})`, ['a1', 'u1', 'London']);
  });

  const ph = (n: number) => Array.from({ length: n }, (_, i) => (db.dialect === 'postgres' ? `$${String(i + 1)}` : '?')).join(', ');
  /** Listed parent first on purpose: the connector must find the delete order itself. */
  const settings = (overrides: { usersMatchColumn?: string } = {}) =>
    sqlSettingsSchema.parse({
      connection: { url: { env: 'UNUSED' } },
      tables: [
        {
          name: t.users,
          match: [
            { identity: 'email', column: overrides.usersMatchColumn ?? 'email' },
            { identity: 'user_id', column: 'id' },
          ],
          anonymize: { email: { strategy: 'hmac' }, name: { strategy: 'null' }, phone: { strategy: 'constant', value: 'redacted' } },
          restrictColumn: 'restricted',
        },
        { name: t.orders, match: [{ column: 'user_id', via: { table: t.users, column: 'id' } }] },
        { name: t.addresses, match: [{ column: 'user_id', via: { table: t.users, column: 'id' } }] },
      ],
      provides: [{ identity: 'crm_contact_id', table: t.users, column: 'crm_contact_id' }],
    });
  const command = (action: 'delete' | 'anonymize' | 'restrict' | 'lift', identities: Identity[]) => ({ requestId: 'r', action, identities, keyedHash });
  const ada: Identity[] = [{ type: 'email', value: 'ada@example.com' }];
  const count = async (table: string) => Number((await db.query(`SELECT COUNT(*) AS n FROM ${table}`)).rows[0]?.['n']);
  const userRow = async (id: string) => (await db.query(`SELECT * FROM ${t.users} WHERE id = ${ph(1)}`, [id])).rows[0];

  it.skipIf(skip)('resolves linked identities before anything is deleted', async () => {
    expect(await new SqlConnector(db, settings()).resolve(ada)).toEqual([{ type: 'crm_contact_id', value: 'crm-1' }]);
  });

  it.skipIf(skip)('deletes the subject across tables in foreign-key order, in one transaction, and nothing else', async () => {
    const connector = new SqlConnector(db, settings());

    expect(await connector.run(command('delete', ada))).toEqual({ affected: 4 });

    expect(await userRow('u1')).toBeUndefined();
    expect(await userRow('u2')).toBeDefined();
    expect([await count(t.users), await count(t.orders), await count(t.addresses)]).toEqual([7, 1, 0]);
    expect(await connector.verify(command('delete', ada))).toEqual({ remaining: 0 });
    expect(await connector.run(command('delete', ada))).toEqual({ affected: 0 });
  });

  it.skipIf(skip)('anonymizes by strategy, idempotently, and verifies by rereading', async () => {
    const connector = new SqlConnector(db, settings());
    const byId: Identity[] = [{ type: 'user_id', value: 'u1' }];
    expect(await connector.verify(command('anonymize', byId))).toEqual({ remaining: 1 });

    expect(await connector.run(command('anonymize', byId))).toEqual({ affected: 1 });

    const row = await userRow('u1');
    expect(row).toMatchObject({ email: keyedHash('ada@example.com'), name: null, phone: 'redacted', crm_contact_id: 'crm-1' });
    expect(await connector.verify(command('anonymize', byId))).toEqual({ remaining: 0 });
    expect(await connector.run(command('anonymize', byId))).toEqual({ affected: 0 });
    expect(await userRow('u2')).toMatchObject({ email: 'grace@example.com', name: 'Grace' });
  });

  it.skipIf(skip)('restricts what is not restricted yet, recording it first, and lifts exactly that', async () => {
    const connector = new SqlConnector(db, settings());
    // A second account of Ada's, restricted by an administrator before Lethe was asked: not Lethe's to lift.
    await db.query(`INSERT INTO ${t.users} (id, email, restricted) VALUES (${ph(3)})`, ['u1-old', 'ada@example.com', true]);
    const flagged = async () => (await db.query(`SELECT id FROM ${t.users} WHERE restricted = TRUE ORDER BY id`)).rows.map((r) => r['id']);

    // A record that cannot be kept restricts nothing.
    const failing = { ...command('restrict', ada), recordRestriction: () => Promise.reject(new ConnectorRetryableError('store down')) };
    await expect(connector.run(failing)).rejects.toThrow(ConnectorRetryableError);
    expect(await flagged()).toEqual(['u1-old']);

    const recorded: Restriction[] = [];
    const restrict = { ...command('restrict', ada), recordRestriction: (r: Restriction) => Promise.resolve(void recorded.push(r)) };
    expect(await connector.run(restrict)).toEqual({ affected: 1 });
    expect(recorded).toEqual([{ [t.users]: ['u1'] }]);
    expect(await flagged()).toEqual(['u1', 'u1-old']);
    expect(await connector.verify(restrict)).toEqual({ remaining: 0 });
    expect(await connector.run(restrict)).toEqual({ affected: 0 });
    expect(recorded).toHaveLength(1);

    const lift = { ...command('lift', ada), restrictions: recorded };
    expect(await connector.verify(lift)).toEqual({ remaining: 1 });
    // Without the record, a plan can only say how many of the subject's rows are restricted at most.
    expect(await connector.verify(command('lift', ada))).toEqual({ remaining: 2 });
    expect(await connector.run(lift)).toEqual({ affected: 1 });
    expect(await flagged()).toEqual(['u1-old']);
    expect(await connector.verify(lift)).toEqual({ remaining: 0 });
    expect(await connector.run(lift)).toEqual({ affected: 0 });
    await expect(connector.run(command('lift', ada))).rejects.toThrow(ConnectorPermanentError);
  });

  it.skipIf(skip)('deletes nothing for hostile identifiers: every canary row remains', async () => {
    const connector = new SqlConnector(db, settings());
    const before = [await count(t.users), await count(t.orders), await count(t.addresses)];

    for (const value of HOSTILE) {
      const identities = [{ type: 'email', value }, { type: 'user_id', value }];
      expect(await connector.run(command('delete', identities))).toEqual({ affected: 0 });
      expect(await connector.run(command('anonymize', identities))).toEqual({ affected: 0 });
    }

    expect([await count(t.users), await count(t.orders), await count(t.addresses)]).toEqual(before);
  });

  it.skipIf(skip)(`deletes nothing for ${String(HOSTILE_RUNS)} generated hostile identifiers (fast-check): every canary row remains`, async () => {
    const connector = new SqlConnector(db, settings());
    const before = [await count(t.users), await count(t.orders), await count(t.addresses)];
    const own = new Set(['ada@example.com', 'grace@example.com', 'u1', 'u2', ...HOSTILE.slice(0, 6).map((_, i) => `canary-${String(i)}`), ...HOSTILE.slice(0, 6).map((_, i) => `canary${String(i)}@example.com`)]);
    await fc.assert(
      fc.asyncProperty(hostileIdentifier, async (value) => {
        fc.pre(!own.has(value.trim().toLowerCase()) && !own.has(value));
        expect(await connector.run(command('delete', [{ type: 'email', value }, { type: 'user_id', value }]))).toEqual({ affected: 0 });
      }),
      { numRuns: HOSTILE_RUNS },
    );
    expect([await count(t.users), await count(t.orders), await count(t.addresses)]).toEqual(before);
  }, 600_000);

  it.skipIf(skip)('rolls the whole system back on a failure, naming only the error code', async () => {
    const connector = new SqlConnector(db, settings({ usersMatchColumn: 'no_such_column' }));

    const error = await connector.run(command('delete', ada)).then(() => undefined, (e: unknown) => e as Error);

    expect(error).toBeInstanceOf(ConnectorPermanentError);
    expect(error?.message).toMatch(/^(postgres|mysql) delete: /);
    expect(error?.message).not.toContain('ada@example.com');
    expect([await count(t.orders), await count(t.addresses)]).toEqual([3, 1]);
  });

  it.skipIf(skip || !unreachable)('fails retryably when the server cannot be reached', async () => {
    const far = db.dialect === 'postgres' ? postgres(unreachable!) : mysqlDatabase(unreachable!);
    await expect(new SqlConnector(far, settings()).run(command('delete', ada))).rejects.toThrow(ConnectorRetryableError);
    await far.close();
  });
});
