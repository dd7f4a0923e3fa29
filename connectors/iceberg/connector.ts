import { GetQueryExecutionCommand, paginateGetQueryResults, StartQueryExecutionCommand, type AthenaClient } from '@aws-sdk/client-athena';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConnectorPermanentError, ConnectorRetryableError } from '#core/errors';
import { formsOf, type Identity } from '#core/identity';
import { addNearMisses, wideKey, type NearMisses } from '#core/near-miss';
import type { BatchConnector, ConnectorCommand, ConnectorResult, Verification } from '#core/ports';
import type { Action } from '#core/request';
import { classifyAwsError } from '../aws-errors.ts';
import { ICEBERG_ACTIONS, type IcebergSettings } from './settings.ts';

type Table = IcebergSettings['tables'][number];

/**
 * Apache Iceberg tables through Athena. Athena's DELETE only writes position-delete files: the
 * rows stay in the data files, and in every older snapshot. So an erasure is three statements per
 * table: `DELETE`, then `OPTIMIZE … REWRITE DATA USING BIN_PACK` (compaction: data files rewritten
 * without the deleted rows), then `VACUUM` (snapshots older than the table's
 * `vacuum_max_snapshot_age_seconds` expired, and files no snapshot needs removed). Compaction and
 * vacuum run for every erasure batch, even when nothing was found: a retry after a DELETE that
 * succeeded must still compact.
 *
 * Athena keeps query texts in its history, and DELETE takes no execution parameters; so the
 * queries never carry an identity: a row matches on the SHA-256 of its column's text,
 * `lower(to_hex(sha256(to_utf8(CAST(col AS varchar)))))`, compared with the digests of the
 * subjects' values. Errors carry Athena's error category and type, never the query.
 */
export class IcebergConnector implements BatchConnector {
  readonly kind = 'iceberg';
  readonly #athena: AthenaClient;
  readonly #settings: IcebergSettings;
  readonly #pollMs: number;

  constructor(athena: AthenaClient, settings: IcebergSettings, options: { pollMs?: number } = {}) {
    this.#athena = athena;
    this.#settings = settings;
    this.#pollMs = options.pollMs ?? 1000;
  }

  describe(): { actions: readonly Action[] } {
    return { actions: ICEBERG_ACTIONS };
  }

  resolve(): Promise<Identity[]> {
    return Promise.resolve([]);
  }

  async run(command: ConnectorCommand): Promise<ConnectorResult> {
    if (command.action !== 'delete') throw new ConnectorPermanentError(`iceberg: cannot ${command.action}`);
    return { affected: (await this.runBatch(new Map([[command.requestId, command.identities]]))).get(command.requestId) ?? 0 };
  }

  async verify(command: ConnectorCommand): Promise<Verification> {
    return (await this.verifyBatch(new Map([[command.requestId, command.identities]]))).get(command.requestId) ?? { remaining: 0 };
  }

  async runBatch(subjects: ReadonlyMap<string, readonly Identity[]>): Promise<Map<string, number>> {
    const counts = new Map([...subjects.keys()].map((k) => [k, 0]));
    const batch = [...subjects.keys()].sort().join(',');
    for (const table of this.#settings.tables) {
      const match = matcher(table, subjects);
      if (!match) continue;
      for (const [subject, n] of await this.#count(table, match)) counts.set(subject, (counts.get(subject) ?? 0) + n);
      const name = this.#name(table);
      await this.#query(table, 'delete', `DELETE FROM ${name} WHERE ${match.predicate}`, batch);
      await this.#query(table, 'compact', `OPTIMIZE ${name} REWRITE DATA USING BIN_PACK`, batch);
      await this.#query(table, 'vacuum', `VACUUM ${name}`, batch);
    }
    return counts;
  }

  async verifyBatch(subjects: ReadonlyMap<string, readonly Identity[]>): Promise<Map<string, Verification>> {
    const counts = new Map([...subjects.keys()].map((k) => [k, 0]));
    const near = new Map<string, NearMisses>();
    for (const table of this.#settings.tables) {
      const match = matcher(table, subjects);
      const wide = matcher(table, subjects, 'wide');
      if (!match || !wide) continue;
      for (const [subject, n] of await this.#count(table, match)) counts.set(subject, (counts.get(subject) ?? 0) + n);
      for (const [subject, n] of await this.#nearMisses(table, match, wide)) near.set(subject, addNearMisses(near.get(subject), n));
    }
    return new Map([...counts].map(([k, n]) => [k, near.has(k) ? { remaining: n, nearMisses: near.get(k)! } : { remaining: n }]));
  }

  #name(table: Table): string {
    return `${quote(this.#settings.database)}.${quote(table.table)}`;
  }

  /** Rows per subject: grouped by the digests of every identity column, each row counted once for each of its subjects. */
  async #count(table: Table, match: Match): Promise<Map<string, number>> {
    const digests = match.columns.map((c) => digestOf(c));
    const sql = `SELECT ${digests.join(', ')}, count(*) FROM ${this.#name(table)} WHERE ${match.predicate} GROUP BY ${digests.map((_, i) => String(i + 1)).join(', ')}`;
    const counts = new Map<string, number>();
    for await (const cells of this.#rows(table, 'count', sql)) {
      const n = Number(cells[digests.length] ?? 0);
      const owners = new Set(cells.slice(0, digests.length).flatMap((d) => (d ? (match.owners.get(d) ?? []) : [])));
      for (const owner of owners) counts.set(owner, (counts.get(owner) ?? 0) + n);
    }
    return counts;
  }

  /**
   * The wider net: rows whose identity column holds a subject's value in another case, Unicode form
   * or padding (compared NFKC, trimmed and lower-cased, by digest) that the action's match leaves,
   * each classed by how it differs, in SQL: no value leaves the engine.
   */
  async #nearMisses(table: Table, match: Match, wide: Match): Promise<Map<string, NearMisses>> {
    const digests = wide.columns.map((c) => wideDigestOf(c));
    const reasons = wide.columns.map((c) => reasonOf(c));
    const sql = `SELECT ${[...digests, ...reasons].join(', ')}, count(*) FROM ${this.#name(table)} WHERE (${wide.predicate}) AND NOT COALESCE((${match.predicate}), false) GROUP BY ${[...digests, ...reasons].map((_, i) => String(i + 1)).join(', ')}`;
    const found = new Map<string, Partial<Record<keyof NearMisses, number>>>();
    for await (const cells of this.#rows(table, 'wider net', sql)) {
      const n = Number(cells[digests.length * 2] ?? 0);
      const seen = new Set<string>();
      wide.columns.forEach((_, i) => {
        const reason = REASONS[Number(cells[digests.length + i])] ?? 'stored_form';
        for (const owner of wide.owners.get(cells[i] ?? '') ?? []) {
          if (seen.has(owner)) continue;
          seen.add(owner);
          const counts = found.get(owner) ?? {};
          counts[reason] = (counts[reason] ?? 0) + n;
          found.set(owner, counts);
        }
      });
    }
    return new Map([...found].map(([k, v]) => [k, addNearMisses(v)]));
  }

  /** The rows of a query's result, header left out. */
  async *#rows(table: Table, step: string, sql: string): AsyncGenerator<(string | undefined)[]> {
    const id = await this.#query(table, step, sql);
    let header = true;
    try {
      for await (const page of paginateGetQueryResults({ client: this.#athena }, { QueryExecutionId: id })) {
        for (const row of page.ResultSet?.Rows ?? []) {
          if (header) {
            header = false;
            continue;
          }
          yield (row.Data ?? []).map((d) => d.VarCharValue);
        }
      }
    } catch (error) {
      throw classifyAwsError(`iceberg ${this.#settings.database}.${table.table}: read ${step}`, error);
    }
  }

  /** Run one statement to its end; the id of its execution. Idempotent per batch: a retry gets the same execution. */
  async #query(table: Table, step: string, sql: string, batch?: string): Promise<string> {
    const where = `iceberg ${this.#settings.database}.${table.table}: ${step}`;
    let id: string | undefined;
    try {
      const out = await this.#athena.send(
        new StartQueryExecutionCommand({
          QueryString: sql,
          QueryExecutionContext: { Catalog: this.#settings.catalog, Database: this.#settings.database },
          WorkGroup: this.#settings.workGroup,
          ...(this.#settings.outputLocation && { ResultConfiguration: { OutputLocation: this.#settings.outputLocation } }),
          ...(batch !== undefined && { ClientRequestToken: createHash('sha256').update(`${batch}\n${sql}`).digest('hex').slice(0, 64) }),
        }),
      );
      id = out.QueryExecutionId;
    } catch (error) {
      throw classifyAwsError(`${where}: start`, error);
    }
    if (!id) throw new ConnectorRetryableError(`${where}: Athena returned no execution id`);
    const deadline = Date.now() + this.#settings.queryTimeoutSeconds * 1000;
    for (;;) {
      let execution;
      try {
        execution = (await this.#athena.send(new GetQueryExecutionCommand({ QueryExecutionId: id }))).QueryExecution;
      } catch (error) {
        throw classifyAwsError(`${where}: status`, error);
      }
      const state = execution?.Status?.State;
      if (state === 'SUCCEEDED') return id;
      if (state === 'FAILED' || state === 'CANCELLED') {
        const athena = execution?.Status?.AthenaError;
        const reason = (execution?.Status?.StateChangeReason ?? '').replace(/[0-9a-f]{64}/g, '[digest]').slice(0, 200);
        const message = `${where} ${state.toLowerCase()}${athena?.ErrorType !== undefined ? ` (Athena error ${String(athena.ErrorCategory)}/${String(athena.ErrorType)})` : ''}${reason ? `: ${reason}` : ''}`;
        throw athena?.Retryable || athena?.ErrorCategory === 1 ? new ConnectorRetryableError(message) : new ConnectorPermanentError(message);
      }
      if (Date.now() > deadline) throw new ConnectorRetryableError(`${where}: still ${state ?? 'unknown'} after ${String(this.#settings.queryTimeoutSeconds)} s`);
      await sleep(this.#pollMs);
    }
  }
}

interface Match {
  readonly predicate: string;
  /** The identity columns that have subject values. */
  readonly columns: readonly string[];
  /** Digest of a value → the subjects with it. */
  readonly owners: ReadonlyMap<string, readonly string[]>;
}

/**
 * The WHERE clause that finds the subjects' rows in a table, by digests only, of each value and the
 * forms it was submitted in (the wider net: of each compared NFKC, trimmed and lower-cased);
 * undefined when none has a value for its columns.
 */
function matcher(table: Table, subjects: ReadonlyMap<string, readonly Identity[]>, net: 'action' | 'wide' = 'action'): Match | undefined {
  const owners = new Map<string, string[]>();
  const byColumn = new Map<string, Set<string>>();
  for (const { identity, column } of table.columns) {
    for (const [subject, identities] of subjects) {
      for (const value of identities.filter((x) => x.type === identity).flatMap(formsOf)) {
        const d = sha256(net === 'action' ? value : wideKey(value));
        owners.set(d, [...new Set([...(owners.get(d) ?? []), subject])]);
        byColumn.set(column, (byColumn.get(column) ?? new Set()).add(d));
      }
    }
  }
  if (byColumn.size === 0) return undefined;
  const digest = net === 'action' ? digestOf : wideDigestOf;
  const predicate = [...byColumn].map(([column, ds]) => `${digest(column)} IN (${[...ds].map((d) => `'${d}'`).join(', ')})`).join(' OR ');
  return { predicate, columns: [...byColumn.keys()], owners };
}

const sha256 = (value: string) => createHash('sha256').update(value, 'utf8').digest('hex');
const quote = (name: string) => `"${name.replaceAll('"', '""')}"`;
const digestOf = (column: string) => `lower(to_hex(sha256(to_utf8(CAST(${quote(column)} AS varchar)))))`;
/** The digest of a column's value as the wider net compares it: NFKC, trimmed, lower-cased (core's wideKey, in Trino). */
const wideDigestOf = (column: string) => `lower(to_hex(sha256(to_utf8(CAST(lower(trim(normalize(CAST(${quote(column)} AS varchar), NFKC))) AS varchar)))))`;
/** How a value differs from the subject's (core's nearMissReason, in Trino), by the index of its reason in REASONS. */
const reasonOf = (column: string) => {
  const v = `CAST(${quote(column)} AS varchar)`;
  return `CASE WHEN ${v} IS NULL THEN 3 WHEN ${v} <> trim(${v}) THEN 0 WHEN ${v} <> normalize(${v}, NFC) OR ${v} <> normalize(${v}, NFKC) THEN 1 ELSE 2 END`;
};
const REASONS = ['whitespace', 'unicode', 'case', 'stored_form'] as const;
