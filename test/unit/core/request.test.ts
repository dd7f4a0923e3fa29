import { describe, expect, it } from 'vitest';
import { ValidationError } from '#core/errors';
import {
  FINAL_REQUEST_STATUSES,
  FINAL_TASK_STATUSES,
  outcomeOf,
  parseSubmission,
  REQUEST_STATUSES,
  requestIdFor,
  requestStatusesBefore,
  TASK_STATUSES,
  taskStatusesBefore,
} from '#core/request';

describe('Function: requestStatusesBefore', () => {
  it('moves requests forward only', () => {
    expect(requestStatusesBefore('in_progress')).toEqual(['received']);
    expect(requestStatusesBefore('completed')).toEqual(['in_progress']);
    expect(requestStatusesBefore('failed')).toEqual(['received', 'in_progress']);
    expect(requestStatusesBefore('received')).toEqual([]);
  });

  it('never moves a request out of a final status', () => {
    const targets = [...REQUEST_STATUSES].flatMap((to) => requestStatusesBefore(to));
    for (const final of FINAL_REQUEST_STATUSES) expect(targets).not.toContain(final);
  });
});

describe('Function: taskStatusesBefore', () => {
  it('moves tasks forward only and locks their final statuses', () => {
    expect(taskStatusesBefore('running')).toEqual(['pending', 'dispatched']);
    expect(taskStatusesBefore('succeeded')).toEqual(['running', 'waiting_on_vendor']);
    const targets = [...TASK_STATUSES].flatMap((to) => taskStatusesBefore(to));
    for (const final of FINAL_TASK_STATUSES) expect(targets).not.toContain(final);
  });
});

describe('Function: outcomeOf', () => {
  it('is completed when every task succeeded, also when there were none', () => {
    expect(outcomeOf(['succeeded', 'succeeded'])).toBe('completed');
    expect(outcomeOf([])).toBe('completed');
  });

  it('is partially_failed on a mix and failed when nothing succeeded', () => {
    expect(outcomeOf(['succeeded', 'failed'])).toBe('partially_failed');
    expect(outcomeOf(['failed', 'failed'])).toBe('failed');
  });

  it('is needs_review, never completed, when the rest only wait for a look at near-misses; a failure outweighs it', () => {
    expect(outcomeOf(['succeeded', 'needs_review'])).toBe('needs_review');
    expect(outcomeOf(['needs_review'])).toBe('needs_review');
    expect(outcomeOf(['succeeded', 'needs_review', 'failed'])).toBe('partially_failed');
    expect(outcomeOf(['needs_review', 'failed'])).toBe('failed');
  });
});

describe('Function: parseSubmission', () => {
  const valid = { type: 'erasure', regulation: 'gdpr', identities: [{ type: 'email', value: 'ada@example.com' }] };

  it('accepts a valid submission', () => {
    expect(parseSubmission(valid)).toEqual(valid);
  });

  it('names every bad field at once', () => {
    const error = captureValidation(() =>
      parseSubmission({ type: 'forget', regulation: 'gdpr', identities: [], extra: 1 }),
    );
    const paths = error.issues.map((i) => i.path);
    expect(paths).toContain('type');
    expect(paths).toContain('identities');
    expect(paths).toContain('');
    expect(error.message).toMatch(/type:/);
  });

  it('refuses an identity holding a NUL character, which no store can hold', () => {
    const error = captureValidation(() => parseSubmission({ ...valid, identities: [{ type: 'user_id', value: 'u1\u0000' }] }));
    expect(error.issues).toEqual([{ path: 'identities.0.value', message: 'must not contain a NUL character' }]);
  });

  it('wants source and sourceEventId together', () => {
    const error = captureValidation(() => parseSubmission({ ...valid, source: 'shop' }));
    expect(error.issues.map((i) => i.path)).toEqual(['sourceEventId']);
  });
});

describe('Function: requestIdFor', () => {
  it('keeps a caller-supplied id, lower-cased', () => {
    expect(requestIdFor({ requestId: 'AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE' })).toBe('aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee');
  });

  it('derives the same version 8 UUID from the same source event, and another from another', () => {
    const a = requestIdFor({ source: 'shop', sourceEventId: 'evt-1' });
    expect(a).toBe(requestIdFor({ source: 'shop', sourceEventId: 'evt-1' }));
    expect(a).not.toBe(requestIdFor({ source: 'shop', sourceEventId: 'evt-2' }));
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});

function captureValidation(fn: () => unknown): ValidationError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ValidationError) return error;
    throw error;
  }
  throw new Error('expected a ValidationError');
}
