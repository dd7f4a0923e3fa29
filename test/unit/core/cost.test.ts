import { describe, expect, it } from 'vitest';
import { costOf, PRICES, usagePerRequest, USAGE_KEYS, type Usage } from '#core/cost';

const zero = Object.fromEntries(USAGE_KEYS.map((k) => [k, 0])) as unknown as Usage;

describe('Cost model', () => {
  it('adds a part per system to the fixed part', () => {
    const model = { base: { ...zero, stateTransitions: 5, sqsRequests: 2 }, perSystem: { ...zero, stateTransitions: 1, sqsRequests: 2 } };
    expect(usagePerRequest(5, model)).toMatchObject({ stateTransitions: 10, sqsRequests: 12, lambdaRequests: 0 });
  });

  it('prices each line at its list price per unit, largest first, and sums them', () => {
    const usage = { ...zero, stateTransitions: 10, sqsRequests: 12, dynamoWriteUnits: 40 };
    const { lines, total } = costOf(usage, 100_000);
    // 1,000,000 transitions at $0.025 per 1,000; 1.2 M SQS requests at $0.40 per million; 4 M WRU at $0.625 per million.
    expect(lines.slice(0, 3).map((l) => [l.item, l.quantity, +l.cost.toFixed(4)])).toEqual([
      ['stateTransitions', 1_000_000, 25],
      ['dynamoWriteUnits', 4_000_000, 2.5],
      ['sqsRequests', 1_200_000, 0.48],
    ]);
    expect(total).toBeCloseTo(27.98, 6);
    expect(lines.every((l, i) => i === 0 || l.cost <= lines[i - 1]!.cost)).toBe(true);
  });

  it('names a price for every kind of operation counted', () => {
    for (const k of USAGE_KEYS) expect(PRICES[k].price).toBeGreaterThan(0);
  });
});
