import { GetQueryExecutionCommand, paginateGetQueryResults, StartQueryExecutionCommand, type AthenaClient } from '@aws-sdk/client-athena';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConnectorPermanentError, ConnectorRetryableError } from '#core/errors';
import type { Identity } from '#core/identity';
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
    for (const table of this.#settings.tables) {
      const match = matcher(table, subjects);
      if (!match) continue;
      for (const [subject, n] of await this.#count(table, match)) counts.set(subject, (counts.get(subject) ?? 0) + n);
    }
    return new Map([...counts].map(([k, n]) => [k, { remaining: n }]));
  }

  #name(table: Table): string {
    return `${quote(this.#settings.database)}.${quote(table.table)}`;
  }

  /** Rows per subject: grouped by the digests of every identity column, each row counted once for each of its subjects. */
  async #count(table: Table, match: Match): Promise<Map<string, number>> {
    const digests = match.columns.map((c) => digestOf(c));
    const id = await this.#query(table, 'count', `SELECT ${digests.join(', ')}, count(*) FROM ${this.#name(table)} WHERE ${match.predicate} GROUP BY ${digests.map((_, i) => String(i + 1)).join(', ')}`);
    const counts = new Map<string, number>();
    let header = true;
    try {
      for await (const page of paginateGetQueryResults({ client: this.#athena }, { QueryExecutionId: id })) {
        for (const row of page.ResultSet?.Rows ?? []) {
          if (header) {
            header = false;
            continue;
          }
          const cells = (row.Data ?? []).map((d) => d.VarCharValue);
          const n = Number(cells[digests.length] ?? 0);
          const owners = new Set(cells.slice(0, digests.length).flatMap((d) => (d ? (match.owners.get(d) ?? []) : [])));
          for (const owner of owners) counts.set(owner, (counts.get(owner) ?? 0) + n);
        }
      }
    } catch (error) {
      throw classifyAwsError(`iceberg ${this.#settings.database}.${table.table}: read counts`, error);
    }
    return counts;
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

/** The WHERE clause that finds the subjects' rows in a table, by digests only; undefined when none has a value for its columns. */
function matcher(table: Table, subjects: ReadonlyMap<string, readonly Identity[]>): Match | undefined {
  const owners = new Map<string, string[]>();
  const byColumn = new Map<string, Set<string>>();
  for (const { identity, column } of table.columns) {
    for (const [subject, identities] of subjects) {
      for (const i of identities.filter((x) => x.type === identity)) {
        const d = sha256(i.value);
        owners.set(d, [...new Set([...(owners.get(d) ?? []), subject])]);
        byColumn.set(column, (byColumn.get(column) ?? new Set()).add(d));
      }
    }
  }
  if (byColumn.size === 0) return undefined;
  const predicate = [...byColumn].map(([column, ds]) => `${digestOf(column)} IN (${[...ds].map((d) => `'${d}'`).join(', ')})`).join(' OR ');
  return { predicate, columns: [...byColumn.keys()], owners };
}

const sha256 = (value: string) => createHash('sha256').update(value, 'utf8').digest('hex');
const quote = (name: string) => `"${name.replaceAll('"', '""')}"`;
const digestOf = (column: string) => `lower(to_hex(sha256(to_utf8(CAST(${quote(column)} AS varchar)))))`;
