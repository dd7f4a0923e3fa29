import { AthenaClient, GetQueryExecutionCommand, GetQueryResultsCommand, StartQueryExecutionCommand } from '@aws-sdk/client-athena';
import { mockClient } from 'aws-sdk-client-mock';
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { IcebergConnector } from '#connectors/iceberg/connector';
import { icebergSettingsSchema } from '#connectors/iceberg/settings';
import { ConnectorPermanentError, ConnectorRetryableError } from '#core/errors';
import type { ConnectorCommand } from '#core/ports';

/**
 * Iceberg through Athena, against the Athena API as it answers (aws-sdk-client-mock): the
 * statements, their order, their idempotency tokens, and that no query carries an identity.
 */
const athena = mockClient(AthenaClient);
afterEach(() => athena.reset());

const settings = icebergSettingsSchema.parse({
  database: 'analytics',
  location: 's3://acme-warehouse/analytics/',
  outputLocation: 's3://acme-athena-results/lethe/',
  tables: [{ table: 'page_views', columns: [{ identity: 'email', column: 'email' }, { identity: 'user_id', column: 'user_id' }] }],
});
const connector = () => new IcebergConnector(new AthenaClient({ region: 'eu-west-1' }), settings, { pollMs: 0 });
const sha = (v: string) => createHash('sha256').update(v).digest('hex');
const command = (requestId: string, email: string, userId: string): ConnectorCommand => ({
  requestId,
  action: 'delete',
  identities: [
    { type: 'email', value: email },
    { type: 'user_id', value: userId },
  ],
  keyedHash: (v) => v,
});
const queries = () => athena.commandCalls(StartQueryExecutionCommand).map((c) => c.args[0].input.QueryString!);

/** Every query succeeds after a poll of RUNNING; a count query answers `rows` (header row first). */
function athenaAnswers(rows: string[][]): void {
  let n = 0;
  athena.on(StartQueryExecutionCommand).callsFake(() => ({ QueryExecutionId: `q-${String((n += 1))}` }));
  athena.on(GetQueryExecutionCommand).resolvesOnce({ QueryExecution: { Status: { State: 'RUNNING' } } }).resolves({ QueryExecution: { Status: { State: 'SUCCEEDED' } } });
  athena.on(GetQueryResultsCommand).resolves({
    ResultSet: { Rows: [{ Data: [{ VarCharValue: '_col0' }, { VarCharValue: '_col1' }, { VarCharValue: '_col2' }] }, ...rows.map((r) => ({ Data: r.map((VarCharValue) => ({ VarCharValue })) }))] },
  });
}

describe('Class: IcebergConnector', () => {
  it('counts, deletes, compacts and vacuums each table, matching digests, never identities', async () => {
    athenaAnswers([
      [sha('ada@example.com'), sha('42'), '3'],
      [sha('ada@example.com'), sha('43'), '1'],
    ]);

    expect(await connector().run(command('r-1', 'ada@example.com', '42'))).toEqual({ affected: 4 });

    const digest = (c: string) => `lower(to_hex(sha256(to_utf8(CAST("${c}" AS varchar)))))`;
    const where = `${digest('email')} IN ('${sha('ada@example.com')}') OR ${digest('user_id')} IN ('${sha('42')}')`;
    expect(queries()).toEqual([
      `SELECT ${digest('email')}, ${digest('user_id')}, count(*) FROM "analytics"."page_views" WHERE ${where} GROUP BY 1, 2`,
      `DELETE FROM "analytics"."page_views" WHERE ${where}`,
      'OPTIMIZE "analytics"."page_views" REWRITE DATA USING BIN_PACK',
      'VACUUM "analytics"."page_views"',
    ]);
    for (const q of queries()) expect(q).not.toMatch(/ada@example\.com|'42'/);
    const starts = athena.commandCalls(StartQueryExecutionCommand).map((c) => c.args[0].input);
    expect(starts[1]).toMatchObject({
      WorkGroup: 'primary',
      QueryExecutionContext: { Catalog: 'AwsDataCatalog', Database: 'analytics' },
      ResultConfiguration: { OutputLocation: 's3://acme-athena-results/lethe/' },
      ClientRequestToken: expect.stringMatching(/^[0-9a-f]{64}$/) as string,
    });
  });

  it('removes a batch in one DELETE and one compaction, counting each subject’s rows once', async () => {
    athenaAnswers([
      [sha('ada@example.com'), sha('1'), '2'],
      [sha('grace@example.com'), sha('2'), '5'],
    ]);
    const subjects = new Map([
      ['r-1', command('r-1', 'ada@example.com', '1').identities],
      ['r-2', command('r-2', 'grace@example.com', '2').identities],
    ]);

    expect(await connector().runBatch(subjects)).toEqual(new Map([['r-1', 2], ['r-2', 5]]));
    expect(queries().filter((q) => q.startsWith('DELETE'))).toHaveLength(1);
    expect(queries().filter((q) => q.startsWith('OPTIMIZE'))).toHaveLength(1);
  });

  it('gives a retry of the same batch the same tokens, so Athena runs each statement once', async () => {
    athenaAnswers([]);
    await connector().run(command('r-1', 'ada@example.com', '42'));
    await connector().run(command('r-1', 'ada@example.com', '42'));
    const tokens = athena.commandCalls(StartQueryExecutionCommand).map((c) => c.args[0].input.ClientRequestToken);
    expect(tokens.slice(1, 4)).toEqual(tokens.slice(5, 8));
    expect(new Set(tokens.slice(1, 4)).size).toBe(3);
  });

  it('verifies by counting what the current snapshot still holds, and what the wider net finds the action left', async () => {
    athenaAnswers([]);
    expect(await connector().verify(command('r-1', 'ada@example.com', '42'))).toEqual({ remaining: 0 });
    expect(queries()).toHaveLength(2);
    // The wider net compares by digest too: NFKC, trimmed and lower-cased in Trino, no value in the text.
    expect(queries()[1]).toMatch(/^SELECT lower\(to_hex\(sha256\(to_utf8\(CAST\(lower\(trim\(normalize\(CAST\("email" AS varchar\), NFKC\)\)\) AS varchar\)\)\)\)\).* WHERE \(.*\) AND NOT COALESCE\(\(.*\), false\) GROUP BY /);
    expect(queries()[1]!.replace(/'[0-9a-f]{64}'/g, '')).not.toContain("'");
  });

  it('fails retryably on Athena’s system errors and permanently on the query’s own, naming no digest', async () => {
    athena.on(StartQueryExecutionCommand).resolves({ QueryExecutionId: 'q-1' });
    athena.on(GetQueryExecutionCommand).resolves({
      QueryExecution: { Status: { State: 'FAILED', StateChangeReason: `ICEBERG_COMMIT_ERROR: conflict on ${sha('x')}`, AthenaError: { ErrorCategory: 1, ErrorType: 1306, Retryable: true } } },
    });
    const retryable = (await connector().run(command('r-1', 'a@b.example', '1')).catch((e: unknown) => e)) as Error;
    expect(retryable).toBeInstanceOf(ConnectorRetryableError);
    expect(retryable.message).toBe('iceberg analytics.page_views: count failed (Athena error 1/1306): ICEBERG_COMMIT_ERROR: conflict on [digest]');

    athena.on(GetQueryExecutionCommand).resolves({
      QueryExecution: { Status: { State: 'FAILED', StateChangeReason: "TABLE_NOT_FOUND: Table 'awsdatacatalog.analytics.page_views' does not exist", AthenaError: { ErrorCategory: 2, ErrorType: 1301, Retryable: false } } },
    });
    await expect(connector().run(command('r-1', 'a@b.example', '1'))).rejects.toThrow(ConnectorPermanentError);
  });

  it('refuses names that would need quoting and locations that are not s3 folders', () => {
    const parsed = icebergSettingsSchema.safeParse({ database: 'analytics"; DROP', location: 's3://bucket', tables: [{ table: 'page views', columns: [{ identity: 'email', column: 'e-mail' }] }] });
    expect(parsed.success ? [] : parsed.error.issues.map((i) => i.path.join('.'))).toEqual(['database', 'location', 'tables.0.table', 'tables.0.columns.0.column']);
  });
});
