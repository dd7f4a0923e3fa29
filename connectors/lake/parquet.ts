import { crc32 } from 'node:zlib';
import { compress, decompress, UnsupportedParquetError } from './codecs.ts';
import { encodeStruct, int, listOf, setInt, struct, structs, ThriftReader, type ThriftStruct } from './thrift.ts';

/**
 * Removing rows from a Parquet file without changing anything else about it. The file is handled
 * at the level of its physical encoding, never through decoded values, so no type can change:
 * INT96 and millisecond timestamps, decimals of any width, nested lists and structs come out as
 * they went in. Row groups without a row to remove are copied byte for byte. In a row group that
 * has one, every column chunk is re-encoded page by page with the same page kinds, encodings and
 * compression, its levels and values filtered by row; dictionaries keep only the entries the
 * remaining rows use (a dictionary must not keep a removed person's values), and the statistics
 * of those chunks lose their min and max (which could be a removed person's value). The schema,
 * key-value metadata, `created_by`, column orders and sorting columns are kept exactly. Page
 * indexes and bloom filters are not carried over (a bloom filter would still answer for a removed
 * value). Encrypted files, and encodings other than PLAIN, dictionary and RLE, are refused.
 */

const MAGIC = new Uint8Array([0x50, 0x41, 0x52, 0x31]); // PAR1
const Physical = { BOOLEAN: 0, INT32: 1, INT64: 2, INT96: 3, FLOAT: 4, DOUBLE: 5, BYTE_ARRAY: 6, FIXED_LEN_BYTE_ARRAY: 7 } as const;
const Encoding = { PLAIN: 0, PLAIN_DICTIONARY: 2, RLE: 3, RLE_DICTIONARY: 8 } as const;
const PageType = { DATA_PAGE: 0, DICTIONARY_PAGE: 2, DATA_PAGE_V2: 3 } as const;
const ENCODING_NAMES = ['PLAIN', 'GROUP_VAR_INT', 'PLAIN_DICTIONARY', 'RLE', 'BIT_PACKED', 'DELTA_BINARY_PACKED', 'DELTA_LENGTH_BYTE_ARRAY', 'DELTA_BYTE_ARRAY', 'RLE_DICTIONARY', 'BYTE_STREAM_SPLIT'];

/** A leaf column: its path in the schema, physical type and the highest levels it can have. */
export interface LeafColumn {
  readonly path: readonly string[];
  readonly physical: number;
  readonly typeLength: number;
  readonly maxDef: number;
  readonly maxRep: number;
  /** An unsigned integer (UINT_8 … UINT_64, or INTEGER not signed): stored as the signed type's bits, ordered unsigned. */
  readonly unsigned: boolean;
  /** A UUID: 16 bytes, big-endian, in a FIXED_LEN_BYTE_ARRAY. */
  readonly uuid: boolean;
  /** A DECIMAL's scale: the value is an unscaled integer (INT32, INT64, or big-endian two's complement bytes). */
  readonly scale?: number;
}

export interface ParquetFile {
  readonly bytes: Uint8Array;
  /** FileMetaData, generically: written back with every field it had. */
  readonly meta: ThriftStruct;
  readonly leaves: readonly LeafColumn[];
  readonly numRows: number;
}

export function readParquet(bytes: Uint8Array): ParquetFile {
  const n = bytes.length;
  if (n < 12 || !equal(bytes.subarray(0, 4), MAGIC)) {
    throw new UnsupportedParquetError(equal(bytes.subarray(0, 4), new Uint8Array([0x50, 0x41, 0x52, 0x45])) ? 'encrypted Parquet files are not supported' : 'not a Parquet file');
  }
  if (!equal(bytes.subarray(n - 4), MAGIC)) throw new UnsupportedParquetError('not a Parquet file (no footer)');
  const footerLength = new DataView(bytes.buffer, bytes.byteOffset + n - 8, 4).getUint32(0, true);
  if (footerLength + 12 > n) throw new UnsupportedParquetError('the Parquet footer is truncated');
  const meta = new ThriftReader(bytes, n - 8 - footerLength).readStruct();
  if (meta.has(8) || meta.has(9)) throw new UnsupportedParquetError('encrypted Parquet files are not supported');
  return { bytes, meta, leaves: leavesOf(structs(meta, 2)), numRows: int(meta, 3) ?? 0 };
}

/** The leaves of a flattened schema (SchemaElement list, depth first), with their max levels. */
function leavesOf(schema: ThriftStruct[]): LeafColumn[] {
  const leaves: LeafColumn[] = [];
  let i = 1;
  const walk = (path: string[], def: number, rep: number, children: number) => {
    for (let c = 0; c < children; c += 1) {
      const el = schema[i++];
      if (!el) throw new UnsupportedParquetError('the Parquet schema is truncated');
      const name = new TextDecoder().decode((el.get(4) as { value: Uint8Array } | undefined)?.value ?? new Uint8Array());
      const repetition = int(el, 3) ?? 0;
      const d = def + (repetition === 0 ? 0 : 1);
      const r = rep + (repetition === 2 ? 1 : 0);
      const kids = int(el, 5) ?? 0;
      if (kids > 0 || int(el, 1) === undefined) walk([...path, name], d, r, kids);
      else {
        // converted_type (6) UINT_8…UINT_64 are 11…14; logicalType (10): INTEGER (10) with isSigned (2) false, UUID (14).
        const converted = int(el, 6);
        const logical = struct(el, 10);
        const integer = logical && struct(logical, 10);
        const signed = integer?.get(2);
        const unsigned = (converted !== undefined && converted >= 11 && converted <= 14) || (signed?.type === 'bool' && !signed.value);
        // DECIMAL: converted_type 5 with scale (7), or logicalType DECIMAL (5) with its scale (1).
        const decimal = logical && struct(logical, 5);
        const scale = decimal ? (int(decimal, 1) ?? 0) : converted === 5 ? (int(el, 7) ?? 0) : undefined;
        leaves.push({
          path: [...path, name],
          physical: int(el, 1)!,
          typeLength: int(el, 2) ?? 0,
          maxDef: d,
          maxRep: r,
          unsigned,
          uuid: Boolean(logical?.has(14)),
          ...(scale !== undefined && { scale }),
        });
      }
    }
  };
  walk([], 0, 0, schema[0] ? (int(schema[0], 5) ?? 0) : 0);
  return leaves;
}

/** A column chunk's statistics: the least and greatest values, as stored. */
export interface Bounds extends ColumnType {
  readonly min: Uint8Array;
  readonly max: Uint8Array;
}

/**
 * Whether `value` (as stored: UTF-8 bytes, or little-endian integers) can be within `bounds`:
 * byte arrays compare unsigned byte by byte, integers signed (or unsigned, for UINT columns);
 * other types are not ruled out.
 */
export function within(bounds: Bounds, value: Uint8Array): boolean {
  const { physical, min, max } = bounds;
  // A decimal in bytes is ordered as a signed number, not byte by byte: never ruled out here.
  if (bounds.scale !== undefined && (physical === Physical.BYTE_ARRAY || physical === Physical.FIXED_LEN_BYTE_ARRAY)) return true;
  if (physical === Physical.BYTE_ARRAY || physical === Physical.FIXED_LEN_BYTE_ARRAY) {
    return Buffer.compare(value, min) >= 0 && Buffer.compare(value, max) <= 0;
  }
  if ((physical === Physical.INT32 && value.length === 4 && min.length === 4 && max.length === 4) || (physical === Physical.INT64 && value.length === 8 && min.length === 8 && max.length === 8)) {
    const read = (b: Uint8Array) =>
      b.length === 4
        ? BigInt(bounds.unsigned ? Buffer.from(b).readUInt32LE() : Buffer.from(b).readInt32LE())
        : bounds.unsigned
          ? Buffer.from(b).readBigUInt64LE()
          : Buffer.from(b).readBigInt64LE();
    const v = read(value);
    return v >= read(min) && v <= read(max);
  }
  return true;
}

/** Rows of one row group to remove, by index within the row group. */
export type RowsToRemove = ReadonlySet<number>;

export interface RewriteResult {
  /** The new file; undefined when there was nothing to remove (the file stays as it is). */
  readonly bytes: Uint8Array | undefined;
  readonly removed: number;
}

/**
 * Remove rows: `select` says, for each row group, which of its rows go (empty: none). It may read
 * the group's columns through `readColumn`.
 */
export function removeRows(
  file: ParquetFile,
  select: (rowGroup: number, readColumn: (path: readonly string[]) => ColumnValues, bounds: (path: readonly string[]) => Bounds | undefined) => RowsToRemove,
): RewriteResult {
  const groups = structs(file.meta, 4);
  // min_value and max_value are in the type's order only when the file says so (column_orders).
  const ordered = file.meta.has(7);
  const plans = groups.map((group, g) => {
    const columns = structs(group, 1);
    const index = (path: readonly string[]) => leafIndex(file, path);
    const read = (path: readonly string[]) => readColumnValues(file, columns[index(path)]!, file.leaves[index(path)]!);
    const bounds = (path: readonly string[]): Bounds | undefined => {
      const meta = struct(columns[index(path)]!, 3);
      const stats = ordered && meta ? struct(meta, 12) : undefined;
      const max = stats?.get(5);
      const min = stats?.get(6);
      const leaf = file.leaves[index(path)]!;
      if (min?.type !== 'binary' || max?.type !== 'binary') return undefined;
      return { physical: leaf.physical, typeLength: leaf.typeLength, unsigned: leaf.unsigned, uuid: leaf.uuid, ...(leaf.scale !== undefined && { scale: leaf.scale }), min: min.value, max: max.value };
    };
    return select(g, read, bounds);
  });
  const removed = plans.reduce((n, p) => n + p.size, 0);
  if (removed === 0) return { bytes: undefined, removed: 0 };

  const out = new Chunks();
  out.push(MAGIC);
  const keptGroups: ThriftStruct[] = [];
  groups.forEach((group, g) => {
    const rows = int(group, 3) ?? 0;
    const remove = plans[g]!;
    if (remove.size >= rows) return; // nothing of it remains
    const newGroup = new Map(group);
    const columns = structs(group, 1).map((chunk, c) => {
      const leaf = file.leaves[c]!;
      return remove.size === 0 ? copyChunk(file, chunk, out) : rewriteChunk(file, chunk, leaf, remove, out);
    });
    newGroup.set(1, listOf(columns));
    setInt(newGroup, 3, rows - remove.size);
    const sizes = columns.map((c) => struct(c, 3)!);
    setInt(newGroup, 2, sizes.reduce((n, m) => n + (int(m, 6) ?? 0), 0));
    if (newGroup.has(6)) setInt(newGroup, 6, sizes.reduce((n, m) => n + (int(m, 7) ?? 0), 0));
    if (newGroup.has(5)) setInt(newGroup, 5, chunkStart(sizes[0]!));
    if (newGroup.has(7)) setInt(newGroup, 7, keptGroups.length, 'i32');
    keptGroups.push(newGroup);
  });
  const meta = new Map(file.meta);
  meta.set(4, listOf(keptGroups));
  setInt(meta, 3, file.numRows - removed);
  const footer = encodeStruct(meta);
  out.push(footer);
  const length = new Uint8Array(4);
  new DataView(length.buffer).setUint32(0, footer.length, true);
  out.push(length, MAGIC);
  return { bytes: out.concat(), removed };
}

// ---------------------------------------------------------------------------------------------
// Column chunks

/** Where a chunk starts: its dictionary page when it has one (some writers record 0 for none). */
function chunkStart(meta: ThriftStruct): number {
  const data = int(meta, 9)!;
  const dict = int(meta, 11);
  return dict !== undefined && dict > 0 && dict < data ? dict : data;
}

/** Page indexes and bloom filters are not carried over; offsets move with the chunk. */
function withoutIndexes(chunk: ThriftStruct, meta: ThriftStruct): ThriftStruct {
  const c = new Map(chunk);
  for (const id of [4, 5, 6, 7]) c.delete(id);
  const m = new Map(meta);
  for (const id of [14, 15]) m.delete(id);
  c.set(3, { type: 'struct', fields: m });
  return c;
}

function copyChunk(file: ParquetFile, chunk: ThriftStruct, out: Chunks): ThriftStruct {
  const meta = struct(chunk, 3);
  if (!meta) throw new UnsupportedParquetError('column chunks in other files are not supported');
  const start = chunkStart(meta);
  const length = int(meta, 7)!;
  const delta = out.length - start;
  out.push(file.bytes.subarray(start, start + length));
  const m = new Map(meta);
  setInt(m, 9, int(meta, 9)! + delta);
  const dict = int(meta, 11);
  if (dict !== undefined && dict > 0) setInt(m, 11, dict + delta);
  if (m.has(10)) m.delete(10);
  const c = withoutIndexes(chunk, m);
  if (c.has(2)) setInt(c, 2, (int(chunk, 2) ?? start) + delta);
  return c;
}

interface Page {
  readonly header: ThriftStruct;
  readonly type: number;
  /** The page body, decompressed (for v2: the levels, then the values). */
  readonly body: Uint8Array;
}

function* pages(file: ParquetFile, meta: ThriftStruct): Generator<Page> {
  const codec = int(meta, 4) ?? 0;
  const total = int(meta, 5) ?? 0;
  let offset = chunkStart(meta);
  let values = 0;
  while (values < total) {
    const reader = new ThriftReader(file.bytes, offset);
    const header = reader.readStruct();
    const type = int(header, 1)!;
    const compressedSize = int(header, 3)!;
    const uncompressedSize = int(header, 2)!;
    const raw = file.bytes.subarray(reader.offset, reader.offset + compressedSize);
    offset = reader.offset + compressedSize;
    if (type === PageType.DICTIONARY_PAGE) {
      yield { header, type, body: decompress(codec, raw, uncompressedSize) };
    } else if (type === PageType.DATA_PAGE) {
      values += int(struct(header, 5)!, 1)!;
      yield { header, type, body: decompress(codec, raw, uncompressedSize) };
    } else if (type === PageType.DATA_PAGE_V2) {
      const v2 = struct(header, 8)!;
      values += int(v2, 1)!;
      const levels = (int(v2, 5) ?? 0) + (int(v2, 6) ?? 0);
      const compressed = (v2.get(7) as { value?: boolean } | undefined)?.value ?? true;
      const rest = raw.subarray(levels);
      const body = compressed ? concat([raw.subarray(0, levels), decompress(codec, rest, uncompressedSize - levels)]) : raw;
      yield { header, type, body };
    }
    // Index pages carry nothing to keep.
  }
}

/** A data page, decoded as far as filtering needs: levels, and the values as byte ranges or indices. */
interface DataPage {
  readonly rep: Int32Array | undefined;
  readonly def: Int32Array | undefined;
  readonly count: number;
  readonly encoding: number;
  /** Dictionary indices (dictionary encodings), or bits (RLE booleans). */
  readonly indices?: Int32Array;
  /** PLAIN: where each value's bytes are in `body` (BYTE_ARRAY values with their length prefix). */
  readonly plain?: PlainValues;
}

interface PlainValues {
  readonly body: Uint8Array;
  readonly starts: Int32Array;
  readonly ends: Int32Array;
}

function decodeDataPage(page: Page, leaf: LeafColumn, column: string): DataPage {
  let body = page.body;
  let count: number;
  let encoding: number;
  let rep: Int32Array | undefined;
  let def: Int32Array | undefined;
  if (page.type === PageType.DATA_PAGE) {
    const h = struct(page.header, 5)!;
    count = int(h, 1)!;
    encoding = int(h, 2)!;
    let at = 0;
    for (const [max, id] of [[leaf.maxRep, 4], [leaf.maxDef, 3]] as const) {
      if (max === 0) continue;
      if ((int(h, id) ?? Encoding.RLE) !== Encoding.RLE) throw new UnsupportedParquetError(`${column}: BIT_PACKED levels are not supported`);
      const length = new DataView(body.buffer, body.byteOffset + at, 4).getUint32(0, true);
      const levels = decodeHybrid(body.subarray(at + 4, at + 4 + length), bitWidth(max), count);
      if (id === 4) rep = levels;
      else def = levels;
      at += 4 + length;
    }
    body = body.subarray(at);
  } else {
    const h = struct(page.header, 8)!;
    count = int(h, 1)!;
    encoding = int(h, 4)!;
    const defLength = int(h, 5) ?? 0;
    const repLength = int(h, 6) ?? 0;
    if (leaf.maxRep > 0) rep = decodeHybrid(body.subarray(0, repLength), bitWidth(leaf.maxRep), count);
    if (leaf.maxDef > 0) def = decodeHybrid(body.subarray(repLength, repLength + defLength), bitWidth(leaf.maxDef), count);
    body = body.subarray(repLength + defLength);
  }
  const present = def ? def.reduce((n, d) => n + (d === leaf.maxDef ? 1 : 0), 0) : count;
  if (encoding === Encoding.PLAIN_DICTIONARY || encoding === Encoding.RLE_DICTIONARY) {
    return { rep, def, count, encoding, indices: decodeHybrid(body.subarray(1), body[0] ?? 0, present) };
  }
  if (encoding === Encoding.RLE && leaf.physical === Physical.BOOLEAN) {
    const length = new DataView(body.buffer, body.byteOffset, 4).getUint32(0, true);
    return { rep, def, count, encoding, indices: decodeHybrid(body.subarray(4, 4 + length), 1, present) };
  }
  if (encoding === Encoding.PLAIN) {
    if (leaf.physical === Physical.BOOLEAN) return { rep, def, count, encoding, indices: unpackBits(body, 1, present) };
    return { rep, def, count, encoding, plain: plainRanges(body, leaf, present) };
  }
  throw new UnsupportedParquetError(`${column}: encoding ${ENCODING_NAMES[encoding] ?? String(encoding)} is not supported yet`);
}

/** Byte ranges of `count` PLAIN values of a non-boolean type. */
function plainRanges(body: Uint8Array, leaf: LeafColumn, count: number): PlainValues {
  const starts = new Int32Array(count);
  const ends = new Int32Array(count);
  const width = { [Physical.INT32]: 4, [Physical.FLOAT]: 4, [Physical.INT64]: 8, [Physical.DOUBLE]: 8, [Physical.INT96]: 12, [Physical.FIXED_LEN_BYTE_ARRAY]: leaf.typeLength }[leaf.physical];
  if (width !== undefined) {
    for (let i = 0; i < count; i += 1) {
      starts[i] = i * width;
      ends[i] = (i + 1) * width;
    }
  } else {
    const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
    let at = 0;
    for (let i = 0; i < count; i += 1) {
      starts[i] = at;
      at += 4 + view.getUint32(at, true);
      ends[i] = at;
    }
  }
  return { body, starts, ends };
}

/**
 * A configured column's leaf: the leaf of that path, or the one leaf under it (a list column, such
 * as `emails` whose leaf is `emails.list.element`). A group of several leaves is not one column.
 */
export function leafIndex(file: ParquetFile, path: readonly string[]): number {
  const name = path.join('.');
  const exact = file.leaves.findIndex((l) => l.path.join('.') === name);
  if (exact >= 0) return exact;
  const under = file.leaves.flatMap((l, i) => (l.path.join('.').startsWith(`${name}.`) ? [i] : []));
  if (under.length === 1) return under[0]!;
  throw new UnsupportedParquetError(under.length ? `column ${name} is a group of ${String(under.length)} columns: name one of them` : `no column ${name}`);
}

/** How a column stores its values: what a value must be turned into to be compared with them. */
export interface ColumnType {
  readonly physical: number;
  readonly typeLength: number;
  /** Ordered as unsigned integers (UINT_*). */
  readonly unsigned: boolean;
  /** A UUID: 16 bytes, big-endian, in a FIXED_LEN_BYTE_ARRAY. */
  readonly uuid: boolean;
  /** A DECIMAL's scale. */
  readonly scale?: number;
}

const UUID_TEXT = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * How a value is stored in a column of this type, in every form it can take there: UTF-8 bytes
 * (strings, and fixed-length bytes of that length), a UUID's 16 bytes, a little-endian integer
 * (signed, or unsigned for UINT columns). None when the column cannot hold it.
 */
export function storedForms(column: ColumnType, v: string): Uint8Array[] {
  const { physical } = column;
  if (column.scale !== undefined) return decimalForms(column, v);
  if (physical === Physical.BYTE_ARRAY) return [Buffer.from(v, 'utf8')];
  if (physical === Physical.FIXED_LEN_BYTE_ARRAY) {
    if (column.uuid || column.typeLength === 16) {
      if (UUID_TEXT.test(v.trim())) return [Buffer.from(v.trim().replaceAll('-', ''), 'hex')];
    }
    const utf8 = Buffer.from(v, 'utf8');
    return utf8.length === column.typeLength && !column.uuid ? [utf8] : [];
  }
  if ((physical === Physical.INT32 || physical === Physical.INT64) && /^-?\d{1,20}$/.test(v)) {
    const n = BigInt(v);
    const bits = physical === Physical.INT32 ? 32 : 64;
    const fits = column.unsigned ? n >= 0n && n === BigInt.asUintN(bits, n) : n === BigInt.asIntN(bits, n);
    if (!fits) return [];
    const b = Buffer.alloc(bits / 8);
    // Unsigned values are stored as the signed type's bits.
    if (bits === 32) b.writeInt32LE(Number(BigInt.asIntN(32, n)));
    else b.writeBigInt64LE(BigInt.asIntN(64, n));
    return [b];
  }
  return [];
}

/**
 * A decimal value as a DECIMAL column stores it: the unscaled integer, little-endian in INT32 and
 * INT64, big-endian two's complement of the column's length (or the shortest, BYTE_ARRAY) otherwise.
 * A value with more fractional digits than the scale, or too large for the column, cannot be there.
 */
function decimalForms(column: ColumnType, v: string): Uint8Array[] {
  const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(v.trim());
  const scale = column.scale ?? 0;
  if (!m) return [];
  const fraction = (m[3] ?? '').replace(/0+$/, '');
  if (fraction.length > scale) return [];
  const unscaled = BigInt(`${m[1]!}${m[2]!}${fraction.padEnd(scale, '0')}`);
  if (column.physical === Physical.INT32 || column.physical === Physical.INT64) {
    const bits = column.physical === Physical.INT32 ? 32 : 64;
    if (unscaled !== BigInt.asIntN(bits, unscaled)) return [];
    const b = Buffer.alloc(bits / 8);
    if (bits === 32) b.writeInt32LE(Number(unscaled));
    else b.writeBigInt64LE(unscaled);
    return [b];
  }
  const length = column.physical === Physical.FIXED_LEN_BYTE_ARRAY ? column.typeLength : Math.max(1, Math.ceil((unscaled.toString(2).length + 1) / 8));
  if (length === 0 || unscaled !== BigInt.asIntN(length * 8, unscaled)) return [];
  const b = Buffer.alloc(length);
  let x = BigInt.asUintN(length * 8, unscaled);
  for (let i = length - 1; i >= 0; i -= 1) {
    b[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  return [b];
}

/** A DECIMAL's stored value as decimal text (`-12.50` at scale 2 is `-12.5`; trailing fraction zeros dropped). */
function decimalText(column: ColumnType, b: Buffer): string | undefined {
  let unscaled: bigint;
  if (column.physical === Physical.INT32 && b.length === 4) unscaled = BigInt(b.readInt32LE());
  else if (column.physical === Physical.INT64 && b.length === 8) unscaled = b.readBigInt64LE();
  else if ((column.physical === Physical.BYTE_ARRAY || column.physical === Physical.FIXED_LEN_BYTE_ARRAY) && b.length > 0) {
    unscaled = BigInt.asIntN(b.length * 8, BigInt(`0x${b.toString('hex')}`));
  } else return undefined;
  const scale = column.scale ?? 0;
  const digits = (unscaled < 0n ? -unscaled : unscaled).toString().padStart(scale + 1, '0');
  const whole = digits.slice(0, digits.length - scale);
  const fraction = digits.slice(digits.length - scale).replace(/0+$/, '');
  return `${unscaled < 0n ? '-' : ''}${whole}${fraction ? `.${fraction}` : ''}`;
}

/** A stored value as text, the inverse of `storedForms`: a string, a UUID's canonical text, an integer's decimal digits. */
export function textOf(column: ColumnType, bytes: Uint8Array): string | undefined {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (column.scale !== undefined) return decimalText(column, b);
  if (column.physical === Physical.FIXED_LEN_BYTE_ARRAY && column.uuid && b.length === 16) {
    const hex = b.toString('hex');
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }
  if (column.physical === Physical.BYTE_ARRAY || column.physical === Physical.FIXED_LEN_BYTE_ARRAY) return b.toString('utf8');
  if (column.physical === Physical.INT32 && b.length === 4) return String(column.unsigned ? b.readUInt32LE() : b.readInt32LE());
  if (column.physical === Physical.INT64 && b.length === 8) return String(column.unsigned ? b.readBigUInt64LE() : b.readBigInt64LE());
  return undefined;
}

/** The values of a column chunk, for finding rows. */
export interface ColumnValues extends ColumnType {
  /**
   * Per row, its values' bytes (BYTE_ARRAY without its length; fixed-width types as stored): one
   * for a flat column, as many as the list holds for a repeated one, none when null or empty.
   */
  readonly rows: (readonly Uint8Array[])[];
}

function readColumnValues(file: ParquetFile, chunk: ThriftStruct, leaf: LeafColumn): ColumnValues {
  const column = leaf.path.join('.');
  const meta = struct(chunk, 3)!;
  let dictionary: Uint8Array[] | undefined;
  const rows: Uint8Array[][] = [];
  const valueOf = (p: PlainValues, i: number) => {
    const value = p.body.subarray(p.starts[i], p.ends[i]);
    return leaf.physical === Physical.BYTE_ARRAY ? value.subarray(4) : value;
  };
  for (const page of pages(file, meta)) {
    if (page.type === PageType.DICTIONARY_PAGE) {
      const n = int(struct(page.header, 7)!, 1)!;
      const p = plainRanges(page.body, leaf, n);
      dictionary = Array.from({ length: n }, (_, i) => valueOf(p, i));
      continue;
    }
    const data = decodeDataPage(page, leaf, column);
    let v = 0;
    for (let i = 0; i < data.count; i += 1) {
      // A repetition level of 0 starts a row; a list's further elements belong to the row before.
      if (!data.rep || data.rep[i] === 0 || rows.length === 0) rows.push([]);
      if (data.def && data.def[i] !== leaf.maxDef) continue;
      const value = data.indices ? dictionary?.[data.indices[v]!] : valueOf(data.plain!, v);
      if (value) rows[rows.length - 1]!.push(value);
      v += 1;
    }
  }
  return { physical: leaf.physical, typeLength: leaf.typeLength, unsigned: leaf.unsigned, uuid: leaf.uuid, ...(leaf.scale !== undefined && { scale: leaf.scale }), rows };
}

/** Re-encode a chunk without the removed rows: same page kinds, encodings and codec. */
function rewriteChunk(file: ParquetFile, chunk: ThriftStruct, leaf: LeafColumn, remove: RowsToRemove, out: Chunks): ThriftStruct {
  const meta = struct(chunk, 3)!;
  const codec = int(meta, 4) ?? 0;
  const column = leaf.path.join('.');
  let dictionary: { page: Page; values: PlainValues; count: number } | undefined;
  const kept: { page: Page; data: DataPage; keep: Uint8Array }[] = [];
  let row = -1;
  for (const page of pages(file, meta)) {
    if (page.type === PageType.DICTIONARY_PAGE) {
      const count = int(struct(page.header, 7)!, 1)!;
      dictionary = { page, count, values: plainRanges(page.body, leaf, count) };
      continue;
    }
    const data = decodeDataPage(page, leaf, column);
    const keep = new Uint8Array(data.count);
    for (let i = 0; i < data.count; i += 1) {
      if (!data.rep || data.rep[i] === 0) row += 1;
      keep[i] = remove.has(row) ? 0 : 1;
    }
    kept.push({ page, data, keep });
  }

  // A dictionary keeps only the entries that remaining rows use, in their order.
  let remap: Int32Array | undefined;
  let newDictionary: PlainValues | undefined;
  if (dictionary) {
    const used = new Uint8Array(dictionary.count);
    for (const { data, keep } of kept) {
      if (!data.indices || (data.encoding !== Encoding.PLAIN_DICTIONARY && data.encoding !== Encoding.RLE_DICTIONARY)) continue;
      eachPresent(data, leaf, keep, (v) => (used[data.indices![v]!] = 1));
    }
    remap = new Int32Array(dictionary.count).fill(-1);
    const starts: number[] = [];
    const ends: number[] = [];
    for (let i = 0, n = 0; i < dictionary.count; i += 1) {
      if (!used[i]) continue;
      remap[i] = n++;
      starts.push(dictionary.values.starts[i]!);
      ends.push(dictionary.values.ends[i]!);
    }
    newDictionary = { body: dictionary.values.body, starts: Int32Array.from(starts), ends: Int32Array.from(ends) };
  }

  const start = out.length;
  let uncompressedTotal = 0;
  let values = 0;
  let nulls = 0;
  const write = (header: ThriftStruct, body: Uint8Array, uncompressedSize: number) => {
    setInt(header, 2, uncompressedSize, 'i32');
    setInt(header, 3, body.length, 'i32');
    if (header.has(4)) setInt(header, 4, crc32(body) | 0, 'i32');
    const encoded = encodeStruct(header);
    out.push(encoded, body);
    uncompressedTotal += encoded.length + uncompressedSize;
  };
  let dictionaryOffset: number | undefined;
  if (dictionary && newDictionary) {
    dictionaryOffset = out.length;
    const plain = gather(newDictionary, allOf(newDictionary.starts.length));
    const header = new Map(dictionary.page.header);
    const dh = new Map(struct(header, 7));
    setInt(dh, 1, newDictionary.starts.length, 'i32');
    header.set(7, { type: 'struct', fields: dh });
    write(header, compress(codec, plain), plain.length);
  }
  const dataOffset = out.length;
  for (const { page, data, keep } of kept) {
    const entries = keep.reduce((n, k) => n + k, 0);
    if (entries === 0) continue;
    const rep = data.rep?.filter((_, i) => keep[i] === 1);
    const def = data.def?.filter((_, i) => keep[i] === 1);
    const keptValues: number[] = [];
    eachPresent(data, leaf, keep, (v) => keptValues.push(v));
    let encodedValues: Uint8Array;
    if (data.plain) encodedValues = gather(data.plain, keptValues);
    else if (data.encoding === Encoding.PLAIN) encodedValues = packBits(keptValues.map((v) => data.indices![v]!), 1);
    else if (data.encoding === Encoding.RLE) encodedValues = withLength(encodeHybrid(keptValues.map((v) => data.indices![v]!), 1));
    else {
      const indices = keptValues.map((v) => remap![data.indices![v]!]!);
      const width = Math.max(1, bitWidth((newDictionary?.starts.length ?? 1) - 1));
      encodedValues = concat([new Uint8Array([width]), encodeHybrid(indices, width)]);
    }
    const pageNulls = def ? def.reduce((n, d) => n + (d < leaf.maxDef ? 1 : 0), 0) : 0;
    const pageRows = rep ? rep.reduce((n, r) => n + (r === 0 ? 1 : 0), 0) : entries;
    values += entries;
    nulls += pageNulls;
    const header = new Map(page.header);
    if (page.type === PageType.DATA_PAGE) {
      const levels: Uint8Array[] = [];
      if (rep) levels.push(withLength(encodeHybrid(rep, bitWidth(leaf.maxRep))));
      if (def) levels.push(withLength(encodeHybrid(def, bitWidth(leaf.maxDef))));
      const body = concat([...levels, encodedValues]);
      const h = new Map(struct(header, 5));
      setInt(h, 1, entries, 'i32');
      h.delete(5);
      header.set(5, { type: 'struct', fields: h });
      write(header, compress(codec, body), body.length);
    } else {
      const repBytes = rep ? encodeHybrid(rep, bitWidth(leaf.maxRep)) : new Uint8Array();
      const defBytes = def ? encodeHybrid(def, bitWidth(leaf.maxDef)) : new Uint8Array();
      const h = new Map(struct(header, 8));
      const compressed = (h.get(7) as { value?: boolean } | undefined)?.value ?? true;
      setInt(h, 1, entries, 'i32');
      setInt(h, 2, pageNulls, 'i32');
      setInt(h, 3, pageRows, 'i32');
      setInt(h, 5, defBytes.length, 'i32');
      setInt(h, 6, repBytes.length, 'i32');
      h.delete(8);
      header.set(8, { type: 'struct', fields: h });
      const valuesBytes = compressed ? compress(codec, encodedValues) : encodedValues;
      write(header, concat([repBytes, defBytes, valuesBytes]), repBytes.length + defBytes.length + encodedValues.length);
    }
  }

  const m = new Map(meta);
  setInt(m, 5, values);
  setInt(m, 6, uncompressedTotal);
  setInt(m, 7, out.length - start);
  setInt(m, 9, dataOffset);
  if (dictionaryOffset !== undefined) setInt(m, 11, dictionaryOffset);
  else m.delete(11);
  for (const id of [10, 13, 16, 17]) m.delete(id);
  const stats = struct(meta, 12);
  if (stats) {
    // Min and max could be a removed person's value: only counts stay, recomputed.
    const s: ThriftStruct = new Map();
    if (stats.has(3)) setInt(s, 3, nulls);
    m.set(12, { type: 'struct', fields: s });
  }
  const c = withoutIndexes(chunk, m);
  if (c.has(2)) setInt(c, 2, start);
  return c;
}

/** Calls `f` with the value index of each present value in an entry that is kept. */
function eachPresent(data: DataPage, leaf: LeafColumn, keep: Uint8Array, f: (valueIndex: number) => void): void {
  let v = 0;
  for (let i = 0; i < data.count; i += 1) {
    if (data.def && data.def[i] !== leaf.maxDef) continue;
    if (keep[i]) f(v);
    v += 1;
  }
}

const allOf = (n: number) => Array.from({ length: n }, (_, i) => i);

function gather(p: PlainValues, which: readonly number[]): Uint8Array {
  let size = 0;
  for (const i of which) size += p.ends[i]! - p.starts[i]!;
  const out = new Uint8Array(size);
  let at = 0;
  for (const i of which) {
    out.set(p.body.subarray(p.starts[i], p.ends[i]), at);
    at += p.ends[i]! - p.starts[i]!;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The RLE / bit-packing hybrid (levels, dictionary indices, RLE booleans)

export const bitWidth = (max: number) => (max === 0 ? 0 : 32 - Math.clz32(max));

export function decodeHybrid(bytes: Uint8Array, width: number, count: number): Int32Array {
  const out = new Int32Array(count);
  let i = 0;
  let at = 0;
  const byteWidth = Math.ceil(width / 8);
  while (i < count && at < bytes.length) {
    let header = 0;
    let shift = 0;
    for (;;) {
      const b = bytes[at++]!;
      header |= (b & 0x7f) << shift;
      if ((b & 0x80) === 0) break;
      shift += 7;
    }
    if (header & 1) {
      const n = (header >>> 1) * 8;
      const packed = unpackBits(bytes.subarray(at, at + (header >>> 1) * width), width, n);
      out.set(packed.subarray(0, Math.min(n, count - i)), i);
      i += n;
      at += (header >>> 1) * width;
    } else {
      const n = header >>> 1;
      let value = 0;
      for (let b = 0; b < byteWidth; b += 1) value |= bytes[at + b]! << (8 * b);
      at += byteWidth;
      out.fill(value, i, Math.min(count, i + n));
      i += n;
    }
  }
  if (i < count) throw new UnsupportedParquetError('a level or index stream is truncated');
  return out;
}

export function encodeHybrid(values: ArrayLike<number>, width: number): Uint8Array {
  const out = new Chunks();
  const pending: number[] = [];
  const flushPacked = () => {
    if (pending.length === 0) return;
    while (pending.length % 8 !== 0) pending.push(0);
    out.push(varint(((pending.length / 8) << 1) | 1), packBits(pending, width));
    pending.length = 0;
  };
  const byteWidth = Math.ceil(width / 8);
  let i = 0;
  while (i < values.length) {
    const v = values[i]!;
    let j = i;
    while (j < values.length && values[j] === v) j += 1;
    let run = j - i;
    if (run >= 8) {
      // Top the pending values up to whole groups of 8 from this run, then write the rest as a run.
      while (pending.length % 8 !== 0 && run > 0) {
        pending.push(v);
        i += 1;
        run -= 1;
      }
      if (run >= 8) {
        flushPacked();
        const value = new Uint8Array(byteWidth);
        for (let b = 0; b < byteWidth; b += 1) value[b] = (v >>> (8 * b)) & 0xff;
        out.push(varint(run << 1), value);
        i += run;
      }
    } else {
      for (; i < j; i += 1) pending.push(v);
    }
  }
  flushPacked();
  return out.concat();
}

function unpackBits(bytes: Uint8Array, width: number, count: number): Int32Array {
  const out = new Int32Array(count);
  if (width === 0) return out;
  let bit = 0;
  for (let i = 0; i < count; i += 1) {
    let v = 0;
    for (let b = 0; b < width; b += 1, bit += 1) v |= ((bytes[bit >> 3]! >> (bit & 7)) & 1) << b;
    out[i] = v;
  }
  return out;
}

function packBits(values: readonly number[], width: number): Uint8Array {
  const out = new Uint8Array(Math.ceil((values.length * width) / 8));
  let bit = 0;
  for (const v of values) {
    for (let b = 0; b < width; b += 1, bit += 1) if ((v >>> b) & 1) out[bit >> 3]! |= 1 << (bit & 7);
  }
  return out;
}

function varint(n: number): Uint8Array {
  const bytes: number[] = [];
  let v = n >>> 0;
  do {
    let b = v & 0x7f;
    v >>>= 7;
    if (v) b |= 0x80;
    bytes.push(b);
  } while (v);
  return Uint8Array.from(bytes);
}

function withLength(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + bytes.length);
  new DataView(out.buffer).setUint32(0, bytes.length, true);
  out.set(bytes, 4);
  return out;
}

// ---------------------------------------------------------------------------------------------

/** An output assembled from parts, knowing its length so far. */
class Chunks {
  readonly #parts: Uint8Array[] = [];
  length = 0;

  push(...parts: Uint8Array[]): void {
    for (const p of parts) {
      this.#parts.push(p);
      this.length += p.length;
    }
  }

  concat(): Uint8Array {
    return concat(this.#parts, this.length);
  }
}

function concat(parts: readonly Uint8Array[], length = parts.reduce((n, p) => n + p.length, 0)): Uint8Array {
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
