import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { NearMisses } from './near-miss.ts';
import { ValidationError, type FieldIssue } from './errors.ts';
import { SCOPES, type Scope } from './suppression.ts';

export const REQUEST_TYPES = ['erasure', 'anonymize', 'restrict', 'opt_out', 'withdraw'] as const;
export type RequestType = (typeof REQUEST_TYPES)[number];

/** GDPR, CCPA as amended by the CPRA, Virginia's VCDPA, Brazil's LGPD: deadlines in `deadlines.ts`. */
export const REGULATIONS = ['gdpr', 'ccpa', 'vcdpa', 'lgpd'] as const;
export type Regulation = (typeof REGULATIONS)[number];

export const ACTIONS = ['delete', 'anonymize', 'restrict', 'suppress', 'lift'] as const;
export type Action = (typeof ACTIONS)[number];

/** What a task does in a system: an action, or reading the subject's linked identities there. */
export const TASK_KINDS = [...ACTIONS, 'resolve'] as const;
export type TaskKind = (typeof TASK_KINDS)[number];

export const REQUEST_STATUSES = [
  'received',
  'in_progress',
  'completed',
  'partially_failed',
  'needs_review',
  'failed',
  'cancelled',
] as const;
export type RequestStatus = (typeof REQUEST_STATUSES)[number];
/** `needs_review`: every task succeeded but for near-misses, which a person must look at: never `completed`. */
export const FINAL_REQUEST_STATUSES: readonly RequestStatus[] = ['completed', 'partially_failed', 'needs_review', 'failed', 'cancelled'];
/** What an operator's retry reopens. */
export const RETRYABLE_REQUEST_STATUSES: readonly RequestStatus[] = ['failed', 'partially_failed', 'needs_review'];

export const TASK_STATUSES = ['pending', 'dispatched', 'running', 'succeeded', 'failed', 'needs_review', 'waiting_on_vendor', 'cancelled'] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];
/**
 * `cancelled`: the request was cancelled before the task ran. `needs_review`: the action ran, and
 * its verification's wider net found the subject's data that the action left (near-misses).
 */
export const FINAL_TASK_STATUSES: readonly TaskStatus[] = ['succeeded', 'failed', 'needs_review', 'cancelled'];
/** The tasks an operator's retry runs again. */
export const RETRYABLE_TASK_STATUSES: readonly TaskStatus[] = ['failed', 'needs_review'];

const REQUEST_TRANSITIONS: Record<RequestStatus, readonly RequestStatus[]> = {
  received: ['in_progress', 'failed', 'cancelled'],
  in_progress: ['completed', 'partially_failed', 'needs_review', 'failed', 'cancelled'],
  completed: [],
  partially_failed: [],
  needs_review: [],
  failed: [],
  cancelled: [],
};

const TASK_TRANSITIONS: Record<TaskStatus, readonly TaskStatus[]> = {
  pending: ['dispatched', 'running', 'failed', 'cancelled'],
  dispatched: ['running', 'failed', 'cancelled'],
  running: ['succeeded', 'failed', 'needs_review', 'waiting_on_vendor'],
  waiting_on_vendor: ['succeeded', 'failed', 'needs_review'],
  succeeded: [],
  failed: [],
  needs_review: [],
  cancelled: [],
};

/** A request's saga execution: named by the request id, a retry's `<request id>-r<round>`. */
export const executionName = (requestId: string, round?: number): string => (round ? `${requestId}-r${String(round)}` : requestId);

/** The ARN of a state machine's execution of that name. */
export const executionArnOf = (stateMachineArn: string, name: string): string => `${stateMachineArn.replace(':stateMachine:', ':execution:')}:${name}`;

/**
 * An audit event id within a run of a request: the first run's ids as they are, a retried run's
 * (`round` 1, 2, …) suffixed, so that a task that fails again is audited again.
 */
export const inRound = (eventId: string, round: number | undefined): string => (round ? `${eventId}#r${String(round)}` : eventId);

export const isFinalRequestStatus = (s: RequestStatus): boolean => FINAL_REQUEST_STATUSES.includes(s);
export const isFinalTaskStatus = (s: TaskStatus): boolean => FINAL_TASK_STATUSES.includes(s);

/**
 * The statuses a record may move to `to` from: the condition of every status write, so that
 * statuses only move forward and final ones never change.
 */
export function requestStatusesBefore(to: RequestStatus): RequestStatus[] {
  return REQUEST_STATUSES.filter((from) => REQUEST_TRANSITIONS[from].includes(to));
}

export function taskStatusesBefore(to: TaskStatus): TaskStatus[] {
  return TASK_STATUSES.filter((from) => TASK_TRANSITIONS[from].includes(to));
}

/** The action each request type maps to unless the data map says otherwise for a system. */
export const DEFAULT_ACTION: Record<RequestType, Action> = {
  erasure: 'delete',
  anonymize: 'anonymize',
  restrict: 'restrict',
  opt_out: 'suppress',
  withdraw: 'lift',
};

export type Outcome = 'completed' | 'partially_failed' | 'needs_review' | 'failed';

/**
 * Whether a completed request found nothing anywhere: every task but the resolvers succeeded with
 * nothing affected. Said apart from a deletion, so that "gone" is never claimed of data that was
 * never there, and so that a subject nobody holds stands out (a misspelt address, a stale id).
 */
export const foundNothing = (tasks: readonly Pick<TaskRecord, 'action' | 'status' | 'affected'>[]): boolean =>
  tasks.filter((t) => t.action !== 'resolve').every((t) => t.status === 'succeeded' && (t.affected ?? 0) === 0);

/**
 * Outcome of a whole request from the final statuses of its tasks: `completed` only when every
 * task succeeded; `needs_review` when the rest only await a person's look at near-misses; else
 * failed, wholly or partly.
 */
export function outcomeOf(taskStatuses: readonly TaskStatus[]): Outcome {
  const unfinished = taskStatuses.filter((s) => s !== 'succeeded');
  if (unfinished.length === 0) return 'completed';
  if (unfinished.every((s) => s === 'needs_review')) return 'needs_review';
  return unfinished.length === taskStatuses.length ? 'failed' : 'partially_failed';
}

// ---------------------------------------------------------------------------------------------
// Submission: what a product backend sends (HTTP body or EventBridge detail)

const identityTypeSchema = z
  .string()
  .regex(/^[a-z][a-z0-9_]{1,63}$/, 'must be a lower-case identity type such as email, phone or user_id');

/** One identity as a caller gives it. */
export const identitySchema = z.strictObject({ type: identityTypeSchema, value: z.string().min(1).max(512).refine((v) => !v.includes('\u0000'), 'must not contain a NUL character') });

/** A subject's identities, as a request (or a lookup) gives them. */
export const identitiesSchema = z
  .array(identitySchema)
  .min(1, 'at least one identity is required')
  .max(20, 'at most 20 identities per request');

/** How far ahead of this clock a `submittedAt` may be and still be taken (another machine's clock). */
const MAX_CLOCK_SKEW_MS = 5 * 60_000;

export const submissionSchema = z
  .strictObject({
    type: z.enum(REQUEST_TYPES),
    regulation: z.enum(REGULATIONS),
    identities: identitiesSchema,
    requestId: z.uuid().optional(),
    source: z.string().min(1).max(128).optional(),
    sourceEventId: z.string().min(1).max(256).optional(),
    /**
     * When the subject made the request, where that was before it reached Lethe (a controller, a
     * support desk, a form): the legal clock starts then. Not in the future.
     */
    submittedAt: z.iso
      .datetime({ offset: true })
      .refine((t) => Date.parse(t) <= Date.now() + MAX_CLOCK_SKEW_MS, 'must not be in the future')
      .optional(),
    /** What an opt-out opts out of, or a withdraw lifts (see suppression.ts); other types set their own. */
    scopes: z
      .array(z.enum(SCOPES))
      .min(1)
      .max(SCOPES.length)
      .refine((s) => new Set(s).size === s.length, 'must not repeat a scope')
      .optional(),
  })
  .refine((s) => (s.source === undefined) === (s.sourceEventId === undefined), {
    message: 'source and sourceEventId go together',
    path: ['sourceEventId'],
  })
  .refine((s) => s.scopes === undefined || s.type === 'opt_out' || s.type === 'withdraw', {
    message: 'only an opt_out or a withdraw names scopes',
    path: ['scopes'],
  });

export type Submission = z.infer<typeof submissionSchema>;

/** Parse an untrusted submission, naming every bad field at once. */
export function parseSubmission(input: unknown): Submission {
  const parsed = submissionSchema.safeParse(input);
  if (!parsed.success) throw new ValidationError(zodIssues(parsed.error));
  return parsed.data;
}

export function zodIssues(error: z.ZodError): FieldIssue[] {
  return error.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message }));
}

/**
 * The request id: the caller's, or derived from `source` + `sourceEventId` so that a replayed
 * event maps to the same request, or random. Derived ids are RFC 9562 version 8 UUIDs over SHA-256.
 */
export function requestIdFor(submission: Pick<Submission, 'requestId' | 'source' | 'sourceEventId'>): string {
  if (submission.requestId) return submission.requestId.toLowerCase();
  if (submission.source && submission.sourceEventId) {
    return uuidV8(createHash('sha256').update(`${submission.source}\n${submission.sourceEventId}`).digest());
  }
  return crypto.randomUUID();
}

function uuidV8(bytes: Buffer): string {
  const b = Buffer.from(bytes.subarray(0, 16));
  b[6] = (b[6]! & 0x0f) | 0x80;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// ---------------------------------------------------------------------------------------------
// Stored records. Raw identifiers appear only sealed (see envelope.ts).

export interface RequestRecord {
  readonly requestId: string;
  readonly type: RequestType;
  readonly regulation: Regulation;
  readonly status: RequestStatus;
  readonly receivedAt: string;
  readonly dueAt: string;
  /** By when receipt must be acknowledged, where the law says (CCPA: 10 business days). */
  readonly acknowledgeBy?: string | undefined;
  /** When the deadline was extended, and why (once, within the law's allowance). */
  readonly extendedAt?: string | undefined;
  readonly extensionReason?: string | undefined;
  /** The last deadline reminder sent (`half_time`, `four_fifths`, `due`). */
  readonly reminded?: 'half_time' | 'four_fifths' | 'due' | undefined;
  readonly completedAt?: string | undefined;
  /** Completed, and no system found anything of the subject's: a request about no one Lethe knows, not a deletion. */
  readonly nothingFound?: boolean | undefined;
  /** How many times an operator retried the request's failed tasks (absent: never). */
  readonly round?: number | undefined;
  readonly source?: string | undefined;
  readonly sourceEventId?: string | undefined;
  /** When the subject made the request, where that was before `receivedAt`: the legal clock's start. */
  readonly submittedAt?: string | undefined;
  /** The scopes an opt-out or a withdraw named (absent: its type's defaults). */
  readonly scopes?: readonly Scope[] | undefined;
  readonly pseudonyms: readonly { type: string; pseudonym: string }[];
  readonly keyVersion: string;
  /** SHA-256 over the normalized submission: a replay with another body is a conflict. */
  readonly bodyHash: string;
  readonly sealedIdentities: string;
  readonly wrappedDataKey: string;
}

export interface TaskRecord {
  readonly requestId: string;
  readonly system: string;
  readonly action: TaskKind;
  readonly connector: string;
  readonly status: TaskStatus;
  readonly attempts: number;
  /** The request's round this task last ran in (absent: the first). */
  readonly round?: number | undefined;
  /** The resolvers whose linked identities reach this system: it does not act unless they all succeeded. */
  readonly needs?: readonly string[] | undefined;
  readonly affected?: number | undefined;
  readonly remaining?: number | undefined;
  /** What the verification's wider net found that the action left, by reason (`needs_review`). */
  readonly nearMisses?: NearMisses | undefined;
  readonly errorName?: string | undefined;
  readonly errorMessage?: string | undefined;
  readonly updatedAt: string;
  /** While `waiting_on_vendor`: the saga's task token, and the vendor jobs (sealed) it waits on. */
  readonly taskToken?: string | undefined;
  readonly sealedJobs?: string | undefined;
  /** The vendors and their job ids, in the clear (not personal data), for status and audit. */
  readonly jobs?: string | undefined;
  readonly deadlineAt?: string | undefined;
  readonly nextPollAt?: string | undefined;
  readonly nextHeartbeatAt?: string | undefined;
  /** A webhook service's signed report on the job it accepted: the first one stands. */
  readonly callback?: JobReport | undefined;
}

/** What a service reported, by signed callback, on a job of a waiting task. Codes and counts only. */
export interface JobReport {
  readonly job: string;
  readonly status: 'done' | 'failed';
  readonly affected?: number | undefined;
  readonly error?: string | undefined;
  readonly at: string;
}

/** The requests table's sparse index of tasks waiting on a vendor, keyed `waiting` and `nextCheckAt`. */
export const WAITING_INDEX = 'Waiting';

/** The requests table's index of requests by month of receipt, keyed `month` (`REQ#yyyy-mm`) and `receivedAt`. */
export const BY_MONTH_INDEX = 'ByMonth';
/** The requests table's sparse index of requests not yet final, keyed `open` and `dueAt`: the overdue are its oldest. */
export const OPEN_INDEX = 'Open';
/**
 * The requests table's sparse index of requests completed with nothing found anywhere, keyed
 * `foundNothingIn` (the request's `month`) and `receivedAt`: the summary counts them without
 * reading the requests, since the list indexes do not project `nothingFound`.
 */
export const NOTHING_FOUND_INDEX = 'NothingFound';
/** What both list indexes project: enough to list a request without reading it (and, for the Open index, to remind of it). */
export const LISTED_ATTRIBUTES = ['requestId', 'type', 'regulation', 'status', 'dueAt', 'completedAt', 'acknowledgeBy', 'extendedAt', 'receivedAt', 'reminded'] as const;

/** The requests table's sparse index of final requests whose data key is to be destroyed, keyed `shred` and `shredAt`. */
export const SHRED_INDEX = 'Shred';

/** How long after a request is final its raw identifiers stay decryptable (for verification), by default: 30 days. */
export const DEFAULT_SHRED_AFTER_SECONDS = 30 * 24 * 3600;
