import { AthenaClient, GetQueryExecutionCommand, GetQueryResultsCommand, StartQueryExecutionCommand } from '@aws-sdk/client-athena';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { mockClient } from 'aws-sdk-client-mock';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { IcebergConnector } from '#connectors/iceberg/connector';
import { icebergSettingsSchema } from '#connectors/iceberg/settings';
import type { ConnectorCommand } from '#core/ports';
import { HOSTILE_RUNS, hostileIdentifier } from '../fixtures/hostile.ts';

/**
 * The Iceberg connector's statements run by a SQL engine: DuckDB in Athena's place. Athena's API
 * is answered by aws-sdk-client-mock, and every query it is sent runs in DuckDB, once Trino's
 * digest of a column, `lower(to_hex(sha256(to_utf8(x))))`, is spelled as DuckDB spells the same
 * digest, `sha256(x)`. OPTIMIZE and VACUUM rewrite Iceberg's files and have no counterpart here:
 * they only succeed.
 */
describe('Class: IcebergConnector, its SQL run by DuckDB', () => {
  const athena = mockClient(AthenaClient);
  let db: DuckDBConnection;
  const settings = icebergSettingsSchema.parse({
    database: 'analytics',
    location: 's3://acme-warehouse/analytics/',
    outputLocation: 's3://acme-athena-results/lethe/',
    tables: [{ table: 'page_views', columns: [{ identity: 'email', column: 'email' }, { identity: 'user_id', column: 'user_id' }] }],
  });
  const connector = () => new IcebergConnector(new AthenaClient({ region: 'eu-west-1' }), settings, { pollMs: 0 });
  const command = (identities: ConnectorCommand['identities']): ConnectorCommand => ({ requestId: 'r-1', action: 'delete', identities, keyedHash: (v) => v });
  // Canary rows whose values are the syntax a hostile identity is made of, or a subject's with a twist.
  const canaries = ['*', '%', '_', "' OR '1'='1", '.*', '\\', '"', "'", '', 'ADA@EXAMPLE.COM', 'ada@example.com ', 'ada@example.com.evil'];
  const rows = async () => (await db.runAndReadAll('SELECT email, user_id, page FROM analytics.page_views ORDER BY ALL')).getRowsJS();

  beforeAll(async () => {
    db = await (await DuckDBInstance.create(':memory:')).connect();
  });
  afterAll(() => db.closeSync());
  beforeEach(async () => {
    await db.run(`DROP SCHEMA IF EXISTS analytics CASCADE; CREATE SCHEMA analytics;
      CREATE TABLE analytics.page_views (email VARCHAR, user_id BIGINT, page VARCHAR)`);
    const insert = await db.prepare('INSERT INTO analytics.page_views VALUES ($1, $2, $3)');
    const values: [string | null, number | null, string][] = [
      ['ada@example.com', 42, '/a'],
      ['ada@example.com', null, '/b'],
      [null, 42, '/c'],
      ['grace@example.com', 43, '/d'],
      ...canaries.map((email, i): [string, number, string] => [email, 1000 + i, '/canary']),
    ];
    for (const [email, userId, page] of values) {
      insert.clearBindings();
      if (email === null) insert.bindNull(1);
      else insert.bindVarchar(1, email);
      if (userId === null) insert.bindNull(2);
      else insert.bindBigInt(2, BigInt(userId));
      insert.bindVarchar(3, page);
      await insert.run();
    }
    const results = new Map<string, { state: 'SUCCEEDED' | 'FAILED'; reason?: string; rows: (string | undefined)[][] }>();
    athena.on(StartQueryExecutionCommand).callsFake(async (input: { QueryString: string }) => {
      const id = `q-${String(results.size + 1)}`;
      const sql = input.QueryString.replaceAll('lower(to_hex(sha256(to_utf8(', 'sha256((')
        .replaceAll(' AS varchar)))))', ' AS varchar)))')
        // Trino's normalize(x, form), as DuckDB has it (NFC only: enough for these rows).
        .replaceAll('normalize(', 'nfc_normalize(')
        .replaceAll(', NFKC)', ')')
        .replaceAll(', NFC)', ')');
      if (/^(OPTIMIZE|VACUUM) /.test(sql)) {
        results.set(id, { state: 'SUCCEEDED', rows: [] });
        return { QueryExecutionId: id };
      }
      try {
        const reader = await db.runAndReadAll(sql);
        const header = reader.columnNames();
        results.set(id, { state: 'SUCCEEDED', rows: [header, ...reader.getRowsJS().map((r) => r.map((v) => (v === null ? undefined : String(v as string | number | bigint))))] });
      } catch (error) {
        results.set(id, { state: 'FAILED', reason: (error as Error).message, rows: [] });
      }
      return { QueryExecutionId: id };
    });
    athena.on(GetQueryExecutionCommand).callsFake((input: { QueryExecutionId: string }) => {
      const { state, reason } = results.get(input.QueryExecutionId)!;
      return { QueryExecution: { Status: { State: state, ...(reason && { StateChangeReason: reason, AthenaError: { ErrorCategory: 2, ErrorType: 1000 } }) } } };
    });
    athena.on(GetQueryResultsCommand).callsFake((input: { QueryExecutionId: string }) => ({
      ResultSet: { Rows: results.get(input.QueryExecutionId)!.rows.map((r) => ({ Data: r.map((VarCharValue) => ({ VarCharValue })) })) },
    }));
  });
  afterEach(() => athena.reset());

  it('deletes the rows with the subject’s e-mail or user id, counts each once, and keeps every other row', async () => {
    const subject = command([
      { type: 'email', value: 'ada@example.com' },
      { type: 'user_id', value: '42' },
    ]);
    // Two canaries are the subject's address in capitals and with a space: the wider net's, not the action's.
    expect(await connector().verify(subject)).toEqual({ remaining: 3, nearMisses: { case: 1, whitespace: 1 } });

    expect(await connector().run(subject)).toEqual({ affected: 3 });

    expect((await rows()).map((r) => r[2]).sort()).toEqual([...canaries.map(() => '/canary'), '/d']);
    expect(await connector().verify(subject)).toEqual({ remaining: 0, nearMisses: { case: 1, whitespace: 1 } });
  });

  it(`deletes nothing for ${String(HOSTILE_RUNS)} generated hostile identities (fast-check): every canary row remains`, async () => {
    const before = await rows();
    const own = new Set(['ada@example.com', 'grace@example.com', '42', '43', ...canaries, ...canaries.map((_, i) => String(1000 + i))]);
    await fc.assert(
      fc.asyncProperty(hostileIdentifier, async (value) => {
        fc.pre(!own.has(value));
        expect(await connector().run(command([{ type: 'email', value }, { type: 'user_id', value }]))).toEqual({ affected: 0 });
      }),
      { numRuns: HOSTILE_RUNS },
    );
    expect(await rows()).toEqual(before);
    // Not one query carried a value: each is one of the connector's four statements, with digests only.
    for (const call of athena.commandCalls(StartQueryExecutionCommand)) {
      expect(call.args[0].input.QueryString).toMatch(/^(SELECT lower\(to_hex.* FROM "analytics"\."page_views" WHERE .* GROUP BY 1, 2|DELETE FROM "analytics"\."page_views" WHERE .*|OPTIMIZE "analytics"\."page_views" REWRITE DATA USING BIN_PACK|VACUUM "analytics"\."page_views")$/);
      expect(call.args[0].input.QueryString!.replace(/'[0-9a-f]{64}'/g, '')).not.toContain("'");
    }
  }, 600_000);
});
