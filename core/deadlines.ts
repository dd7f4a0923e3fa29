import { isFinalRequestStatus, type Regulation, type RequestStatus, type RequestType } from './request.ts';

/**
 * Legal deadlines, by law and request type. Every clock starts at receipt. Calendar months end
 * on the same date of the later month, or on its last day when it has no such date (31 Jan + 1
 * month = 28/29 Feb; Regulation 1182/71); days are calendar days; business days are Monday to
 * Friday, counted from the day after receipt, without public holidays (which differ by state and
 * year: a law's own calendar is the operator's to apply). Times of day are kept, in UTC.
 */
export interface Period {
  readonly unit: 'months' | 'days' | 'business_days';
  readonly n: number;
}

export interface DeadlineRule {
  /** The provision, for people reading a status or an alert. */
  readonly law: string;
  readonly respond: Period;
  /** How much longer the deadline may be made, once, with a reason, before it passes. */
  readonly extension?: Period;
  /** By when receipt must be acknowledged. */
  readonly acknowledge?: Period;
}

const months = (n: number): Period => ({ unit: 'months', n });
const days = (n: number): Period => ({ unit: 'days', n });
const businessDays = (n: number): Period => ({ unit: 'business_days', n });

/** The rules: a regulation's default, and where a request type has its own. */
export const DEADLINE_RULES: Readonly<Record<Regulation, { readonly default: DeadlineRule } & Partial<Record<RequestType, DeadlineRule>>>> = {
  gdpr: { default: { law: 'GDPR Art. 12(3)', respond: months(1), extension: months(2) } },
  ccpa: {
    default: { law: 'CCPA, 11 CCR §7021', respond: days(45), extension: days(45), acknowledge: businessDays(10) },
    opt_out: { law: 'CCPA, 11 CCR §7026(f)', respond: businessDays(15) },
  },
  vcdpa: { default: { law: 'Virginia Code §59.1-577(B)(1)', respond: days(45), extension: days(45) } },
  lgpd: { default: { law: 'LGPD Art. 19 II', respond: days(15) } },
};

export function ruleFor(regulation: Regulation, type: RequestType): DeadlineRule {
  const rules = DEADLINE_RULES[regulation];
  return rules[type] ?? rules.default;
}

export function addPeriod(from: Date, period: Period): Date {
  switch (period.unit) {
    case 'months':
      return addCalendarMonths(from, period.n);
    case 'days':
      return new Date(from.getTime() + period.n * 86_400_000);
    case 'business_days':
      return addBusinessDays(from, period.n);
  }
}

export function addCalendarMonths(from: Date, n: number): Date {
  const y = from.getUTCFullYear();
  const m = from.getUTCMonth() + n;
  const lastDay = new Date(Date.UTC(y, m + 1, 0)).getUTCDate();
  return new Date(Date.UTC(y, m, Math.min(from.getUTCDate(), lastDay), from.getUTCHours(), from.getUTCMinutes(), from.getUTCSeconds(), from.getUTCMilliseconds()));
}

/** n business days after `from` (Monday to Friday, UTC): received on a Friday, 1 business day is the Monday. */
export function addBusinessDays(from: Date, n: number): Date {
  const at = new Date(from.getTime());
  for (let left = n; left > 0; ) {
    at.setUTCDate(at.getUTCDate() + 1);
    const day = at.getUTCDay();
    if (day !== 0 && day !== 6) left -= 1;
  }
  return at;
}

export interface Deadlines {
  readonly dueAt: string;
  readonly law: string;
  /** By when receipt must be acknowledged, where the law says. */
  readonly acknowledgeBy?: string;
  /** The latest the deadline may be extended to, where the law allows one extension. */
  readonly extendableTo?: string;
}

export function deadlinesFor(regulation: Regulation, type: RequestType, receivedAt: Date): Deadlines {
  const rule = ruleFor(regulation, type);
  return {
    dueAt: addPeriod(receivedAt, rule.respond).toISOString(),
    law: rule.law,
    ...(rule.acknowledge && { acknowledgeBy: addPeriod(receivedAt, rule.acknowledge).toISOString() }),
    ...(rule.extension && { extendableTo: extendedDue(receivedAt, rule.respond, rule.extension).toISOString() }),
  };
}

/** The extended deadline counts from receipt: GDPR's three months, CCPA's and Virginia's 90 days. */
function extendedDue(receivedAt: Date, respond: Period, extension: Period): Date {
  return extension.unit === respond.unit ? addPeriod(receivedAt, { unit: respond.unit, n: respond.n + extension.n }) : addPeriod(addPeriod(receivedAt, respond), extension);
}

export interface Extendable {
  readonly regulation: Regulation;
  readonly type: RequestType;
  readonly receivedAt: string;
  /** When the subject asked, where earlier than `receivedAt`: the clock's start. */
  readonly submittedAt?: string | undefined;
  readonly dueAt: string;
  readonly extendedAt?: string | undefined;
}

export type Extension = { readonly ok: true; readonly dueAt: string; readonly law: string } | { readonly ok: false; readonly problem: string };

/** May this request's deadline be extended now, and to when? Once, with the law's allowance, before the deadline passes. */
export function extendDeadline(request: Extendable, at: Date): Extension {
  const rule = ruleFor(request.regulation, request.type);
  if (!rule.extension) return { ok: false, problem: `${rule.law} allows no extension` };
  if (request.extendedAt) return { ok: false, problem: `the deadline was extended already, at ${request.extendedAt}; the law allows it once` };
  if (at.getTime() > Date.parse(request.dueAt)) return { ok: false, problem: `the deadline passed at ${request.dueAt}: an extension must be given before it` };
  return { ok: true, dueAt: extendedDue(new Date(request.submittedAt ?? request.receivedAt), rule.respond, rule.extension).toISOString(), law: rule.law };
}

export type ReminderKind = 'half_time' | 'four_fifths' | 'due';

/** When to remind: at 50% and 80% of the time from receipt to the deadline, and at the deadline. */
export function reminders(receivedAt: string, dueAt: string): { readonly kind: ReminderKind; readonly at: string }[] {
  const start = Date.parse(receivedAt);
  const span = Date.parse(dueAt) - start;
  return [
    { kind: 'half_time', at: new Date(start + span * 0.5).toISOString() },
    { kind: 'four_fifths', at: new Date(start + span * 0.8).toISOString() },
    { kind: 'due', at: dueAt },
  ];
}

const REMINDER_ORDER: readonly ReminderKind[] = ['half_time', 'four_fifths', 'due'];

/**
 * The reminder to send now, if any: the latest one whose time has come and that is later than
 * the one last sent (a sweep that comes late sends the latest only, not every one it missed).
 */
export function dueReminder(request: { readonly receivedAt: string; readonly dueAt: string; readonly reminded?: ReminderKind | undefined }, now: Date): ReminderKind | undefined {
  const sent = request.reminded ? REMINDER_ORDER.indexOf(request.reminded) : -1;
  const due = reminders(request.receivedAt, request.dueAt).filter((r) => Date.parse(r.at) <= now.getTime());
  const latest = due.at(-1)?.kind;
  return latest && REMINDER_ORDER.indexOf(latest) > sent ? latest : undefined;
}

/** Past its deadline and not final: what the status, the list and its `overdue` filter all mean by overdue. */
export function isOverdue(request: { readonly status: RequestStatus; readonly dueAt: string }, now: Date): boolean {
  return !isFinalRequestStatus(request.status) && now.getTime() > Date.parse(request.dueAt);
}
