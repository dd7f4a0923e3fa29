import { afterEach, describe, expect, it, vi } from 'vitest';
import { costOf, usagePerRequest } from '#core/cost';
import { costCommand } from '../../../cli/cost.ts';

afterEach(() => vi.restoreAllMocks());

describe('lethe cost', () => {
  it('prints the model for 5 systems and 100,000 requests, each line and the cost per 1,000', () => {
    const out: string[] = [];
    vi.spyOn(console, 'log').mockImplementation((line: string) => void out.push(line));

    expect(costCommand(['--systems', '5', '--requests', '100000'])).toBe(0);

    const text = out.join('\n');
    expect(text).toMatch(/^Lethe in AWS: 100,000 requests across 5 systems/);
    expect(text).toContain('Step Functions Standard state transitions');
    const { total } = costOf(usagePerRequest(5), 100_000);
    expect(text).toContain(`Per 1,000 requests`);
    expect(text).toMatch(new RegExp(`Total\\s+\\$${total.toFixed(total >= 1 ? 2 : 4).replace('.', '\\.')}`));
  });

  it('answers JSON with --json, and refuses what is not a count', () => {
    const out: string[] = [];
    vi.spyOn(console, 'log').mockImplementation((line: string) => void out.push(line));
    vi.spyOn(console, 'error').mockImplementation(() => undefined);

    expect(costCommand(['--systems', '3', '--requests', '1000', '--json'])).toBe(0);
    expect(JSON.parse(out.join(''))).toMatchObject({ systems: 3, requests: 1000, total: costOf(usagePerRequest(3), 1000).total });
    expect(costCommand(['--systems', 'many'])).toBe(2);
    expect(costCommand(['--requests', '-1'])).toBe(2);
  });
});
