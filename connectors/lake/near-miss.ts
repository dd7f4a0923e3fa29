import { formsOf, type Identity } from '#core/identity';
import { addNearMisses, nearMissReason, wideKey, type NearMisses } from '#core/near-miss';
import { filterJsonLines, scalarText, valueAt } from './jsonl.ts';
import { readParquet, removeRows, textOf } from './parquet.ts';
import type { LakeTable } from './settings.ts';

/** One object's near-misses, by subject. */
export type WideCheck = (object: Uint8Array) => Map<string, NearMisses>;

/**
 * The lake's wider net: rows whose identity column holds one of a subject's values in another
 * case, Unicode form or padding (compared trimmed, NFKC and lower-cased), which the rewrite's exact
 * match leaves. Read-only: nothing is rewritten. Undefined when the table holds none of the
 * subjects' identity types.
 */
export function wideCheckFor(table: LakeTable, subjects: ReadonlyMap<string, readonly Identity[]>): WideCheck | undefined {
  // column → wide key → subject → the values the rewrite matches exactly
  const byColumn = new Map<string, Map<string, Map<string, Set<string>>>>();
  for (const { identity, column } of table.columns) {
    const keys = byColumn.get(column) ?? new Map<string, Map<string, Set<string>>>();
    byColumn.set(column, keys);
    for (const [subject, identities] of subjects) {
      for (const form of identities.filter((x) => x.type === identity).flatMap(formsOf)) {
        const owners = keys.get(wideKey(form)) ?? new Map<string, Set<string>>();
        owners.set(subject, (owners.get(subject) ?? new Set<string>()).add(form));
        keys.set(wideKey(form), owners);
      }
    }
  }
  for (const [column, keys] of byColumn) if (keys.size === 0) byColumn.delete(column);
  if (byColumn.size === 0) return undefined;
  const check = (column: string, text: string | undefined, found: Map<string, Partial<Record<keyof NearMisses, number>>>) => {
    if (text === undefined) return;
    for (const [subject, exact] of byColumn.get(column)?.get(wideKey(text)) ?? []) {
      if (exact.has(text)) continue;
      const counts = found.get(subject) ?? {};
      const reason = nearMissReason(text);
      counts[reason] = (counts[reason] ?? 0) + 1;
      found.set(subject, counts);
    }
  };
  if (table.format === 'jsonl') {
    return (object) => {
      const found = new Map<string, Partial<Record<keyof NearMisses, number>>>();
      filterJsonLines(object, `lake ${table.bucket}/${table.prefix}`, (row) => {
        for (const column of byColumn.keys()) {
          const value = valueAt(row, column);
          for (const v of Array.isArray(value) ? value : [value]) check(column, scalarText(v), found);
        }
        return false;
      });
      return new Map([...found].map(([s, n]) => [s, addNearMisses(n)]));
    };
  }
  return (object) => {
    const found = new Map<string, Partial<Record<keyof NearMisses, number>>>();
    removeRows(readParquet(object), (_, read) => {
      for (const column of byColumn.keys()) {
        const values = read(column.split('.'));
        for (const elements of values.rows) for (const v of elements) check(column, textOf(values, v), found);
      }
      return new Set();
    });
    return new Map([...found].map(([s, n]) => [s, addNearMisses(n)]));
  };
}
