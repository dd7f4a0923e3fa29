import type { NearMisses } from './near-miss.ts';
import { REGULATIONS, REQUEST_STATUSES, REQUEST_TYPES, type Regulation, type RequestRecord, type RequestStatus, type RequestType } from './request.ts';

/** A request as the API lists and reports it: what the list indexes project, and whether it is overdue. */
export type ListedRequest = Pick<RequestRecord, 'requestId' | 'type' | 'regulation' | 'status' | 'receivedAt' | 'dueAt'> & {
  readonly overdue: boolean;
  readonly completedAt: string | null;
  readonly acknowledgeBy?: string;
  readonly extendedAt?: string;
  /** Completed, and no system found anything of the subject's (exports read it; list indexes do not project it). */
  readonly nothingFound?: boolean;
};

/** A system's task as `GET /v1/requests/{id}` reports it. */
export interface ReportedTask {
  readonly system: string;
  readonly action: string;
  readonly status: string;
  readonly affected: number | null;
  readonly attempts: number;
  readonly updatedAt: string;
  readonly error?: { readonly name: string; readonly message: string };
  /** `needs_review`: what the verification's wider net found that the action left, by reason. */
  readonly nearMisses?: NearMisses;
}

/** One request as `GET /v1/requests/{id}` reports it. */
export type RequestDetail = ListedRequest & { readonly systems: readonly ReportedTask[] };


export interface Summary {
  readonly since: string;
  readonly until: string;
  readonly total: number;
  readonly byStatus: Record<RequestStatus, number>;
  readonly byRegulation: Record<Regulation, number>;
  readonly byType: Record<RequestType, number>;
  /** Open now and past the deadline. */
  readonly overdue: number;
  /** Final, but after the deadline. */
  readonly finishedLate: number;
  readonly extended: number;
  /** Completed with nothing of the subject's found in any system: no deletion happened. */
  readonly nothingFound: number;
  /** Seconds from receipt to a final status (cancelled left out), nearest-rank; null when none finished. */
  readonly completionSeconds: { readonly count: number; readonly median: number | null; readonly p95: number | null };
  /** Per UTC day of receipt: volume, and the median seconds to completion of those finished. */
  readonly daily: readonly { readonly date: string; readonly received: number; readonly finished: number; readonly medianCompletionSeconds: number | null }[];
}

const zeros = <K extends string>(keys: readonly K[]) => Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>;
const secondsToFinish = (r: ListedRequest) => (Date.parse(r.completedAt!) - Date.parse(r.receivedAt)) / 1000;
const round1 = (n: number | null) => (n === null ? null : Math.round(n * 10) / 10);

/** The nearest-rank percentile (`p` in 0..100) of numbers sorted ascending; null for none. */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** The summary of the requests received in a period, `nothingFound` of them completed with nothing found anywhere. */
export function summarize(requests: readonly ListedRequest[], since: string, until: string, nothingFound: number): Summary {
  const byStatus = zeros(REQUEST_STATUSES);
  const byRegulation = zeros(REGULATIONS);
  const byType = zeros(REQUEST_TYPES);
  const days = new Map<string, { received: number; seconds: number[] }>();
  const seconds: number[] = [];
  let overdue = 0;
  let finishedLate = 0;
  let extended = 0;
  for (const r of requests) {
    byStatus[r.status] += 1;
    byRegulation[r.regulation] += 1;
    byType[r.type] += 1;
    if (r.overdue) overdue += 1;
    if (r.extendedAt) extended += 1;
    const date = r.receivedAt.slice(0, 10);
    const day = days.get(date) ?? { received: 0, seconds: [] };
    day.received += 1;
    days.set(date, day);
    if (r.completedAt && r.status !== 'cancelled') {
      const took = secondsToFinish(r);
      seconds.push(took);
      day.seconds.push(took);
      if (r.completedAt > r.dueAt) finishedLate += 1;
    }
  }
  seconds.sort((a, b) => a - b);
  return {
    since,
    until,
    total: requests.length,
    byStatus,
    byRegulation,
    byType,
    overdue,
    finishedLate,
    extended,
    nothingFound,
    completionSeconds: { count: seconds.length, median: round1(percentile(seconds, 50)), p95: round1(percentile(seconds, 95)) },
    daily: [...days.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([date, d]) => ({ date, received: d.received, finished: d.seconds.length, medianCompletionSeconds: round1(percentile(d.seconds.sort((a, b) => a - b), 50)) })),
  };
}

/** The columns of an export, in order. */
export const EXPORT_COLUMNS = ['requestId', 'type', 'regulation', 'status', 'receivedAt', 'dueAt', 'extendedAt', 'completedAt', 'overdue', 'nothingFound'] as const;

/** An export as CSV (RFC 4180: CRLF line ends, fields quoted where they need it). */
export function toCsv(requests: readonly ListedRequest[]): string {
  const field = (v: string | boolean | null | undefined) => {
    const text = v === null || v === undefined ? '' : String(v);
    return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
  };
  return [EXPORT_COLUMNS.join(','), ...requests.map((r) => EXPORT_COLUMNS.map((c) => field(r[c])).join(','))].join('\r\n') + '\r\n';
}
