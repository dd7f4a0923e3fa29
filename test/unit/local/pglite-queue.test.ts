import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DataMap } from '#core/config';
import { startLocalDatabases, type LocalDatabases } from '#local/sample-data';

/**
 * Local mode's PGlite server with many connections at once, as local mode's workers use it: each
 * connection's extended-protocol batches and transactions stay whole while others come and go
 * (pglite-socket's own queue let them interleave: SQLSTATE 34000, 26000), and a failed statement
 * fails alone (its queue used to stop for good).
 */
const dataMap = {
  version: 1,
  systems: [{ name: 'db', connector: 'postgres', identities: ['email'], provides: [], dependsOn: [], actions: {}, concurrency: 1, heartbeatSeconds: 60, timeoutSeconds: 60, maxAttempts: 3, settings: { connection: { url: { env: 'LETHE_TEST_PGLITE_QUEUE_URL' } } } }],
} as unknown as DataMap;

describe('Class: SessionQueue (local mode PGlite server)', () => {
  let databases: LocalDatabases;
  const clients: pg.Client[] = [];

  beforeAll(async () => {
    delete process.env['LETHE_TEST_PGLITE_QUEUE_URL'];
    databases = await startLocalDatabases(dataMap);
    for (let i = 0; i < 4; i += 1) {
      const client = new pg.Client({ connectionString: databases.urls['LETHE_TEST_PGLITE_QUEUE_URL'] });
      await client.connect();
      clients.push(client);
    }
    await clients[0]!.query('CREATE TABLE counted (client int, n int)');
  });
  afterAll(async () => {
    for (const c of clients) await c.end();
    await databases.stop();
  });

  it("keeps each connection's statements its own while pools of them delete and verify at once, connections coming and going", async () => {
    // As four worker environments' SQL connectors use it: a transaction of deletes, then a count to
    // verify; pools that close idle connections quickly (twelve connections in all, of the 16 allowed). pglite-socket's own queue failed about 1
    // in 30 of these with SQLSTATE 34000 or 26000.
    await clients[0]!.query(`CREATE TABLE accounts (id serial PRIMARY KEY, email text); CREATE TABLE orders (id serial PRIMARY KEY, account int REFERENCES accounts (id))`);
    await clients[0]!.query(`INSERT INTO accounts (email) SELECT 's' || g || '@example.com' FROM generate_series(1, 400) g`);
    await clients[0]!.query('INSERT INTO orders (account) SELECT id FROM accounts, generate_series(1, 2)');
    const url = databases.urls['LETHE_TEST_PGLITE_QUEUE_URL']!;
    const pools = Array.from({ length: 4 }, () => new pg.Pool({ connectionString: url, max: 2, idleTimeoutMillis: 50 }));
    const outcomes = await Promise.allSettled(
      Array.from({ length: 400 }, async (_, i) => {
        const pool = pools[i % 4]!;
        const email = `s${String(i + 1)}@example.com`;
        const c = await pool.connect();
        try {
          await c.query('BEGIN');
          await c.query('DELETE FROM orders WHERE account IN (SELECT id FROM accounts WHERE email = $1)', [email]);
          await c.query('DELETE FROM accounts WHERE email = $1', [email]);
          await c.query('COMMIT');
        } finally {
          c.release();
        }
        return (await pool.query<{ n: string }>('SELECT count(*) AS n FROM accounts WHERE email = $1', [email])).rows[0]!.n;
      }),
    );
    for (const pool of pools) await pool.end();
    expect(outcomes.filter((o) => o.status === 'rejected').map((o) => String(((o).reason as { code?: string }).code))).toEqual([]);
    expect(outcomes.every((o) => o.status === 'fulfilled' && o.value === '0')).toBe(true);
  });

  it('lets a transaction finish before another connection takes the session', async () => {
    await Promise.all(
      clients.map(async (c, id) => {
        for (let k = 0; k < 10; k += 1) {
          await c.query('BEGIN');
          const before = await c.query<{ count: string }>('SELECT count(*) FROM counted WHERE client = $1', [id]);
          await c.query('INSERT INTO counted VALUES ($1, $2)', [id, k]);
          const after = await c.query<{ count: string }>('SELECT count(*) FROM counted WHERE client = $1', [id]);
          expect(Number(after.rows[0]!.count)).toBe(Number(before.rows[0]!.count) + 1);
          await c.query('COMMIT');
        }
      }),
    );
    expect((await clients[0]!.query<{ count: string }>('SELECT count(*) FROM counted')).rows[0]!.count).toBe('40');
  });

  it('fails a failing statement alone, and serves everyone after it', async () => {
    const results = await Promise.allSettled(clients.map((c, i) => c.query(i === 3 ? 'SELECT 1 / $1::int' : 'SELECT $1::int AS n', [i === 3 ? 0 : i])));
    expect(results.map((r) => r.status)).toEqual(clients.map((_, i) => (i === 3 ? 'rejected' : 'fulfilled')));
    expect((results[3] as PromiseRejectedResult).reason).toMatchObject({ code: '22012' });
    const again = await Promise.all(clients.map((c, i) => c.query<{ n: number }>('SELECT $1::int AS n', [i])));
    expect(again.map((r) => r.rows[0]!.n)).toEqual(clients.map((_, i) => i));
  });
});
