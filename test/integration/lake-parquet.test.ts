import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { describe, expect, it } from 'vitest';
import { UnsupportedParquetError } from '#connectors/lake/codecs';
import { readParquet } from '#connectors/lake/parquet';
import { encodeStruct, int, struct, structs, ThriftReader } from '#connectors/lake/thrift';
import { duckdb, duckdbParquet, emailOf, legacyParquet, removeEmails, rowsOf, shapeOf } from '../fixtures/lake.ts';

/**
 * Lethe's Parquet rewrite against files other tools wrote: the subject's rows go, and everything
 * else reads back the same, to the type and the byte, in hyparquet and in DuckDB.
 */
const dir = mkdtempSync(join(tmpdir(), 'lethe-lake-'));
const file = async (name: string, options: Parameters<typeof duckdbParquet>[1] = {}) => {
  const path = join(dir, name);
  await duckdbParquet(path, options);
  return new Uint8Array(readFileSync(path));
};
const SUBJECT = 'user7@example.com';

describe('Function: removeRows on Parquet', () => {
  it.each(['zstd', 'snappy', 'gzip', 'uncompressed'])('removes the subject’s rows from a %s file and keeps every other row, type and setting', async (codec) => {
    const before = await file(`rich-${codec}.parquet`, { codec });
    const { bytes, removed } = removeEmails(before, [SUBJECT]);

    expect(removed).toBe(200);
    expect(shapeOf(bytes!)).toBe(shapeOf(before));
    expect(await rowsOf(bytes!)).toEqual((await rowsOf(before)).filter((r) => r['email'] !== SUBJECT));

    const path = join(dir, `out-${codec}.parquet`);
    writeFileSync(path, bytes!);
    const c = await duckdb();
    const sums = async (from: string) =>
      (await c.runAndReadAll(`SELECT count(*)::INT AS n, sum(amount)::VARCHAR AS a, sum(big)::VARCHAR AS b, count(maybe)::INT AS m, sum(len(tags))::INT AS t, count(opt_list)::INT AS o, max(addr.zip)::INT AS z FROM ${from}`)).getRowObjectsJson();
    expect(await sums(`'${path}'`)).toEqual(await sums(`'${join(dir, `rich-${codec}.parquet`)}' WHERE email <> '${SUBJECT}'`));
    const describe = async (p: string) => (await c.runAndReadAll(`DESCRIBE SELECT * FROM '${p}'`)).getRowObjectsJson();
    expect(await describe(path)).toEqual(await describe(join(dir, `rich-${codec}.parquet`)));
  });

  it('leaves no trace of the subject: no dictionary entry, no statistic', async () => {
    const before = await file('plain.parquet', { codec: 'uncompressed' });
    expect(Buffer.from(before).includes(SUBJECT)).toBe(true);
    const { bytes } = removeEmails(before, [SUBJECT]);
    expect(Buffer.from(bytes!).includes(SUBJECT)).toBe(false);
    expect(Buffer.from(bytes!).includes('user8@example.com')).toBe(true);
  });

  it('copies row groups that hold none of the subject’s rows byte for byte', async () => {
    // 60 people in row groups of 2048: user0 is in every group; ordered by id, a group holds ids in a range.
    const c = await duckdb();
    const path = join(dir, 'ordered.parquet');
    await c.run(`COPY (SELECT i AS id, CASE WHEN i < 2048 THEN 'early@example.com' ELSE 'late' || (i % 9) || '@example.com' END AS email FROM range(8192) t(i)) TO '${path}' (FORMAT parquet, ROW_GROUP_SIZE 2048)`);
    const before = new Uint8Array(readFileSync(path));
    const { bytes, removed } = removeEmails(before, ['late3@example.com']);
    expect(removed).toBeGreaterThan(0);
    const chunk = (b: Uint8Array, group: number) => {
      const meta = struct(structs(structs(readParquet(b).meta, 4)[group]!, 1)[1]!, 3)!;
      const start = int(meta, 11) || int(meta, 9)!;
      return Buffer.from(b.subarray(start, start + int(meta, 7)!));
    };
    expect(chunk(bytes!, 0).equals(chunk(before, 0))).toBe(true);
    expect(chunk(bytes!, 1).equals(chunk(before, 1))).toBe(false);
  });

  it('keeps INT96, millisecond and nanosecond timestamps exactly', async () => {
    const before = legacyParquet();
    const { bytes, removed } = removeEmails(before, [emailOf(3, 10)]);

    expect(removed).toBe(10);
    expect(shapeOf(bytes!)).toBe(shapeOf(before));
    expect(shapeOf(before)).toContain('"INT96"');
    expect(await rowsOf(bytes!)).toEqual((await rowsOf(before)).filter((r) => r['email'] !== emailOf(3, 10)));
    const path = join(dir, 'legacy-out.parquet');
    writeFileSync(path, bytes!);
    const types = (await (await duckdb()).runAndReadAll(`DESCRIBE SELECT * FROM '${path}'`)).getRowObjectsJson().map((r) => `${r['column_name'] as string} ${r['column_type'] as string}`);
    expect(types).toEqual(['email VARCHAR', 'ts_ms TIMESTAMP WITH TIME ZONE', 'ts_ns TIMESTAMP WITH TIME ZONE', 'legacy TIMESTAMP']);
  });

  it('removes 1,000 subjects in one rewrite', async () => {
    const before = await file('many.parquet', { rows: 100_000, users: 5000, rowGroupSize: 16_384 });
    const subjects = Array.from({ length: 1000 }, (_, i) => emailOf(i * 5, 5000));
    const { bytes, removed } = removeEmails(before, subjects);

    expect(removed).toBe(20_000);
    const path = join(dir, 'many-out.parquet');
    writeFileSync(path, bytes!);
    const c = await duckdb();
    const [row] = (await c.runAndReadAll(`SELECT count(*)::INT AS n, count(*) FILTER (WHERE email IN (${subjects.map((s) => `'${s}'`).join(',')}))::INT AS left FROM '${path}'`)).getRowObjectsJson();
    expect(row).toEqual({ n: 80_000, left: 0 });
  });

  it('drops a row group that held only the subject, and changes nothing when the subject is absent', () => {
    const emails = Array.from({ length: 300 }, (_, i) => (i < 100 ? SUBJECT : 'other@example.com'));
    const before = new Uint8Array(parquetWriteBuffer({ columnData: [{ name: 'email', data: emails, type: 'STRING' }], rowGroupSize: 100 }));
    expect(structs(readParquet(before).meta, 4)).toHaveLength(3);
    const { bytes } = removeEmails(before, [SUBJECT]);
    expect(structs(readParquet(bytes!).meta, 4)).toHaveLength(2);
    expect(readParquet(bytes!).numRows).toBe(200);
    expect(removeEmails(before, ['nobody@example.com'])).toEqual({ bytes: undefined, removed: 0 });
  });

  it('writes a footer it read back to the same bytes, every field kept', async () => {
    for (const bytes of [await file('footer.parquet', { codec: 'snappy' }), legacyParquet()]) {
      const n = bytes.length;
      const length = new DataView(bytes.buffer, bytes.byteOffset + n - 8, 4).getUint32(0, true);
      const footer = bytes.subarray(n - 8 - length, n - 8);
      expect(Buffer.from(encodeStruct(new ThriftReader(footer).readStruct())).equals(Buffer.from(footer))).toBe(true);
    }
  });

  it('refuses what is not Parquet, naming why', () => {
    expect(() => readParquet(new TextEncoder().encode('{"email": "a@b.c"}\n'))).toThrow(UnsupportedParquetError);
    expect(() => readParquet(new Uint8Array([0x50, 0x41, 0x52, 0x45, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x41, 0x52, 0x45]))).toThrow('encrypted Parquet files are not supported');
  });
});
