import { PGlite } from '@electric-sql/pglite';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SqlConnector } from '#connectors/sql/connector';
import { mysqlDatabase, pglite, postgres, type SqlDatabase } from '#connectors/sql/database';
import { sqlSettingsSchema } from '#connectors/sql/settings';
import type { Identity } from '#core/identity';
import {
  NEIGHBOUR_EMAILS,
  NEIGHBOUR_USER_IDS,
  SUBJECT_EMAIL,
  SUBJECT_EMAIL_STORED,
  SUBJECT_USER_ID,
  SUBMITTED_EMAIL,
} from '../fixtures/hostile.ts';

/**
 * The hostile-data corpus through the SQL connector, on the real servers (PGlite where no
 * PostgreSQL URL is given; MySQL/MariaDB required under CI=true): the subject stored in other case,
 * Unicode forms and padding, neighbours one character apart, search syntax stored literally. The
 * action takes every form it should, the wider net reports what it left, and every neighbour's row
 * is byte-for-byte as it was.
 */
const ci = process.env['CI'] === 'true';
const postgresUrl = process.env['LETHE_TEST_POSTGRES_URL'];
const mysqlUrl = process.env['LETHE_TEST_MYSQL_URL'];
if (ci && (!postgresUrl || !mysqlUrl)) throw new Error('CI=true: LETHE_TEST_POSTGRES_URL and LETHE_TEST_MYSQL_URL are required');

const backends: { name: string; skip?: string; open: () => Promise<SqlDatabase> }[] = [
  postgresUrl ? { name: 'PostgreSQL server', open: () => Promise.resolve(postgres(postgresUrl)) } : { name: 'PostgreSQL (embedded PGlite)', open: async () => pglite(await PGlite.create()) },
  { name: 'MySQL/MariaDB server', ...(mysqlUrl ? {} : { skip: 'no LETHE_TEST_MYSQL_URL' }), open: () => Promise.resolve(mysqlDatabase(mysqlUrl!)) },
];

const command = (identities: Identity[]) => ({ requestId: 'r-hostile', action: 'delete' as const, identities, keyedHash: () => '' });

describe.each(backends)('SqlConnector under hostile data ($name)', ({ skip, open }) => {
  let db: SqlDatabase;
  let users: string;
  let orders: string;
  const ph = (n: number) => Array.from({ length: n }, (_, i) => (db.dialect === 'postgres' ? `$${String(i + 1)}` : '?')).join(', ');

  beforeAll(async () => {
    if (!skip) db = await open();
  });
  afterAll(async () => {
    if (!skip) await db.close();
  });
  beforeEach(async () => {
    if (skip) return;
    const suffix = randomBytes(4).toString('hex');
    users = `hostile_users_${suffix}`;
    orders = `hostile_orders_${suffix}`;
    // MySQL's default collation takes `ü` for `u` and `A` for `a`: the connector must not.
    const text = db.dialect === 'mysql' ? 'VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci' : 'TEXT';
    await db.query(`CREATE TABLE ${users} (id VARCHAR(40) PRIMARY KEY, email ${text}, user_id ${text}, crm_id ${text})`);
    await db.query(`CREATE TABLE ${orders} (id VARCHAR(40) PRIMARY KEY, user_ref VARCHAR(40) REFERENCES ${users}(id), note ${text})`);
    const rows: [string, string | null, string | null][] = [
      ['s-normal', SUBJECT_EMAIL_STORED.normal, null],
      ['s-case', SUBJECT_EMAIL_STORED.case, null],
      ['s-nfd', SUBJECT_EMAIL_STORED.nfd, null],
      ['s-space', SUBJECT_EMAIL_STORED.whitespace, null],
      ['s-id', null, SUBJECT_USER_ID],
      ['s-id-case', null, SUBJECT_USER_ID.toUpperCase()], // an exact id in another case: not the action's, but the wider net's
      ...NEIGHBOUR_EMAILS.map((e, i): [string, string, null] => [`n-email-${String(i)}`, e, null]),
      ...NEIGHBOUR_USER_IDS.map((u, i): [string, null, string] => [`n-id-${String(i)}`, null, u]),
    ];
    for (const [id, email, userId] of rows) await db.query(`INSERT INTO ${users} (id, email, user_id, crm_id) VALUES (${ph(4)})`, [id, email, userId, `crm-${id}`]);
    for (const [id] of rows) await db.query(`INSERT INTO ${orders} (id, user_ref, note) VALUES (${ph(3)})`, [`o-${id}`, id, 'x']);
  });

  const connector = () =>
    new SqlConnector(
      db,
      sqlSettingsSchema.parse({
        connection: { url: { env: 'UNUSED' } },
        tables: [
          { name: users, match: [{ identity: 'email', column: 'email' }, { identity: 'user_id', column: 'user_id' }] },
          { name: orders, match: [{ column: 'user_ref', via: { table: users, column: 'id' } }] },
        ],
        provides: [{ identity: 'crm_id', table: users, column: 'crm_id' }],
      }),
    );
  const neighbours = async () => {
    const { rows } = await db.query(`SELECT u.id, u.email, u.user_id, u.crm_id, o.id AS o FROM ${users} u LEFT JOIN ${orders} o ON o.user_ref = u.id WHERE u.id LIKE 'n-%' ORDER BY u.id`);
    return JSON.stringify(rows);
  };
  const left = async () => (await db.query(`SELECT id FROM ${users} WHERE id LIKE 's-%' ORDER BY id`)).rows.map((r) => r['id']);

  it.skipIf(skip)('resolves and deletes the subject stored in another case; reports the Unicode, padded and other-case forms it left; touches no neighbour', async () => {
    const before = await neighbours();
    const subject: Identity[] = [
      { type: 'email', value: SUBJECT_EMAIL },
      { type: 'user_id', value: SUBJECT_USER_ID },
    ];
    // The case-variant row is the subject's: its linked id is found (before, an exact match missed it and the request completed).
    expect((await connector().resolve(subject)).map((i) => i.value).sort()).toEqual(['crm-s-case', 'crm-s-id', 'crm-s-normal']);
    expect(await connector().run(command(subject))).toEqual({ affected: 6 }); // three users, their three orders
    expect(await left()).toEqual(['s-id-case', 's-nfd', 's-space']);
    expect(await connector().verify(command(subject))).toEqual({
      remaining: 0,
      // Each row the wider net finds, and its order (linked through it).
      nearMisses: { unicode: 1, whitespace: 1, case: 1, linked: 3 },
    });
    expect(await neighbours()).toBe(before);
  });

  it.skipIf(skip)('tries the address as the subject submitted it beside its normal form', async () => {
    const before = await neighbours();
    const subject: Identity[] = [{ type: 'email', value: SUBJECT_EMAIL, forms: [SUBMITTED_EMAIL] }];
    expect(await connector().run(command(subject))).toEqual({ affected: 6 }); // the decomposed row too, as submitted
    expect(await left()).toEqual(['s-id', 's-id-case', 's-space']);
    expect(await connector().verify(command(subject))).toEqual({ remaining: 0, nearMisses: { whitespace: 1, linked: 1 } });
    expect(await neighbours()).toBe(before);
  });

  it.skipIf(skip)('says in plan notes which index serves the lower-cased match, or that none does', async () => {
    expect(await connector().notes()).toEqual([expect.stringMatching(new RegExp(`^${users}\\.email is compared lower-cased and no index serves it, so each request scans`)) as string]);
    await db.query(db.dialect === 'postgres' ? `CREATE INDEX ${users}_lower_email ON ${users} (lower(email))` : `CREATE INDEX ${users}_email ON ${users} (email)`);
    const [note] = await connector().notes();
    expect(note).toBe(
      db.dialect === 'postgres'
        ? `${users}.email is compared lower-cased; index ${users}_lower_email (an expression index on lower(email)) serves it`
        : `${users}.email is compared lower-cased; index ${users}_email (the column's collation ignores case, so it prefilters) serves it`,
    );
  });

  it.skipIf(skip)('matches an identity column exactly when the data map says so, and finds nothing of a neighbour', async () => {
    const before = await neighbours();
    const exact = new SqlConnector(
      db,
      sqlSettingsSchema.parse({ connection: { url: { env: 'UNUSED' } }, tables: [{ name: users, match: [{ identity: 'email', column: 'email', normalize: 'exact' }] }, { name: orders, match: [{ column: 'user_ref', via: { table: users, column: 'id' } }] }] }),
    );
    const subject: Identity[] = [{ type: 'email', value: SUBJECT_EMAIL }];
    expect(await exact.run(command(subject))).toEqual({ affected: 2 });
    expect(await exact.verify(command(subject))).toEqual({ remaining: 0, nearMisses: { case: 1, unicode: 1, whitespace: 1, linked: 3 } });
    expect(await neighbours()).toBe(before);
    // Search syntax as a subject's value matches the row that holds it literally, and no other.
    const star: Identity[] = [{ type: 'email', value: '*@example.com' }, { type: 'user_id', value: '%' }];
    expect(await connector().run(command(star))).toEqual({ affected: 4 });
    const { rows } = await db.query(`SELECT id FROM ${users} WHERE id LIKE 'n-%' ORDER BY id`);
    expect(rows.map((r) => r['id'])).not.toContain('n-email-5');
    expect(rows).toHaveLength(NEIGHBOUR_EMAILS.length + NEIGHBOUR_USER_IDS.length - 2);
  });
});
