import type { PGlite } from '@electric-sql/pglite';
import mysql from 'mysql2/promise';
import pg from 'pg';

export type Dialect = 'postgres' | 'mysql';

export interface SqlResult {
  readonly rows: Record<string, unknown>[];
  /** Rows changed by INSERT, UPDATE or DELETE; rows returned by SELECT. */
  readonly rowCount: number;
}

export interface SqlSession {
  query(sql: string, params?: readonly unknown[]): Promise<SqlResult>;
}

/** A database the SQL connector can use: parameterized queries and transactions, whatever the driver. */
export interface SqlDatabase extends SqlSession {
  readonly dialect: Dialect;
  transaction<T>(work: (session: SqlSession) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** PostgreSQL through node-postgres. */
export function postgres(url: string): SqlDatabase {
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  const run = async (client: pg.Pool | pg.PoolClient, sql: string, params: readonly unknown[] = []) => {
    const out = await client.query(sql, [...params]);
    return { rows: out.rows as Record<string, unknown>[], rowCount: out.rowCount ?? out.rows.length };
  };
  return {
    dialect: 'postgres',
    query: (sql, params) => run(pool, sql, params),
    transaction: async (work) => {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const result = await work({ query: (sql, params) => run(client, sql, params) });
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      } finally {
        client.release();
      }
    },
    close: () => pool.end(),
  };
}

/** PostgreSQL embedded in the process (PGlite): local mode and tests without a server. */
export function pglite(db: PGlite): SqlDatabase {
  const run = async (q: Pick<PGlite, 'query'>, sql: string, params: readonly unknown[] = []) => {
    const out = await q.query<Record<string, unknown>>(sql, [...params]);
    return { rows: out.rows, rowCount: out.affectedRows ?? out.rows.length };
  };
  return {
    dialect: 'postgres',
    query: (sql, params) => run(db, sql, params),
    transaction: (work) => db.transaction((tx) => work({ query: (sql, params) => run(tx, sql, params) })),
    close: () => db.close(),
  };
}

/** MySQL or MariaDB through mysql2, with server-side prepared statements. */
export function mysqlDatabase(url: string): SqlDatabase {
  const pool = mysql.createPool({ uri: url, connectionLimit: 4 });
  const run = async (conn: mysql.Pool | mysql.PoolConnection, sql: string, params: readonly unknown[] = []) => {
    const [out] = await conn.execute(sql, params as never[]);
    if (Array.isArray(out)) return { rows: out as Record<string, unknown>[], rowCount: out.length };
    return { rows: [], rowCount: (out as mysql.ResultSetHeader).affectedRows };
  };
  return {
    dialect: 'mysql',
    query: (sql, params) => run(pool, sql, params),
    transaction: async (work) => {
      const conn = await pool.getConnection();
      try {
        await conn.beginTransaction();
        const result = await work({ query: (sql, params) => run(conn, sql, params) });
        await conn.commit();
        return result;
      } catch (error) {
        await conn.rollback().catch(() => undefined);
        throw error;
      } finally {
        conn.release();
      }
    },
    close: () => pool.end(),
  };
}
