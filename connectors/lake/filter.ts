import { ValidationError } from '#core/errors';
import { normalizeIdentity, pseudonymize, type PseudonymKey } from '#core/identity';
import { filterJsonLines, scalarText, valueAt } from './jsonl.ts';
import { readParquet, removeRows, textOf } from './parquet.ts';

/** Which column of a dataset holds which identity type. */
export interface IdentityColumn {
  readonly identity: string;
  readonly column: string;
}

export interface FilterResult {
  /** The file without the suppressed subjects' rows (the input itself when there were none). */
  readonly bytes: Uint8Array;
  readonly removed: number;
  readonly kept: number;
}

/**
 * Remove the rows of erased and opted-out subjects from a training set, feature table or any
 * Parquet or JSON Lines file, before it is used. Lethe knows those subjects by pseudonym only: each
 * row's identity is normalized as intake normalizes it, pseudonymized under the same key, and
 * looked up in `suppressed` (`<type>:<pseudonym>`). Parquet keeps every type and setting (see
 * parquet.ts). A value that is not a valid identity of its type (a malformed e-mail address) is
 * not a subject Lethe could have been asked about, and stays.
 */
export function filterDataset(
  file: Uint8Array,
  format: 'parquet' | 'jsonl',
  columns: readonly IdentityColumn[],
  suppressed: ReadonlySet<string>,
  key: PseudonymKey,
): FilterResult {
  if (columns.length === 0) throw new ValidationError([{ path: 'columns', message: 'name at least one identity column' }]);
  const cache = new Map<string, boolean>();
  const isSuppressed = (identity: string, value: string): boolean => {
    const k = `${identity}\u0000${value}`;
    let hit = cache.get(k);
    if (hit === undefined) {
      try {
        const p = pseudonymize(normalizeIdentity({ type: identity, value }), key);
        hit = suppressed.has(`${p.type}:${p.pseudonym}`);
      } catch {
        hit = false;
      }
      cache.set(k, hit);
    }
    return hit;
  };
  if (format === 'jsonl') {
    let rows = 0;
    const { bytes, removed } = filterJsonLines(file, 'dataset', (row) => {
      rows += 1;
      return columns.some(({ identity, column }) => {
        const v = valueAt(row, column);
        return (Array.isArray(v) ? v : [v]).some((x) => {
          const text = scalarText(x);
          return text !== undefined && isSuppressed(identity, text);
        });
      });
    });
    return { bytes: bytes ?? file, removed, kept: rows - removed };
  }
  const parquet = readParquet(file);
  const { bytes, removed } = removeRows(parquet, (_, read) => {
    const rows = new Set<number>();
    for (const { identity, column } of columns) {
      const values = read(column.split('.'));
      values.rows.forEach((elements, i) => {
        for (const v of elements) {
          const text = textOf(values, v);
          if (text !== undefined && isSuppressed(identity, text)) rows.add(i);
        }
      });
    }
    return rows;
  });
  return { bytes: bytes ?? file, removed, kept: parquet.numRows - removed };
}
