import { randomInt } from 'node:crypto';
import { ConnectorPermanentError, ConnectorRetryableError } from '#core/errors';
import { formsOf, type Identity } from '#core/identity';
import { addNearMisses, nearMissReason, NearMissTally, nearMissTotal, wideForms, wideKey, type NearMisses } from '#core/near-miss';
import { mergeRestrictions, type Connector, type ConnectorCommand, type ConnectorResult, type Restriction, type Verification } from '#core/ports';
import type { Action } from '#core/request';
import type { SqlDatabase, SqlSession } from './database.ts';
import { normalizationOf, SQL_ACTIONS, type AnonymizationStrategy, type Match, type SqlSettings, type SqlTable } from './settings.ts';

type IdentityMatch = Extract<Match, { identity: string }>;
type Net = 'action' | 'wide';

const HASHED = /^[0-9a-f]{64}$/;
const RANDOM_ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

/**
 * Deletes, anonymizes, restricts or lifts a subject's rows in the tables of one PostgreSQL or
 * MySQL/MariaDB database, in one transaction per action, deleting children before parents (the
 * database's foreign keys and the data map's `via` links decide the order). Values are only ever
 * parameters; table and column names come from the validated data map and are quoted.
 *
 * An identity column matches the subject's value and every form the subject gave it in, exactly or
 * lower-cased as the data map says (e-mail columns lower-cased by default). MySQL's own collations
 * take `ü` for `u` and `A` for `a`, so there the comparison is of utf8mb4 bytes, with the column's
 * collation as an index-served prefilter where it is a superset. `verify` casts a wider net than the
 * action (trimmed, lower-cased, in every Unicode normal form): what it finds and the action left are
 * near-misses.
 */
export class SqlConnector implements Connector {
  readonly kind: 'postgres' | 'mysql';
  readonly #db: SqlDatabase;
  readonly #s: SqlSettings;
  readonly #tables: Map<string, SqlTable>;
  /** MySQL: each configured column's collation, by `table.column` (lower-case, bare table name). */
  #collations: Map<string, string> | undefined;

  constructor(db: SqlDatabase, settings: SqlSettings) {
    this.kind = db.dialect === 'postgres' ? 'postgres' : 'mysql';
    this.#db = db;
    this.#s = settings;
    this.#tables = new Map(settings.tables.map((t) => [t.name, t]));
  }

  describe(): { actions: readonly Action[] } {
    return { actions: SQL_ACTIONS };
  }

  async resolve(identities: readonly Identity[]): Promise<Identity[]> {
    return this.#guard('resolve', async () => {
      await this.#prepare();
      const found = new Map<string, Identity>();
      for (const p of this.#s.provides) {
        const params = this.#params();
        const where = this.#condition(this.#table(p.table), identities, params);
        const col = this.#q(p.column);
        const { rows } = await this.#db.query(
          `SELECT DISTINCT ${col} AS v FROM ${this.#q(p.table)} WHERE ${where} AND ${col} IS NOT NULL`,
          params.values,
        );
        for (const row of rows) {
          const value = asText(row['v']);
          found.set(`${p.identity}\u0000${value}`, { type: p.identity, value });
        }
      }
      return [...found.values()];
    });
  }

  async run(command: ConnectorCommand): Promise<ConnectorResult> {
    return this.#guard(command.action, async () => {
      await this.#prepare();
      return this.#db.transaction(async (session) => {
        switch (command.action) {
          case 'delete':
            return { affected: await this.#delete(session, command.identities) };
          case 'anonymize':
            return { affected: await this.#anonymize(session, command) };
          case 'restrict':
            return { affected: await this.#restrict(session, command) };
          case 'lift':
            return { affected: await this.#lift(session, command.restrictions) };
          default:
            throw new ConnectorPermanentError(`${this.kind} connector cannot ${command.action}`);
        }
      });
    });
  }

  async verify(command: ConnectorCommand): Promise<Verification> {
    return this.#guard(`verify ${command.action}`, async () => {
      await this.#prepare();
      let remaining = 0;
      let nearMisses: NearMisses = {};
      for (const table of this.#s.tables) {
        const params = this.#params();
        const where = this.#condition(table, command.identities, params);
        if (command.action === 'delete') {
          const { rows } = await this.#db.query(`SELECT COUNT(*) AS n FROM ${this.#q(table.name)} WHERE ${where}`, params.values);
          remaining += Number(rows[0]?.['n'] ?? 0);
        } else if (command.action === 'anonymize') {
          remaining += (await this.#rowsToAnonymize(this.#db, table, where, params.values, false)).length;
        } else if (command.action === 'restrict' || (command.action === 'lift' && !command.restrictions)) {
          if (!table.restrictColumn) continue;
          const { rows } = await this.#db.query(
            `SELECT COUNT(*) AS n FROM ${this.#q(table.name)} WHERE ${where} AND ${this.#flagPending(table.restrictColumn, command.action)}`,
            params.values,
          );
          remaining += Number(rows[0]?.['n'] ?? 0);
        }
        if (command.action !== 'lift') nearMisses = addNearMisses(nearMisses, await this.#nearMisses(table, command));
      }
      if (command.action === 'lift' && command.restrictions) {
        for (const [table, keys] of Object.entries(mergeRestrictions(command.restrictions))) {
          remaining += await this.#byKeys(this.#db, table, keys, 'count');
        }
      }
      return nearMissTotal(nearMisses) > 0 ? { remaining, nearMisses } : { remaining };
    });
  }

  /**
   * The subject's rows of a table that the wider net finds, the action's own match does not, and
   * the action would have changed: each classed by how its identity differs, never kept.
   */
  async #nearMisses(table: SqlTable, command: ConnectorCommand): Promise<NearMisses> {
    if (command.action === 'restrict' && !table.restrictColumn) return {};
    if (command.action === 'anonymize' && Object.keys(table.anonymize).length === 0) return {};
    const params = this.#params();
    const wide = this.#condition(table, command.identities, params, 0, 'wide');
    if (wide === NOTHING) return {};
    const action = this.#condition(table, command.identities, params, 0, 'action');
    const identityColumns = table.match.filter((m): m is IdentityMatch => 'identity' in m);
    const columns = [...new Set([...identityColumns.map((m) => m.column), ...(command.action === 'anonymize' ? Object.keys(table.anonymize) : [])])];
    const select = columns.length ? columns.map((c) => this.#q(c)).join(', ') : '1 AS one';
    const pending = command.action === 'restrict' ? ` AND ${this.#flagPending(table.restrictColumn!, 'restrict')}` : '';
    const { rows } = await this.#db.query(`SELECT ${select} FROM ${this.#q(table.name)} WHERE ${wide} AND NOT COALESCE(${action}, FALSE)${pending}`, params.values);
    const subject = new Map<string, Set<string>>();
    for (const i of command.identities) {
      const keys = subject.get(i.type) ?? new Set<string>();
      formsOf(i).forEach((f) => keys.add(wideKey(f)));
      subject.set(i.type, keys);
    }
    const out = new NearMissTally();
    for (const row of rows) {
      if (command.action === 'anonymize' && Object.entries(table.anonymize).every(([column, s]) => isAnonymized(s, row[column]))) continue;
      const held = identityColumns
        .map((m) => ({ m, value: row[m.column] }))
        .find(({ m, value }) => value !== null && value !== undefined && subject.get(m.identity)?.has(wideKey(asText(value))));
      out.add(held ? nearMissReason(asText(held.value)) : 'linked');
    }
    return out.counts;
  }

  /** For `lethe plan`: each lower-cased match, and the index that serves it or that none does. */
  async notes(): Promise<string[]> {
    return this.#guard('plan', async () => {
      await this.#prepare();
      const notes: string[] = [];
      for (const table of this.#s.tables) {
        for (const m of table.match.filter((x): x is IdentityMatch => 'identity' in x && normalizationOf(x) === 'lowercase')) {
          const index = await this.#lowerIndex(table, m.column);
          notes.push(
            index
              ? `${table.name}.${m.column} is compared lower-cased; ${index} serves it`
              : `${table.name}.${m.column} is compared lower-cased and no index serves it, so each request scans ${table.name}: ${
                  this.#db.dialect === 'postgres' ? `CREATE INDEX ON ${table.name} (lower(${m.column}))` : `give ${m.column} a case-insensitive collation and an index`
                }`,
          );
        }
      }
      return notes;
    });
  }

  /** The index that serves `lower(column)`: an expression index (PostgreSQL), or an index on a case-insensitive column (MySQL). */
  async #lowerIndex(table: SqlTable, column: string): Promise<string | undefined> {
    const [schema, bare] = table.name.includes('.') ? table.name.split('.') : [undefined, table.name];
    if (this.#db.dialect === 'postgres') {
      const { rows } = await this.#db.query(
        'SELECT indexname AS i, indexdef AS d FROM pg_indexes WHERE tablename = $1 AND schemaname = COALESCE($2, current_schema())',
        [bare, schema ?? null],
      );
      const expression = new RegExp(`lower\\(\\(?"?${column}"?\\)?(::text)?\\)`, 'i');
      const hit = rows.find((r) => typeof r['d'] === 'string' && expression.test(r['d']));
      return hit ? `index ${String(hit['i'])} (an expression index on lower(${column}))` : undefined;
    }
    if (!this.#caseInsensitive(table, column)) return undefined;
    const { rows } = await this.#db.query(
      'SELECT INDEX_NAME AS i FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? AND COLUMN_NAME = ? AND SEQ_IN_INDEX = 1',
      [schema ?? null, bare, column],
    );
    const hit = rows[0];
    return hit ? `index ${String(hit['i'])} (the column's collation ignores case, so it prefilters)` : undefined;
  }

  /** MySQL: read the collations of the configured tables' columns, once. */
  async #prepare(): Promise<void> {
    if (this.#db.dialect !== 'mysql' || this.#collations) return;
    const { rows } = await this.#db.query(
      'SELECT TABLE_NAME AS t, COLUMN_NAME AS c, COLLATION_NAME AS k FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() OR TABLE_SCHEMA IN (?)',
      [[...new Set(this.#s.tables.map((t) => t.name.split('.').length > 1 ? t.name.split('.')[0]! : ''))]],
    );
    this.#collations = new Map(rows.map((r) => [`${String(r['t']).toLowerCase()}.${String(r['c']).toLowerCase()}`, typeof r['k'] === 'string' ? r['k'] : '']));
  }

  /** Whether a MySQL column's own collation ignores case (so that it prefilters a lower-cased match). */
  #caseInsensitive(table: SqlTable, column: string): boolean {
    return /_ci$/i.test(this.#collations?.get(`${table.name.split('.').pop()!.toLowerCase()}.${column.toLowerCase()}`) ?? '');
  }

  /**
   * One identity column's condition. The action: the subject's values as given (and as submitted),
   * exact or lower-cased. The wider net: trimmed and lower-cased, against every Unicode normal form
   * of every value.
   */
  #identityCondition(table: SqlTable, m: IdentityMatch, identities: readonly Identity[], params: Params, net: Net): string | undefined {
    // SQL text cannot hold a NUL (PostgreSQL refuses it as a parameter): such a value matches no row.
    const values = identities.filter((i) => i.type === m.identity).flatMap(formsOf).filter((v) => !v.includes('\u0000'));
    if (values.length === 0) return undefined;
    const col = this.#q(m.column);
    const list = (vs: readonly string[]) => vs.map((v) => params.add(v)).join(', ');
    const postgres = this.#db.dialect === 'postgres';
    if (net === 'wide') {
      return postgres
        ? `lower(btrim(${col}::text, chr(32) || chr(9) || chr(10) || chr(13))) IN (${list(wideForms(values))})`
        : `LOWER(TRIM(REPLACE(REPLACE(REPLACE(CONVERT(${col} USING utf8mb4), CHAR(9), ' '), CHAR(10), ' '), CHAR(13), ' '))) COLLATE utf8mb4_bin IN (${list(wideForms(values))})`;
    }
    const lower = normalizationOf(m) === 'lowercase';
    const wanted = [...new Set(lower ? values.map((v) => v.toLowerCase()) : values)];
    if (postgres) return lower ? `lower(${col}::text) IN (${list(wanted)})` : `${col} IN (${list(wanted)})`;
    const prefilter = !lower || this.#caseInsensitive(table, m.column) ? `${col} IN (${list(wanted)}) AND ` : '';
    const compared = lower ? `LOWER(CONVERT(${col} USING utf8mb4)) COLLATE utf8mb4_bin` : `CONVERT(${col} USING utf8mb4) COLLATE utf8mb4_bin`;
    return `(${prefilter}${compared} IN (${list(wanted)}))`;
  }

  async #delete(session: SqlSession, identities: readonly Identity[]): Promise<number> {
    let affected = 0;
    for (const table of await this.#childrenFirst(session)) {
      const params = this.#params();
      const where = this.#condition(table, identities, params);
      affected += (await session.query(`DELETE FROM ${this.#q(table.name)} WHERE ${where}`, params.values)).rowCount;
    }
    return affected;
  }

  async #anonymize(session: SqlSession, command: ConnectorCommand): Promise<number> {
    let affected = 0;
    for (const table of this.#s.tables) {
      if (Object.keys(table.anonymize).length === 0) continue;
      const params = this.#params();
      const where = this.#condition(table, command.identities, params);
      for (const row of await this.#rowsToAnonymize(session, table, where, params.values, true)) {
        const set = this.#params();
        const assignments = Object.entries(table.anonymize).map(
          ([column, strategy]) => `${this.#q(column)} = ${set.add(anonymized(strategy, row[column], command.keyedHash))}`,
        );
        const key = set.add(row[table.key]);
        affected += (await session.query(`UPDATE ${this.#q(table.name)} SET ${assignments.join(', ')} WHERE ${this.#q(table.key)} = ${key}`, set.values))
          .rowCount;
      }
    }
    return affected;
  }

  /** The subject's rows of a table that still hold a value its anonymization would change. */
  async #rowsToAnonymize(
    session: SqlSession,
    table: SqlTable,
    where: string,
    values: readonly unknown[],
    lock: boolean,
  ): Promise<Record<string, unknown>[]> {
    const columns = Object.keys(table.anonymize);
    if (columns.length === 0) return [];
    const { rows } = await session.query(
      `SELECT ${[table.key, ...columns].map((c) => this.#q(c)).join(', ')} FROM ${this.#q(table.name)} WHERE ${where}${lock ? ' FOR UPDATE' : ''}`,
      values,
    );
    return rows.filter((row) => Object.entries(table.anonymize).some(([column, s]) => !isAnonymized(s, row[column])));
  }

  /**
   * Flag the subject's rows that are not flagged yet, after handing their keys to the caller to
   * record: the rows flagged already (by someone else, or an earlier restriction) are not ours to lift.
   */
  async #restrict(session: SqlSession, command: ConnectorCommand): Promise<number> {
    const tables = this.#restrictable('restrict');
    const restriction: Record<string, string[]> = {};
    for (const table of tables) {
      const params = this.#params();
      const where = this.#condition(table, command.identities, params);
      const { rows } = await session.query(
        `SELECT ${this.#q(table.key)} AS k FROM ${this.#q(table.name)} WHERE ${where} AND ${this.#flagPending(table.restrictColumn!, 'restrict')} FOR UPDATE`,
        params.values,
      );
      if (rows.length > 0) restriction[table.name] = rows.map((r) => asText(r['k']));
    }
    if (Object.keys(restriction).length === 0) return 0;
    await command.recordRestriction?.(restriction);
    let affected = 0;
    for (const [table, keys] of Object.entries(restriction)) affected += await this.#byKeys(session, table, keys, 'restrict');
    return affected;
  }

  /** Clear the flag on exactly the rows that the given restrictions recorded, where it is still set. */
  async #lift(session: SqlSession, restrictions: readonly Restriction[] | undefined): Promise<number> {
    if (!restrictions) throw new ConnectorPermanentError(`${this.kind}: lift needs the restrictions it undoes`);
    this.#restrictable('lift');
    let affected = 0;
    for (const [table, keys] of Object.entries(mergeRestrictions(restrictions))) affected += await this.#byKeys(session, table, keys, 'lift');
    return affected;
  }

  /** Restrict, lift or count (still restricted) the rows of a table with these keys, in batches. */
  async #byKeys(session: SqlSession, tableName: string, keys: readonly string[], what: 'restrict' | 'lift' | 'count'): Promise<number> {
    const table = this.#tables.get(tableName);
    if (!table?.restrictColumn) {
      throw new ConnectorPermanentError(`${this.kind}: restricted rows are recorded in table ${tableName}, which the data map no longer restricts`);
    }
    const column = this.#q(table.restrictColumn);
    let n = 0;
    for (let i = 0; i < keys.length; i += 500) {
      const params = this.#params();
      const list = keys.slice(i, i + 500).map((k) => params.add(k)).join(', ');
      const where = `${this.#q(table.key)} IN (${list}) AND ${this.#flagPending(table.restrictColumn, what === 'restrict' ? 'restrict' : 'lift')}`;
      if (what === 'count') {
        const { rows } = await session.query(`SELECT COUNT(*) AS n FROM ${this.#q(table.name)} WHERE ${where}`, params.values);
        n += Number(rows[0]?.['n'] ?? 0);
      } else {
        n += (await session.query(`UPDATE ${this.#q(table.name)} SET ${column} = ${what === 'restrict' ? 'TRUE' : 'FALSE'} WHERE ${where}`, params.values)).rowCount;
      }
    }
    return n;
  }

  #restrictable(action: 'restrict' | 'lift'): SqlTable[] {
    const tables = this.#s.tables.filter((t) => t.restrictColumn);
    if (tables.length === 0) throw new ConnectorPermanentError(`${this.kind}: no table of this system has a restrictColumn to ${action}`);
    return tables;
  }

  #flagPending(column: string, action: 'restrict' | 'lift'): string {
    const c = this.#q(column);
    return action === 'restrict' ? `(${c} IS NULL OR ${c} = FALSE)` : `${c} = TRUE`;
  }

  /**
   * Where the subject's rows are: an identity column holding one of its identities, or a column
   * pointing at its rows in another table of this system. No applicable identity: no rows.
   */
  #condition(table: SqlTable, identities: readonly Identity[], params: Params, depth = 0, net: Net = 'action'): string {
    const parts: string[] = [];
    for (const m of table.match) {
      if ('identity' in m) {
        const condition = this.#identityCondition(table, m, identities, params, net);
        if (condition) parts.push(condition);
      } else if (depth < 8) {
        const parent = this.#table(m.via.table);
        const inner = this.#condition(parent, identities, params, depth + 1, net);
        if (inner !== NOTHING) {
          parts.push(`${this.#q(m.column)} IN (SELECT ${this.#q(m.via.column)} FROM ${this.#q(parent.name)} WHERE ${inner})`);
        }
      }
    }
    return parts.length ? `(${parts.join(' OR ')})` : NOTHING;
  }

  /** Tables in an order that deletes every referencing row before the row it references. */
  async #childrenFirst(session: SqlSession): Promise<SqlTable[]> {
    const bare = (name: string) => name.split('.').pop()!.toLowerCase();
    const configured = new Map(this.#s.tables.map((t) => [bare(t.name), t]));
    const parentsOf = new Map<string, Set<string>>([...configured.keys()].map((k) => [k, new Set<string>()]));
    for (const t of this.#s.tables) {
      for (const m of t.match) if ('via' in m) parentsOf.get(bare(t.name))?.add(bare(m.via.table));
    }
    for (const [child, parent] of await this.#foreignKeys(session)) {
      if (child !== parent && configured.has(child) && configured.has(parent)) parentsOf.get(child)?.add(parent);
    }
    const ordered: SqlTable[] = [];
    const remaining = new Set(configured.keys());
    while (remaining.size > 0) {
      const leaf = [...remaining].find((t) => ![...remaining].some((other) => parentsOf.get(other)?.has(t)));
      const next = leaf ?? [...remaining][0]!; // a reference cycle: let the database's own rules decide
      ordered.push(configured.get(next)!);
      remaining.delete(next);
    }
    return ordered;
  }

  async #foreignKeys(session: SqlSession): Promise<[string, string][]> {
    const sql =
      this.#db.dialect === 'postgres'
        ? `SELECT tc.table_name AS child, ccu.table_name AS parent
             FROM information_schema.table_constraints tc
             JOIN information_schema.constraint_column_usage ccu
               ON tc.constraint_name = ccu.constraint_name AND tc.constraint_schema = ccu.constraint_schema
            WHERE tc.constraint_type = 'FOREIGN KEY'`
        : `SELECT TABLE_NAME AS child, REFERENCED_TABLE_NAME AS parent
             FROM information_schema.KEY_COLUMN_USAGE
            WHERE TABLE_SCHEMA = DATABASE() AND REFERENCED_TABLE_NAME IS NOT NULL`;
    const { rows } = await session.query(sql);
    return rows.map((r) => [String(r['child']).toLowerCase(), String(r['parent']).toLowerCase()]);
  }

  #table(name: string): SqlTable {
    const table = this.#tables.get(name);
    if (!table) throw new ConnectorPermanentError(`${this.kind}: no table ${name} in this system`);
    return table;
  }

  #q(name: string): string {
    return name
      .split('.')
      .map((part) => (this.#db.dialect === 'postgres' ? `"${part.replaceAll('"', '""')}"` : `\`${part.replaceAll('`', '``')}\``))
      .join('.');
  }

  #params(): Params {
    return new Params(this.#db.dialect);
  }

  async #guard<T>(what: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (error instanceof ConnectorPermanentError || error instanceof ConnectorRetryableError) throw error;
      throw classifySqlError(`${this.kind} ${what}`, error);
    }
  }
}

const NOTHING = '1 = 0';

/** Bound parameters in the order their placeholders appear: `$n` for PostgreSQL, `?` for MySQL. */
class Params {
  readonly values: unknown[] = [];
  readonly #dialect: string;
  constructor(dialect: string) {
    this.#dialect = dialect;
  }
  add(value: unknown): string {
    this.values.push(value);
    return this.#dialect === 'postgres' ? `$${String(this.values.length)}` : '?';
  }
}

/** Whether a value already is what its strategy makes of it (random values are never re-randomized on their own). */
export function isAnonymized(strategy: AnonymizationStrategy, value: unknown): boolean {
  switch (strategy.strategy) {
    case 'null':
      return value === null || value === undefined;
    case 'constant':
      return value !== null && value !== undefined && asText(value) === String(strategy.value);
    case 'hmac':
      return value === null || value === undefined || HASHED.test(asText(value));
    case 'random':
      return true;
  }
}

function anonymized(strategy: AnonymizationStrategy, value: unknown, keyedHash: (v: string) => string): unknown {
  switch (strategy.strategy) {
    case 'null':
      return null;
    case 'constant':
      return strategy.value;
    case 'hmac':
      return value === null || value === undefined || HASHED.test(asText(value)) ? value : keyedHash(asText(value));
    case 'random':
      return Array.from({ length: strategy.length }, () => RANDOM_ALPHABET[randomInt(RANDOM_ALPHABET.length)]).join('');
  }
}

/** A column value as text: what a keyed hash is taken of, and what a constant is compared with. */
function asText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return String(value);
  if (value instanceof Date) return value.toISOString();
  if (Buffer.isBuffer(value)) return value.toString('hex');
  return JSON.stringify(value);
}

const RETRYABLE_SQLSTATE = /^(08|40001|40P01|53|55P03|57P0[123])/;
const RETRYABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'PROTOCOL_CONNECTION_LOST',
  'ER_LOCK_DEADLOCK',
  'ER_LOCK_WAIT_TIMEOUT',
  'ER_CON_COUNT_ERROR',
  'ER_TOO_MANY_USER_CONNECTIONS',
]);

/**
 * SQL errors by class: connection loss, deadlocks, serialization failures and resource limits may
 * pass; anything else (no such table or column, bad credentials, bad data) will not. The message
 * names the error code only: drivers' own messages can quote the values.
 */
export function classifySqlError(target: string, error: unknown): ConnectorRetryableError | ConnectorPermanentError {
  const e = error as { code?: unknown; name?: unknown };
  const code = typeof e.code === 'string' ? e.code : typeof e.name === 'string' ? e.name : 'Error';
  const message = `${target}: ${code}`;
  return RETRYABLE_CODES.has(code) || RETRYABLE_SQLSTATE.test(code)
    ? new ConnectorRetryableError(message, { cause: error })
    : new ConnectorPermanentError(message, { cause: error });
}
