/**
 * Thrift's compact protocol, generically: every field is kept with its id and wire type, so that a
 * Parquet footer or page header read here and written back is the same bytes, fields this code
 * does not know about included. Parquet's metadata is Thrift structs in this protocol.
 */

export type ThriftValue =
  | { readonly type: 'bool'; readonly value: boolean }
  | { readonly type: 'i8' | 'i16' | 'i32' | 'double'; readonly value: number }
  | { readonly type: 'i64'; readonly value: bigint }
  | { readonly type: 'binary'; readonly value: Uint8Array }
  | { readonly type: 'list' | 'set'; readonly elem: number; readonly items: ThriftValue[] }
  | { readonly type: 'map'; readonly key: number; readonly val: number; readonly entries: [ThriftValue, ThriftValue][] }
  | { readonly type: 'struct'; readonly fields: ThriftStruct };

/** A struct's fields by id, in the order they were read (and are written). */
export type ThriftStruct = Map<number, ThriftValue>;

const CT = { TRUE: 1, FALSE: 2, I8: 3, I16: 4, I32: 5, I64: 6, DOUBLE: 7, BINARY: 8, LIST: 9, SET: 10, MAP: 11, STRUCT: 12 } as const;

export class ThriftReader {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  offset: number;

  constructor(bytes: Uint8Array, offset = 0) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.offset = offset;
  }

  readStruct(): ThriftStruct {
    const fields: ThriftStruct = new Map();
    let last = 0;
    for (;;) {
      const header = this.#byte();
      if (header === 0) return fields;
      const delta = header >> 4;
      const type = header & 0x0f;
      const id = delta === 0 ? this.#zigzag32() : last + delta;
      last = id;
      fields.set(id, this.#value(type, false));
    }
  }

  #value(type: number, inCollection: boolean): ThriftValue {
    switch (type) {
      case CT.TRUE:
      case CT.FALSE:
        // In a struct the type says the value; in a collection a byte follows (1 true, 2 false).
        return { type: 'bool', value: inCollection ? this.#byte() === CT.TRUE : type === CT.TRUE };
      case CT.I8:
        return { type: 'i8', value: this.#view.getInt8(this.#advance(1)) };
      case CT.I16:
        return { type: 'i16', value: this.#zigzag32() };
      case CT.I32:
        return { type: 'i32', value: this.#zigzag32() };
      case CT.I64:
        return { type: 'i64', value: this.#zigzag64() };
      case CT.DOUBLE:
        return { type: 'double', value: this.#view.getFloat64(this.#advance(8), true) };
      case CT.BINARY: {
        const length = Number(this.#varint());
        const start = this.#advance(length);
        return { type: 'binary', value: this.#bytes.subarray(start, start + length) };
      }
      case CT.LIST:
      case CT.SET: {
        const header = this.#byte();
        const elem = header & 0x0f;
        const size = header >> 4 === 15 ? Number(this.#varint()) : header >> 4;
        const items: ThriftValue[] = [];
        for (let i = 0; i < size; i += 1) items.push(this.#value(elem, true));
        return { type: type === CT.LIST ? 'list' : 'set', elem, items };
      }
      case CT.MAP: {
        const size = Number(this.#varint());
        const kinds = size > 0 ? this.#byte() : 0;
        const entries: [ThriftValue, ThriftValue][] = [];
        for (let i = 0; i < size; i += 1) entries.push([this.#value(kinds >> 4, true), this.#value(kinds & 0x0f, true)]);
        return { type: 'map', key: kinds >> 4, val: kinds & 0x0f, entries };
      }
      case CT.STRUCT:
        return { type: 'struct', fields: this.readStruct() };
      default:
        throw new RangeError(`thrift: unknown compact type ${String(type)} at byte ${String(this.offset)}`);
    }
  }

  #advance(n: number): number {
    const at = this.offset;
    if (at + n > this.#bytes.length) throw new RangeError('thrift: truncated');
    this.offset += n;
    return at;
  }

  #byte(): number {
    return this.#bytes[this.#advance(1)]!;
  }

  #varint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const b = this.#byte();
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
      if (shift > 70n) throw new RangeError('thrift: varint too long');
    }
  }

  #zigzag32(): number {
    const n = Number(this.#varint());
    return (n >>> 1) ^ -(n & 1);
  }

  #zigzag64(): bigint {
    const n = this.#varint();
    return (n >> 1n) ^ -(n & 1n);
  }
}

export class ThriftWriter {
  #buffer = new Uint8Array(256);
  #length = 0;

  get bytes(): Uint8Array {
    return this.#buffer.subarray(0, this.#length);
  }

  writeStruct(fields: ThriftStruct): void {
    let last = 0;
    for (const [id, value] of [...fields].sort(([a], [b]) => a - b)) {
      const type = value.type === 'bool' ? (value.value ? CT.TRUE : CT.FALSE) : typeCode(value);
      if (id > last && id - last <= 15) this.#byte(((id - last) << 4) | type);
      else {
        this.#byte(type);
        this.#varint(BigInt(zigzag32(id)));
      }
      last = id;
      if (value.type !== 'bool') this.#value(value);
    }
    this.#byte(0);
  }

  #value(v: ThriftValue): void {
    switch (v.type) {
      case 'bool':
        this.#byte(v.value ? CT.TRUE : CT.FALSE);
        return;
      case 'i8':
        this.#byte(v.value & 0xff);
        return;
      case 'i16':
      case 'i32':
        this.#varint(BigInt(zigzag32(v.value)));
        return;
      case 'i64':
        this.#varint((v.value << 1n) ^ (v.value >> 63n));
        return;
      case 'double': {
        const b = new Uint8Array(8);
        new DataView(b.buffer).setFloat64(0, v.value, true);
        this.#raw(b);
        return;
      }
      case 'binary':
        this.#varint(BigInt(v.value.length));
        this.#raw(v.value);
        return;
      case 'list':
      case 'set':
        if (v.items.length < 15) this.#byte((v.items.length << 4) | v.elem);
        else {
          this.#byte(0xf0 | v.elem);
          this.#varint(BigInt(v.items.length));
        }
        for (const item of v.items) this.#value(item);
        return;
      case 'map':
        this.#varint(BigInt(v.entries.length));
        if (v.entries.length > 0) this.#byte((v.key << 4) | v.val);
        for (const [k, val] of v.entries) {
          this.#value(k);
          this.#value(val);
        }
        return;
      case 'struct':
        this.writeStruct(v.fields);
        return;
    }
  }

  #ensure(n: number): void {
    if (this.#length + n <= this.#buffer.length) return;
    const next = new Uint8Array(Math.max(this.#buffer.length * 2, this.#length + n));
    next.set(this.#buffer.subarray(0, this.#length));
    this.#buffer = next;
  }

  #byte(b: number): void {
    this.#ensure(1);
    this.#buffer[this.#length++] = b;
  }

  #raw(bytes: Uint8Array): void {
    this.#ensure(bytes.length);
    this.#buffer.set(bytes, this.#length);
    this.#length += bytes.length;
  }

  #varint(n: bigint): void {
    let v = BigInt.asUintN(64, n);
    do {
      let b = Number(v & 0x7fn);
      v >>= 7n;
      if (v !== 0n) b |= 0x80;
      this.#byte(b);
    } while (v !== 0n);
  }
}

function typeCode(v: ThriftValue): number {
  switch (v.type) {
    case 'bool':
      return v.value ? CT.TRUE : CT.FALSE;
    case 'i8':
      return CT.I8;
    case 'i16':
      return CT.I16;
    case 'i32':
      return CT.I32;
    case 'i64':
      return CT.I64;
    case 'double':
      return CT.DOUBLE;
    case 'binary':
      return CT.BINARY;
    case 'list':
      return CT.LIST;
    case 'set':
      return CT.SET;
    case 'map':
      return CT.MAP;
    case 'struct':
      return CT.STRUCT;
  }
}

const zigzag32 = (n: number) => ((n << 1) ^ (n >> 31)) >>> 0;

export function encodeStruct(fields: ThriftStruct): Uint8Array {
  const w = new ThriftWriter();
  w.writeStruct(fields);
  return w.bytes;
}

// Typed access to generic structs.

export function int(s: ThriftStruct, id: number): number | undefined {
  const v = s.get(id);
  if (!v) return undefined;
  if (v.type === 'i64') return Number(v.value);
  if (v.type === 'i8' || v.type === 'i16' || v.type === 'i32') return v.value;
  throw new TypeError(`thrift field ${String(id)} is ${v.type}, not an integer`);
}
export function struct(s: ThriftStruct, id: number): ThriftStruct | undefined {
  const v = s.get(id);
  return v?.type === 'struct' ? v.fields : undefined;
}
export function structs(s: ThriftStruct, id: number): ThriftStruct[] {
  const v = s.get(id);
  return v && (v.type === 'list' || v.type === 'set') ? v.items.flatMap((i) => (i.type === 'struct' ? [i.fields] : [])) : [];
}
/** Set an integer field, keeping its wire type when it has one. */
export function setInt(s: ThriftStruct, id: number, value: number | bigint, type: 'i32' | 'i64' = 'i64'): void {
  const wire = s.get(id)?.type ?? type;
  if (wire === 'i64') s.set(id, { type: 'i64', value: BigInt(value) });
  else s.set(id, { type: wire as 'i32', value: Number(value) });
}
export const structValue = (fields: ThriftStruct): ThriftValue => ({ type: 'struct', fields });
export const listOf = (items: ThriftStruct[]): ThriftValue => ({ type: 'list', elem: CT.STRUCT, items: items.map(structValue) });
