import { createHash } from 'node:crypto';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import canonicalize from 'canonicalize';
import { sealIdentities } from '#core/envelope';
import { IdempotencyConflictError, RetryableError } from '#core/errors';
import { normalizeIdentities, pseudonymize } from '#core/identity';
import type { KeyService } from '#core/ports';
import { deadlinesFor } from '#core/deadlines';
import { parseSubmission, requestIdFor, type RequestRecord, type RequestStatus } from '#core/request';
import { filterKeyOf, filterTag, suppressionChange } from '#core/suppression';
import { AuditLog } from './audit-log.ts';
import { sqs } from './clients.ts';
import { requireEnv } from './env.ts';
import { keyServiceFromEnv } from './keys.ts';
import { logger, metrics } from './observability.ts';
import { RequestStore } from './request-store.ts';
import { announceChange } from './suppression-snapshot.ts';
import { subjectOf, SuppressionStore } from './suppression-store.ts';

/** Intake's adapters, from the environment the stack gives both intake functions. */
export function intakeDepsFromEnv(): IntakeDeps {
  const table = requireEnv('REQUESTS_TABLE');
  return {
    store: new RequestStore(table),
    suppressions: new SuppressionStore(requireEnv('SUPPRESSIONS_TABLE')),
    audit: new AuditLog(table, requireEnv('AUDIT_BUCKET')),
    keys: keyServiceFromEnv(),
    intakeQueueUrl: requireEnv('INTAKE_QUEUE_URL'),
    changesQueueUrl: requireEnv('SUPPRESSION_CHANGES_QUEUE_URL'),
  };
}

export interface IntakeDeps {
  readonly store: RequestStore;
  readonly suppressions: SuppressionStore;
  readonly audit: AuditLog;
  readonly keys: KeyService;
  readonly intakeQueueUrl: string;
  /** Where intake tells the filter snapshot's publisher which subjects changed. */
  readonly changesQueueUrl: string;
}

export interface IntakeAnswer {
  readonly requestId: string;
  readonly status: RequestStatus;
  readonly dueAt: string;
  /** False when this was a replay of a request already received. */
  readonly created: boolean;
}

/**
 * Intake, shared by the HTTP and EventBridge entry points: validate, normalize, pseudonymize,
 * seal the raw identities under a fresh data key, store the request once per id, record
 * `request.received`, and hand the id (only the id) to the intake buffer. A replay with the same
 * id and body gets the same answer; with another body, a conflict.
 */
export async function submitRequest(input: unknown, actor: string, deps: IntakeDeps): Promise<IntakeAnswer> {
  const submission = parseSubmission(input);
  const identities = normalizeIdentities(submission.identities);
  const requestId = requestIdFor(submission);
  const pseudonymKey = await deps.keys.pseudonymKey();
  const pseudonyms = identities.map((i) => pseudonymize(i, pseudonymKey));
  // Each identity's tag in the suppression filter, by pseudonym (a replay's record has pseudonyms only).
  const filterKey = filterKeyOf(pseudonymKey);
  const tags = new Map(identities.map((i, n) => [`${pseudonyms[n]!.type}:${pseudonyms[n]!.pseudonym}`, Buffer.from(filterTag(i, filterKey)).toString('hex')]));
  const bodyHash = createHash('sha256')
    .update(
      canonicalize({
        type: submission.type,
        regulation: submission.regulation,
        pseudonyms: pseudonyms.map((p) => `${p.type}:${p.pseudonym}`).sort(),
        ...(submission.scopes && { scopes: [...submission.scopes].sort() }),
        ...(submission.submittedAt && { submittedAt: new Date(submission.submittedAt).toISOString() }),
      }) ?? '',
    )
    .digest('hex');

  const existing = await deps.store.get(requestId);
  if (existing) return replay(existing, bodyHash, actor, deps, tags);

  const dataKey = await deps.keys.generateDataKey(requestId);
  const receivedAt = new Date();
  // The law's clock runs from when the subject asked: from receipt here, unless they asked earlier elsewhere.
  const submittedAt = submission.submittedAt && Date.parse(submission.submittedAt) < receivedAt.getTime() ? new Date(submission.submittedAt) : undefined;
  const deadlines = deadlinesFor(submission.regulation, submission.type, submittedAt ?? receivedAt);
  const record: RequestRecord = {
    requestId,
    type: submission.type,
    regulation: submission.regulation,
    status: 'received',
    receivedAt: receivedAt.toISOString(),
    dueAt: deadlines.dueAt,
    ...(deadlines.acknowledgeBy && { acknowledgeBy: deadlines.acknowledgeBy }),
    source: submission.source,
    sourceEventId: submission.sourceEventId,
    ...(submittedAt && { submittedAt: submittedAt.toISOString() }),
    ...(submission.scopes && { scopes: submission.scopes }),
    pseudonyms,
    keyVersion: pseudonymKey.version,
    bodyHash,
    sealedIdentities: sealIdentities(identities, dataKey.plaintext, requestId),
    wrappedDataKey: dataKey.wrapped,
  };
  if (!(await deps.store.create(record))) {
    return replay(await deps.store.mustGet(requestId), bodyHash, actor, deps, tags);
  }
  logger.info('request received', { requestId, type: record.type, regulation: record.regulation, identities: pseudonyms.length });
  metrics.addMetric('RequestsReceived', MetricUnit.Count, 1);
  await dispatch(record, actor, deps, tags);
  return { requestId, status: 'received', dueAt: record.dueAt, created: true };
}

async function replay(existing: RequestRecord, bodyHash: string, actor: string, deps: IntakeDeps, tags: ReadonlyMap<string, string>): Promise<IntakeAnswer> {
  if (existing.bodyHash !== bodyHash) {
    throw new IdempotencyConflictError(`request ${existing.requestId} exists with a different body`);
  }
  logger.info('request replayed', { requestId: existing.requestId, status: existing.status });
  // A request still `received` may have died between storing and enqueueing: finish the job.
  if (existing.status === 'received') await dispatch(existing, actor, deps, tags);
  return { requestId: existing.requestId, status: existing.status, dueAt: existing.dueAt, created: false };
}

async function dispatch(record: RequestRecord, actor: string, deps: IntakeDeps, tags: ReadonlyMap<string, string>): Promise<void> {
  // The suppression plane first: an opt-out holds from the moment intake answers (a replay of a
  // request that died before its dispatch applies it again, to the same effect).
  const { on, scopes } = suppressionChange(record.type, record.scopes);
  const subjects = record.pseudonyms.map((p) => ({ ...p, tag: tags.get(`${p.type}:${p.pseudonym}`), keyVersion: record.keyVersion }));
  await deps.suppressions.apply(subjects, scopes, { on, at: record.receivedAt, requestId: record.requestId, ...(record.source && { source: record.source }) });
  await announceChange(deps.changesQueueUrl, { subjects: subjects.map(subjectOf) });
  await deps.store.indexSubject(record);
  await deps.audit.append(record.requestId, {
    eventId: 'request.received',
    event: 'request.received',
    at: record.receivedAt,
    actor,
    status: 'received',
    pseudonyms: record.pseudonyms,
    keyVersion: record.keyVersion,
  });
  try {
    await sqs.send(
      new SendMessageCommand({ QueueUrl: deps.intakeQueueUrl, MessageBody: JSON.stringify({ requestId: record.requestId }) }),
    );
  } catch (error) {
    throw new RetryableError('intake buffer: send failed', { cause: error });
  }
}
