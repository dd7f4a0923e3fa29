import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { chainRecord, GENESIS_HASH, verifyChain, type AuditRecord } from '#core/audit';

const requestId = '11111111-1111-4111-8111-111111111111';

function chain(length: number): AuditRecord[] {
  const records: AuditRecord[] = [];
  for (let i = 0; i < length; i += 1) {
    records.push(
      chainRecord(requestId, records.at(-1), {
        eventId: `e${String(i)}`,
        event: i === 0 ? 'request.received' : 'task.succeeded',
        at: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
        actor: 'test',
        affected: i,
      }),
    );
  }
  return records;
}

describe('Function: chainRecord', () => {
  it('links each record to the hash of the one before, from the genesis hash', () => {
    const records = chain(3);
    expect(records[0]!.prevHash).toBe(GENESIS_HASH);
    expect(records[1]!.prevHash).toBe(records[0]!.hash);
    expect(records.map((r) => r.seq)).toEqual([1, 2, 3]);
  });
});

describe('Function: verifyChain', () => {
  it('accepts an intact chain', () => {
    expect(verifyChain(requestId, chain(5))).toEqual([]);
  });

  it('reports a missing chain', () => {
    expect(verifyChain(requestId, [])).toEqual([{ index: 0, expectedSeq: 1, at: 1, problem: 'no audit records found' }]);
  });

  it('detects an edited field', () => {
    const records = chain(4);
    records[2] = { ...records[2]!, affected: 99 };
    expect(verifyChain(requestId, records)).toEqual([
      { index: 2, expectedSeq: 3, at: 3, problem: 'content does not match its hash: the record was modified' },
    ]);
  });

  it('detects a dropped tail only against the recorded head', () => {
    const records = chain(4);
    const head = { seq: 4, hash: records[3]!.hash };
    expect(verifyChain(requestId, records.slice(0, 3))).toEqual([]);
    expect(verifyChain(requestId, records.slice(0, 3), head)).toHaveLength(1);
    expect(verifyChain(requestId, records, head)).toEqual([]);
  });

  it('detects every dropped, swapped or inserted record', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 12 }), fc.nat(), fc.nat(), (length, a, b) => {
        const records = chain(length);
        const head = { seq: length, hash: records.at(-1)!.hash };
        const i = a % length;
        const dropped = records.filter((_, k) => k !== i);
        expect(verifyChain(requestId, dropped, head).length).toBeGreaterThan(0);

        const j = (i + 1 + (b % (length - 1))) % length;
        const swapped = [...records];
        [swapped[i], swapped[j]] = [swapped[j]!, swapped[i]!];
        expect(verifyChain(requestId, swapped, head).length).toBeGreaterThan(0);
        const inserted = [...records.slice(0, i), chain(1)[0]!, ...records.slice(i)];
        expect(verifyChain(requestId, inserted, head).length).toBeGreaterThan(0);
      }),
    );
  });
});
