import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';
import type { PseudonymousIdentity } from './identity.ts';
import type { NearMisses } from './near-miss.ts';
import type { RequestStatus, TaskKind, TaskStatus } from './request.ts';

/**
 * The audit log: per request, an append-only chain of PII-free records. Each record names the
 * hash of the one before it; a record's hash is SHA-256 over its canonical JSON (RFC 8785)
 * without the `hash` field. Editing, dropping, inserting or reordering any record breaks the chain.
 */
export const AUDIT_FORMAT_VERSION = 1;
export const GENESIS_HASH = '0'.repeat(64);

export type AuditEventName =
  | 'request.received'
  | 'request.planned'
  | 'task.running'
  | 'task.succeeded'
  | 'task.failed'
  | 'task.needs_review'
  | 'task.waiting_on_vendor'
  | 'task.cancelled'
  | 'request.completed'
  | 'request.partially_failed'
  | 'request.needs_review'
  | 'request.failed'
  | 'request.cancelled'
  | 'request.extended'
  | 'request.retried'
  | 'request.shredded'
  | 'request.shred_postponed';

/** What happened, without where in the chain. */
export interface AuditEvent {
  /** Stable id of the state change, so that recording it twice appends it once. */
  readonly eventId: string;
  readonly event: AuditEventName;
  readonly at: string;
  readonly actor: string;
  readonly status?: RequestStatus | TaskStatus;
  readonly system?: string;
  readonly action?: TaskKind;
  readonly affected?: number;
  readonly tasks?: number;
  readonly remaining?: number;
  /** What the verification's wider net found that the action left, counted by reason (never values). */
  readonly nearMisses?: NearMisses;
  readonly errorName?: string;
  /** Restrict requests a lift undid. */
  readonly lifted?: readonly string[];
  /** Vendor jobs a task waits on, by vendor and job id. */
  readonly jobs?: string | undefined;
  readonly pseudonyms?: readonly PseudonymousIdentity[];
  readonly keyVersion?: string;
  /** The new deadline of an extension. (Its reason is free text, kept with the request, never here.) */
  readonly dueAt?: string;
  /** `request.completed`: no system found anything of the subject's. */
  readonly nothingFound?: boolean;
}

export interface AuditRecord extends AuditEvent {
  readonly v: typeof AUDIT_FORMAT_VERSION;
  readonly requestId: string;
  readonly seq: number;
  readonly prevHash: string;
  readonly hash: string;
}

export function hashRecord(record: Omit<AuditRecord, 'hash'>): string {
  const json = canonicalize(record);
  if (json === undefined) throw new TypeError('audit record is not serializable');
  return createHash('sha256').update(json).digest('hex');
}

export function chainRecord(
  requestId: string,
  previous: { seq: number; hash: string } | undefined,
  event: AuditEvent,
): AuditRecord {
  const body = {
    v: AUDIT_FORMAT_VERSION,
    requestId,
    seq: (previous?.seq ?? 0) + 1,
    prevHash: previous?.hash ?? GENESIS_HASH,
    ...stripUndefined(event),
  } as Omit<AuditRecord, 'hash'>;
  return { ...body, hash: hashRecord(body) };
}

export interface ChainProblem {
  /** Position in the list as stored (0-based) and the sequence number it should have had. */
  readonly index: number;
  readonly expectedSeq: number;
  /** Where the problem is: the sequence number whose object (`audit/<requestId>/<seq>.json`) is altered, missing or extra. */
  readonly at: number;
  readonly problem: string;
}

/**
 * Check one request's records, in storage order. An empty list is a problem: nothing was recorded.
 * A chain cut short at its end is only visible against its head: pass the head Lethe recorded
 * (the requests table keeps it) to detect a dropped tail.
 */
export function verifyChain(
  requestId: string,
  records: readonly AuditRecord[],
  expectedHead?: { readonly seq: number; readonly hash: string },
): ChainProblem[] {
  const problems: ChainProblem[] = [];
  if (records.length === 0) return [{ index: 0, expectedSeq: 1, at: 1, problem: 'no audit records found' }];
  let prevHash = GENESIS_HASH;
  records.forEach((record, index) => {
    const expectedSeq = index + 1;
    const at = expectedSeq;
    const { hash, ...body } = record;
    if (record.requestId !== requestId) {
      problems.push({ index, expectedSeq, at, problem: `belongs to request ${String(record.requestId)}` });
    }
    if (record.seq !== expectedSeq) {
      problems.push({ index, expectedSeq, at, problem: `has seq ${String(record.seq)}: a record is missing, inserted or reordered` });
    }
    if (record.prevHash !== prevHash) {
      problems.push({ index, expectedSeq, at, problem: 'prevHash does not match the hash of the record before it' });
    }
    if (!hashes(body, hash)) {
      problems.push({ index, expectedSeq, at, problem: 'content does not match its hash: the record was modified' });
    }
    prevHash = hash;
  });
  if (expectedHead && (records.length !== expectedHead.seq || prevHash !== expectedHead.hash)) {
    problems.push({
      index: records.length,
      expectedSeq: expectedHead.seq,
      at: records.length > expectedHead.seq ? expectedHead.seq + 1 : records.length < expectedHead.seq ? records.length + 1 : expectedHead.seq,
      problem: `the chain ends at record ${String(records.length)} but its recorded head is record ${String(expectedHead.seq)}: records are missing or were replaced at the end`,
    });
  }
  return problems;
}

/** Does the body hash to `hash`? False, not a crash, for a body canonical JSON cannot hold (a corrupt object read as NaN). */
function hashes(body: Omit<AuditRecord, 'hash'>, hash: string): boolean {
  try {
    return hashRecord(body) === hash;
  } catch {
    return false;
  }
}

function stripUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
