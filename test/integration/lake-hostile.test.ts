import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { startFauxqs } from 'fauxqs';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LakeConnector } from '#connectors/lake/connector';
import { lakeSettingsSchema } from '#connectors/lake/settings';
import type { ConnectorCommand } from '#core/ports';
import { duckdb } from '../fixtures/lake.ts';
import { NEIGHBOUR_BIG_ID, NEIGHBOUR_EMAILS, NEIGHBOUR_UINT64, SUBJECT_BIG_ID, SUBJECT_EMAIL, SUBJECT_EMAIL_STORED, SUBJECT_UINT64, SUBMITTED_EMAIL } from '../fixtures/hostile.ts';
import { credentials } from '../fixtures/servers.ts';

/**
 * Identities stored in the types real lakes use, written by DuckDB: a UUID column (16 raw bytes),
 * an unsigned 64-bit column above 2^63, a list of addresses, and JSON numbers above 2^53. The
 * subject's rows go; every neighbour's row is read back exactly as it was.
 */
const SUBJECT_UUID = '0f8fad5b-d9cb-469f-a165-70867728950e';
const NEIGHBOUR_UUID = '0f8fad5b-d9cb-469f-a165-70867728950f';

describe('Class: LakeConnector, identities in their stored types (fauxqs, DuckDB files)', () => {
  let fauxqs: Awaited<ReturnType<typeof startFauxqs>>;
  let s3: S3Client;
  const dir = mkdtempSync(join(tmpdir(), 'lethe-lake-types-'));
  const bucket = 'lake-types';

  beforeAll(async () => {
    fauxqs = await startFauxqs({ port: 0, logger: false });
    s3 = new S3Client({ endpoint: fauxqs.address, region: 'us-east-1', credentials, forcePathStyle: true });
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  });
  afterAll(async () => fauxqs.stop());

  const read = async (Key: string) => new Uint8Array(await (await s3.send(new GetObjectCommand({ Bucket: bucket, Key }))).Body!.transformToByteArray());
  /** The rows of Parquet bytes as DuckDB reads them: `select` over the file, in `n` order. */
  const rowsOf = async (bytes: Uint8Array, select = `id::VARCHAR AS id, big::VARCHAR AS big, emails::VARCHAR AS emails, list_contains(emails, '${SUBJECT_EMAIL}') AS listed, n`) => {
    const path = join(dir, `read-${String(Math.random()).slice(2)}.parquet`);
    writeFileSync(path, bytes);
    return (await (await duckdb()).runAndReadAll(`SELECT ${select} FROM '${path}' ORDER BY n`)).getRowObjectsJson();
  };
  const command = (identities: { type: string; value: string }[]): ConnectorCommand => ({ requestId: 'r', action: 'delete', identities, keyedHash: (v) => v });

  it('Parquet: matches a UUID column by its 16 bytes, an unsigned 64-bit column above 2^63, and a list by any element', async () => {
    const path = join(dir, 'typed.parquet');
    const emails = ["'adam@example.com'", ...NEIGHBOUR_EMAILS.map((e) => `'${e}'`)];
    // 1,000 rows: 137 with the subject's UUID, some with the subject's big id or address in a list; neighbours everywhere.
    await (await duckdb()).run(`COPY (SELECT
        CASE WHEN n % 7 = 0 AND n < 959 THEN '${SUBJECT_UUID}'::UUID ELSE '${NEIGHBOUR_UUID}'::UUID END AS id,
        CASE WHEN n % 100 = 1 THEN ${SUBJECT_UINT64}::UBIGINT ELSE ${NEIGHBOUR_UINT64}::UBIGINT END AS big,
        CASE WHEN n % 250 = 3 THEN [${emails[0]!}, '${SUBJECT_EMAIL}'] ELSE [${emails.join(', ')}] END AS emails,
        n
      FROM range(1000) t(n)) TO '${path}' (FORMAT parquet, ROW_GROUP_SIZE 256)`);
    const before = new Uint8Array(readFileSync(path));
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'typed/part-0.parquet', Body: before }));
    const all = await rowsOf(before);
    const isSubjects = (r: Record<string, unknown>) => r['id'] === SUBJECT_UUID || r['big'] === SUBJECT_UINT64 || r['listed'] === true;
    const theirs = all.filter(isSubjects).length;
    expect(all.filter((r) => r['id'] === SUBJECT_UUID)).toHaveLength(137);

    const connector = new LakeConnector(
      s3,
      lakeSettingsSchema.parse({
        tables: [
          {
            bucket,
            prefix: 'typed/',
            format: 'parquet',
            columns: [
              { identity: 'device_id', column: 'id' },
              { identity: 'user_id', column: 'big' },
              { identity: 'email', column: 'emails' },
            ],
          },
        ],
      }),
    );
    const subject = command([
      { type: 'device_id', value: SUBJECT_UUID },
      { type: 'user_id', value: SUBJECT_UINT64 },
      { type: 'email', value: SUBJECT_EMAIL },
    ]);
    expect(await connector.verify(subject)).toEqual({ remaining: theirs });
    expect(await connector.run(subject)).toEqual({ affected: theirs });
    expect(await connector.verify(subject)).toEqual({ remaining: 0 });
    // Every other row, exactly as it was.
    expect(await rowsOf(await read('typed/part-0.parquet'))).toEqual(all.filter((r) => !isSubjects(r)));
  });

  it('reports the subject stored in another case, Unicode form or padding as near-misses, in Parquet and JSON Lines, and keeps every neighbour', async () => {
    const stored = [SUBJECT_EMAIL_STORED.normal, SUBMITTED_EMAIL, SUBJECT_EMAIL_STORED.nfd, SUBJECT_EMAIL_STORED.whitespace, SUBJECT_EMAIL.toUpperCase(), ...NEIGHBOUR_EMAILS];
    const lines = [...stored.map((email, n) => JSON.stringify({ email, n })), ''].join('\n');
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'near/jsonl/part-0.jsonl', Body: lines }));
    const path = join(dir, 'near.parquet');
    await (await duckdb()).run(`COPY (SELECT * FROM (VALUES ${stored.map((e, n) => `('${e}', ${String(n)})`).join(', ')}) t(email, n)) TO '${path}' (FORMAT parquet)`);
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'near/parquet/part-0.parquet', Body: readFileSync(path) }));
    const connector = new LakeConnector(
      s3,
      lakeSettingsSchema.parse({
        tables: [
          { bucket, prefix: 'near/jsonl/', format: 'jsonl', columns: [{ identity: 'email', column: 'email' }] },
          { bucket, prefix: 'near/parquet/', format: 'parquet', columns: [{ identity: 'email', column: 'email' }] },
        ],
      }),
    );
    // As intake hands it on: the normal form, and the form the subject typed.
    const subject = command([{ type: 'email', value: SUBJECT_EMAIL, forms: [SUBMITTED_EMAIL] } as { type: string; value: string }]);

    expect(await connector.run(subject)).toEqual({ affected: 4 }); // the normal and the typed form, in both tables
    expect(await connector.verify(subject)).toEqual({ remaining: 0, nearMisses: { unicode: 2, whitespace: 2, case: 2 } });
    const kept = Buffer.from(await read('near/jsonl/part-0.jsonl')).toString();
    expect(kept).toBe([...stored.slice(2).map((email, n) => JSON.stringify({ email, n: n + 2 })), ''].join('\n'));
    expect((await rowsOf(await read('near/parquet/part-0.parquet'), 'email')).map((r) => r['email'])).toEqual(stored.slice(2));
  });

  it('Parquet: matches decimal identity columns by their unscaled value, in INT32, INT64 and 16-byte storage', async () => {
    const path = join(dir, 'decimals.parquet');
    // DuckDB stores DECIMAL(9,0) as INT32, DECIMAL(18,0) as INT64 and DECIMAL(38,0) as 16 fixed bytes.
    await (await duckdb()).run(`COPY (SELECT
        CASE WHEN n % 5 = 0 THEN 123456789 ELSE 123456788 END::DECIMAL(9,0) AS small,
        CASE WHEN n % 5 = 1 THEN 123456789012345678 ELSE 123456789012345677 END::DECIMAL(18,0) AS mid,
        CASE WHEN n % 5 = 2 THEN ${SUBJECT_BIG_ID} ELSE ${NEIGHBOUR_BIG_ID} END::DECIMAL(38,0) AS big,
        CASE WHEN n % 5 = 3 THEN -42.50 ELSE 42.50 END::DECIMAL(10,2) AS signed,
        n
      FROM range(100) t(n)) TO '${path}' (FORMAT parquet)`);
    const before = new Uint8Array(readFileSync(path));
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'decimals/part-0.parquet', Body: before }));
    const connector = new LakeConnector(
      s3,
      lakeSettingsSchema.parse({
        tables: [
          {
            bucket,
            prefix: 'decimals/',
            format: 'parquet',
            columns: [
              { identity: 'account_id', column: 'small' },
              { identity: 'account_id', column: 'mid' },
              { identity: 'user_id', column: 'big' },
              { identity: 'ledger_id', column: 'signed' },
            ],
          },
        ],
      }),
    );
    const subject = command([
      { type: 'account_id', value: '123456789' },
      { type: 'account_id', value: '123456789012345678' },
      { type: 'user_id', value: SUBJECT_BIG_ID },
      { type: 'ledger_id', value: '-42.5' },
    ]);
    expect(await connector.verify(subject)).toEqual({ remaining: 80 });
    expect(await connector.run(subject)).toEqual({ affected: 80 });
    const path2 = join(dir, 'decimals-after.parquet');
    writeFileSync(path2, await read('decimals/part-0.parquet'));
    const left = (await (await duckdb()).runAndReadAll(`SELECT n % 5 AS k, count(*) AS c, min(big)::VARCHAR AS big FROM '${path2}' GROUP BY 1`)).getRowObjectsJson();
    expect(left).toEqual([{ k: '4', c: '20', big: NEIGHBOUR_BIG_ID }]);
  });

  it('JSON Lines: matches numbers above 2^53 by their exact text, and never their neighbour that rounds to the same double', async () => {
    const lines = [`{"user_id":${SUBJECT_BIG_ID},"e":1}`, `{"user_id":${NEIGHBOUR_BIG_ID},"e":2}`, `{"user_id":"${SUBJECT_BIG_ID}","e":3}`, `{"user_id":1.2345678901234567891e19,"e":4}`, `{"ids":[7,${SUBJECT_BIG_ID}],"e":5}`, ''];
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'big/part-0.jsonl', Body: lines.join('\n') }));
    const connector = new LakeConnector(
      s3,
      lakeSettingsSchema.parse({ tables: [{ bucket, prefix: 'big/', format: 'jsonl', columns: [{ identity: 'user_id', column: 'user_id' }, { identity: 'user_id', column: 'ids' }] }] }),
    );
    const subject = command([{ type: 'user_id', value: SUBJECT_BIG_ID }]);
    expect(await connector.verify(subject)).toEqual({ remaining: 3 });
    expect(await connector.run(subject)).toEqual({ affected: 3 });
    expect(Buffer.from(await read('big/part-0.jsonl')).toString()).toBe([lines[1], lines[3], ''].join('\n'));
  });
});
