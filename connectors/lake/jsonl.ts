import { gunzipSync, gzipSync } from 'node:zlib';
import { ConnectorPermanentError } from '#core/errors';

export interface JsonLinesResult {
  /** The new object; undefined when no line was the subject's. */
  readonly bytes: Uint8Array | undefined;
  readonly removed: number;
}

/**
 * Remove the lines of a JSON Lines object whose value at any of `columns` (dotted paths) is one of
 * the subjects' values for that column (`onRemoved` hears whose each removed line was).
 */
export function removeJsonLines(
  object: Uint8Array,
  columns: ReadonlyMap<string, ReadonlyMap<string, readonly string[]>>,
  where: string,
  onRemoved: (owners: readonly string[]) => void = () => undefined,
): JsonLinesResult {
  return filterJsonLines(object, where, (row) => {
    const owners = new Set<string>();
    for (const [column, values] of columns) for (const o of ownersOf(valueAt(row, column), values)) owners.add(o);
    if (owners.size === 0) return false;
    onRemoved([...owners]);
    return true;
  });
}

/**
 * Remove the lines of a JSON Lines object that `remove` picks. Every other line is kept byte for
 * byte, line endings included; a gzip object is written back gzip. A line that is not JSON is
 * refused rather than guessed at: it could be a removed person's.
 */
export function filterJsonLines(object: Uint8Array, where: string, remove: (row: unknown) => boolean): JsonLinesResult {
  const gzipped = object[0] === 0x1f && object[1] === 0x8b;
  const text = Buffer.from(gzipped ? gunzipSync(object) : object);
  const kept: Buffer[] = [];
  let removed = 0;
  let start = 0;
  let line = 0;
  while (start < text.length) {
    const end = text.indexOf(0x0a, start);
    const stop = end < 0 ? text.length : end + 1;
    const raw = text.subarray(start, stop);
    line += 1;
    start = stop;
    const body = raw.toString('utf8').trim();
    if (body.length === 0) {
      kept.push(raw);
      continue;
    }
    let row: unknown;
    try {
      row = JSON.parse(body, exactNumbers) as unknown;
    } catch {
      throw new ConnectorPermanentError(`${where}: line ${String(line)} is not JSON; the object is left as it is`);
    }
    if (remove(row)) removed += 1;
    else kept.push(raw);
  }
  if (removed === 0) return { bytes: undefined, removed: 0 };
  const out = Buffer.concat(kept);
  return { bytes: gzipped ? gzipSync(out) : out, removed };
}

/**
 * A number of a JSON line, as written: `12345678901234567891` is not rounded to a double (which
 * would take it for its neighbour `12345678901234567890`), so ids compare by their exact text.
 */
export class JsonNumber {
  readonly source: string;
  constructor(source: string) {
    this.source = source;
  }
}

/** JSON.parse's reviver, with the source text of each number (Node 22: JSON.parse source text access). */
function exactNumbers(this: unknown, _key: string, value: unknown, context?: { source?: string }): unknown {
  return typeof value === 'number' && context?.source !== undefined ? new JsonNumber(context.source) : value;
}

/** A scalar of a JSON line as text, the way identities are compared: a string as it is, a number as written. */
export function scalarText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value instanceof JsonNumber) return value.source;
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  return undefined;
}

export function valueAt(row: unknown, path: string): unknown {
  let v: unknown = row;
  for (const part of path.split('.')) v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[part] : undefined;
  return v;
}

/**
 * Whose value it is: a string compared as it is, a number by its text as written (user ids are
 * often numbers in JSON), a list by each of its elements.
 */
function ownersOf(value: unknown, values: ReadonlyMap<string, readonly string[]>): readonly string[] {
  if (Array.isArray(value)) return value.flatMap((v) => (Array.isArray(v) ? [] : ownersOf(v, values)));
  const text = scalarText(value);
  return text === undefined ? [] : (values.get(text) ?? []);
}
