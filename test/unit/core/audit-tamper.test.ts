import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { chainRecord, hashRecord, verifyChain, type AuditRecord } from '#core/audit';

/**
 * One request's audit chain, altered in 1,000 random ways an attacker with write access to the
 * store might try: a field edited (with and without its hash recomputed), a record dropped, two
 * swapped, a forged record inserted (well formed, linked to its predecessor), the tail cut, the
 * recorded head replaced. Every alteration must be detected, and the first problem reported must
 * be where it was made.
 */
const requestId = '22222222-2222-4222-8222-222222222222';

function chain(length: number): AuditRecord[] {
  const records: AuditRecord[] = [];
  for (let i = 0; i < length; i += 1) {
    records.push(
      chainRecord(requestId, records.at(-1), {
        eventId: `task.succeeded:s${String(i)}:delete`,
        event: i === 0 ? 'request.received' : 'task.succeeded',
        at: new Date(Date.UTC(2026, 10, 29, 0, 0, i)).toISOString(),
        actor: `lethe:worker:s${String(i)}`,
        system: `s${String(i)}`,
        action: 'delete',
        status: 'succeeded',
        affected: i,
      }),
    );
  }
  return records;
}

/** Recompute a record's hash after an edit, as a forger who knows the format would. */
const rehash = (r: AuditRecord): AuditRecord => {
  const { hash: _, ...body } = r;
  return { ...body, hash: hashRecord(body) };
};

const alteration = fc.oneof(
  fc.record({ kind: fc.constant('edit' as const), at: fc.nat(), value: fc.integer({ min: 1000, max: 9999 }) }),
  fc.record({ kind: fc.constant('edit-rehash' as const), at: fc.nat(), value: fc.integer({ min: 1000, max: 9999 }) }),
  fc.record({ kind: fc.constant('drop' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('swap' as const), at: fc.nat(), other: fc.nat() }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('head' as const), at: fc.nat() }),
);

describe('Function: verifyChain, under tampering', () => {
  it('detects 1,000 random alterations, each where it was made', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 40 }), alteration, (length, change) => {
        const records = chain(length);
        let head = { seq: length, hash: records.at(-1)!.hash };
        const i = change.at % length;
        let altered = [...records];
        let where: number[]; // the positions at which the first problem may rightly be reported
        switch (change.kind) {
          case 'edit':
            altered[i] = { ...records[i]!, affected: change.value };
            where = [i];
            break;
          case 'edit-rehash':
            altered[i] = rehash({ ...records[i]!, affected: change.value });
            where = [i + 1]; // the next record no longer links to it (or, for the last, the head does not)
            break;
          case 'drop':
            altered.splice(i, 1);
            where = [i];
            break;
          case 'swap': {
            const j = (i + 1 + (change.other % (length - 1))) % length;
            [altered[i], altered[j]] = [altered[j]!, altered[i]!];
            where = [Math.min(i, j)];
            break;
          }
          case 'insert': {
            // Well formed and linked to its predecessor: only its successor, or the head, can tell.
            const forged = chainRecord(requestId, i === 0 ? undefined : records[i - 1], { eventId: 'forged', event: 'task.succeeded', at: '2026-11-29T00:00:00.000Z', actor: 'forger', affected: 0 });
            altered.splice(i, 0, forged);
            where = [i + 1];
            break;
          }
          case 'cut':
            altered = records.slice(0, i === 0 ? 1 : i);
            where = [altered.length];
            break;
          case 'head':
            head = { seq: length, hash: records[i === length - 1 ? 0 : i]!.hash };
            where = [length];
            break;
        }
        const problems = verifyChain(requestId, altered, head);
        expect(problems.length, `${change.kind} at ${String(i)} of ${String(length)}`).toBeGreaterThan(0);
        expect(where, `${change.kind} at ${String(i)} of ${String(length)}: ${JSON.stringify(problems[0])}`).toContain(problems[0]!.index);
      }),
      { numRuns: 1000, seed: 20261129 },
    );
  });
});
