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
      row = JSON.parse(body) as unknown;
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

export function valueAt(row: unknown, path: string): unknown {
  let v: unknown = row;
  for (const part of path.split('.')) v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[part] : undefined;
  return v;
}

/** Whose value it is: a string compared as it is, a number by its decimal text (user ids are often numbers in JSON). */
function ownersOf(value: unknown, values: ReadonlyMap<string, readonly string[]>): readonly string[] {
  if (typeof value === 'string') return values.get(value) ?? [];
  if (typeof value === 'number' || typeof value === 'bigint') return values.get(String(value)) ?? [];
  return [];
}
