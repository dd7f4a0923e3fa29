import { describe, expect, it } from 'vitest';
import { addBusinessDays, addCalendarMonths, deadlinesFor, dueReminder, extendDeadline, isOverdue, reminders } from '#core/deadlines';

/**
 * Deadlines by law, against a table of dates worked out by hand (and by Python's datetime): month
 * ends, leap years, weekends. Business days are Monday to Friday, without holidays.
 */
const z = (s: string) => `${s}.000Z`;

describe('Function: deadlinesFor', () => {
  it.each([
    // regulation, type, received, due, extendable to, acknowledge by
    ['gdpr', 'erasure', '2026-03-15T10:00:00', '2026-04-15T10:00:00', '2026-06-15T10:00:00', undefined],
    ['gdpr', 'erasure', '2026-01-31T08:00:00', '2026-02-28T08:00:00', '2026-04-30T08:00:00', undefined],
    ['gdpr', 'restrict', '2028-01-31T08:00:00', '2028-02-29T08:00:00', '2028-04-30T08:00:00', undefined],
    ['gdpr', 'opt_out', '2026-12-31T23:59:00', '2027-01-31T23:59:00', '2027-03-31T23:59:00', undefined],
    ['gdpr', 'erasure', '2027-11-30T12:00:00', '2027-12-30T12:00:00', '2028-02-29T12:00:00', undefined],
    ['gdpr', 'erasure', '2026-08-31T00:00:00', '2026-09-30T00:00:00', '2026-11-30T00:00:00', undefined],
    ['ccpa', 'erasure', '2026-11-23T00:00:00', '2027-01-07T00:00:00', '2027-02-21T00:00:00', '2026-12-07T00:00:00'],
    ['ccpa', 'erasure', '2026-11-27T17:30:00', '2027-01-11T17:30:00', '2027-02-25T17:30:00', '2026-12-11T17:30:00'],
    ['ccpa', 'erasure', '2026-11-28T09:00:00', '2027-01-12T09:00:00', '2027-02-26T09:00:00', '2026-12-11T09:00:00'],
    ['ccpa', 'anonymize', '2028-02-10T12:00:00', '2028-03-26T12:00:00', '2028-05-10T12:00:00', '2028-02-24T12:00:00'],
    ['ccpa', 'opt_out', '2026-11-23T00:00:00', '2026-12-14T00:00:00', undefined, undefined],
    ['ccpa', 'opt_out', '2026-11-28T09:00:00', '2026-12-18T09:00:00', undefined, undefined],
    ['ccpa', 'opt_out', '2026-12-24T09:00:00', '2027-01-14T09:00:00', undefined, undefined],
    ['vcdpa', 'erasure', '2026-12-24T09:00:00', '2027-02-07T09:00:00', '2027-03-24T09:00:00', undefined],
    ['lgpd', 'erasure', '2028-02-10T12:00:00', '2028-02-25T12:00:00', undefined, undefined],
  ] as const)('%s %s received %s: due %s, extendable to %s, acknowledged by %s', (regulation, type, received, due, extendable, acknowledge) => {
    const deadlines = deadlinesFor(regulation, type, new Date(z(received)));
    expect(deadlines.dueAt).toBe(z(due));
    expect(deadlines.extendableTo).toBe(extendable && z(extendable));
    expect(deadlines.acknowledgeBy).toBe(acknowledge && z(acknowledge));
    expect(deadlines.law).toMatch(/^(GDPR|CCPA|Virginia|LGPD)/);
  });

  it('counts business days from the day after receipt, skipping weekends only', () => {
    expect(addBusinessDays(new Date('2026-11-27T17:30:00Z'), 1).toISOString()).toBe('2026-11-30T17:30:00.000Z'); // Friday → Monday
    expect(addBusinessDays(new Date('2026-11-29T10:00:00Z'), 1).toISOString()).toBe('2026-11-30T10:00:00.000Z'); // Sunday → Monday
    expect(addBusinessDays(new Date('2026-11-23T00:00:00Z'), 5).toISOString()).toBe('2026-11-30T00:00:00.000Z'); // a week
    expect(addBusinessDays(new Date('2026-11-23T00:00:00Z'), 0).toISOString()).toBe('2026-11-23T00:00:00.000Z');
    expect(addCalendarMonths(new Date('2028-02-29T08:00:00Z'), 12).toISOString()).toBe('2029-02-28T08:00:00.000Z');
  });
});

describe('Function: extendDeadline', () => {
  const gdpr = { regulation: 'gdpr', type: 'erasure', receivedAt: z('2026-01-31T08:00:00'), dueAt: z('2026-02-28T08:00:00') } as const;

  it('extends once, within the law’s allowance, counted from receipt, before the deadline passes', () => {
    expect(extendDeadline(gdpr, new Date(z('2026-02-20T00:00:00')))).toEqual({ ok: true, dueAt: z('2026-04-30T08:00:00'), law: 'GDPR Art. 12(3)' });
    const ccpa = { regulation: 'ccpa', type: 'erasure', receivedAt: z('2026-11-23T00:00:00'), dueAt: z('2027-01-07T00:00:00') } as const;
    expect(extendDeadline(ccpa, new Date(z('2027-01-07T00:00:00')))).toMatchObject({ ok: true, dueAt: z('2027-02-21T00:00:00') });
  });

  it('counts from when the subject asked, where that was before receipt here', () => {
    const asked = { ...gdpr, submittedAt: z('2026-01-15T08:00:00'), dueAt: z('2026-02-15T08:00:00') };
    expect(extendDeadline(asked, new Date(z('2026-02-10T00:00:00')))).toMatchObject({ ok: true, dueAt: z('2026-04-15T08:00:00') });
  });

  it('refuses a second extension, one after the deadline, and one the law does not allow, saying why', () => {
    expect(extendDeadline({ ...gdpr, extendedAt: z('2026-02-01T00:00:00') }, new Date(z('2026-02-20T00:00:00')))).toEqual({ ok: false, problem: 'the deadline was extended already, at 2026-02-01T00:00:00.000Z; the law allows it once' });
    expect(extendDeadline(gdpr, new Date(z('2026-02-28T08:00:01')))).toEqual({ ok: false, problem: 'the deadline passed at 2026-02-28T08:00:00.000Z: an extension must be given before it' });
    expect(extendDeadline({ regulation: 'lgpd', type: 'erasure', receivedAt: gdpr.receivedAt, dueAt: gdpr.dueAt }, new Date(gdpr.receivedAt))).toEqual({ ok: false, problem: 'LGPD Art. 19 II allows no extension' });
    expect(extendDeadline({ regulation: 'ccpa', type: 'opt_out', receivedAt: gdpr.receivedAt, dueAt: gdpr.dueAt }, new Date(gdpr.receivedAt))).toMatchObject({ ok: false, problem: expect.stringMatching(/§7026\(f\) allows no extension$/) as string });
  });
});

describe('Function: reminders and isOverdue', () => {
  it('reminds at half time, four fifths and the deadline', () => {
    expect(reminders(z('2026-11-23T00:00:00'), z('2027-01-02T00:00:00'))).toEqual([
      { kind: 'half_time', at: z('2026-12-13T00:00:00') },
      { kind: 'four_fifths', at: z('2026-12-25T00:00:00') },
      { kind: 'due', at: z('2027-01-02T00:00:00') },
    ]);
  });

  it('gives the latest reminder due and not yet sent', () => {
    const r = { receivedAt: z('2026-11-01T00:00:00'), dueAt: z('2026-11-11T00:00:00') };
    expect(dueReminder(r, new Date(z('2026-11-05T23:59:59')))).toBeUndefined();
    expect(dueReminder(r, new Date(z('2026-11-06T00:00:00')))).toBe('half_time');
    expect(dueReminder({ ...r, reminded: 'half_time' }, new Date(z('2026-11-07T00:00:00')))).toBeUndefined();
    expect(dueReminder(r, new Date(z('2026-11-09T00:00:00')))).toBe('four_fifths');
    expect(dueReminder({ ...r, reminded: 'four_fifths' }, new Date(z('2026-12-01T00:00:00')))).toBe('due');
    expect(dueReminder({ ...r, reminded: 'due' }, new Date(z('2026-12-01T00:00:00')))).toBeUndefined();
  });

  it('calls a request overdue once past its deadline and not final', () => {
    const request = { status: 'in_progress', dueAt: z('2026-12-01T00:00:00') } as const;
    expect(isOverdue(request, new Date(z('2026-12-01T00:00:00')))).toBe(false);
    expect(isOverdue(request, new Date(z('2026-12-01T00:00:01')))).toBe(true);
    expect(isOverdue({ ...request, status: 'completed' }, new Date(z('2026-12-09T00:00:00')))).toBe(false);
    expect(isOverdue({ ...request, status: 'failed' }, new Date(z('2026-12-09T00:00:00')))).toBe(false);
  });
});
