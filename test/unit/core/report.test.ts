import { describe, expect, it } from 'vitest';
import { humanDuration } from '#core/duration';
import { percentile, summarize, toCsv, type ListedRequest } from '#core/report';

const at = (day: number, hour = 0) => new Date(Date.UTC(2026, 10, day, hour)).toISOString();
const request = (id: number, fields: Partial<ListedRequest>): ListedRequest => ({
  requestId: `00000000-0000-4000-8000-${String(id).padStart(12, '0')}`,
  type: 'erasure',
  regulation: 'gdpr',
  status: 'completed',
  receivedAt: at(1),
  dueAt: at(30),
  completedAt: null,
  overdue: false,
  ...fields,
});

describe('Reports', () => {
  it('takes nearest-rank percentiles', () => {
    const xs = Array.from({ length: 20 }, (_, i) => i + 1);
    expect(percentile(xs, 50)).toBe(10);
    expect(percentile(xs, 95)).toBe(19);
    expect(percentile(xs, 100)).toBe(20);
    expect(percentile([7], 95)).toBe(7);
    expect(percentile([], 50)).toBeNull();
  });

  it('counts by status, regulation and type, overdue and late, and times completion without cancelled requests', () => {
    const requests = [
      request(1, { completedAt: at(1, 1) }), // 1 h
      request(2, { completedAt: at(1, 3) }), // 3 h
      request(3, { regulation: 'ccpa', receivedAt: at(2), completedAt: at(2, 2) }), // 2 h
      request(4, { status: 'partially_failed', receivedAt: at(2), dueAt: at(3), completedAt: at(5) }), // 72 h, late
      request(5, { status: 'cancelled', type: 'opt_out', receivedAt: at(2), completedAt: at(2, 20) }),
      request(6, { status: 'in_progress', regulation: 'lgpd', receivedAt: at(3), dueAt: at(4), overdue: true, extendedAt: at(3, 5) }),
    ];
    const s = summarize(requests, at(1), at(4), 1);
    expect(s.total).toBe(6);
    expect(s.byStatus).toEqual({ received: 0, in_progress: 1, completed: 3, partially_failed: 1, needs_review: 0, failed: 0, cancelled: 1 });
    expect(s.byRegulation).toEqual({ gdpr: 4, ccpa: 1, vcdpa: 0, lgpd: 1 });
    expect(s.byType).toMatchObject({ erasure: 5, opt_out: 1 });
    expect(s).toMatchObject({ overdue: 1, finishedLate: 1, extended: 1, nothingFound: 1 });
    expect(s.completionSeconds).toEqual({ count: 4, median: 2 * 3600, p95: 72 * 3600 });
    expect(s.daily).toEqual([
      { date: '2026-11-01', received: 2, finished: 2, medianCompletionSeconds: 3600 },
      { date: '2026-11-02', received: 3, finished: 2, medianCompletionSeconds: 2 * 3600 },
      { date: '2026-11-03', received: 1, finished: 0, medianCompletionSeconds: null },
    ]);
    expect(summarize([], at(1), at(2), 0).completionSeconds).toEqual({ count: 0, median: null, p95: null });
  });

  it('exports CSV with a header row, CRLF line ends, empty cells for nothing, and quoting where needed', () => {
    const csv = toCsv([request(1, { completedAt: at(1, 1), nothingFound: true }), request(2, { status: 'in_progress', requestId: 'a,"b"' })]);
    expect(csv.split('\r\n')).toEqual([
      'requestId,type,regulation,status,receivedAt,dueAt,extendedAt,completedAt,overdue,nothingFound',
      `00000000-0000-4000-8000-000000000001,erasure,gdpr,completed,${at(1)},${at(30)},,${at(1, 1)},false,true`,
      `"a,""b""",erasure,gdpr,in_progress,${at(1)},${at(30)},,,false,`,
      '',
    ]);
  });

  it('says durations the way people read them', () => {
    expect([12.34, 90, 5400, 3 * 86_400].map(humanDuration)).toEqual(['12.3 s', '1.5 min', '1.5 h', '3 d']);
  });
});
