import { SendTaskFailureCommand, SendTaskHeartbeatCommand, SendTaskSuccessCommand } from '@aws-sdk/client-sfn';
import { ChangeMessageVisibilityCommand, GetQueueUrlCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import middy from '@middy/core';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { createHmac, randomUUID } from 'node:crypto';
import { z } from 'zod';
import { connectorFor } from '#connectors/index';
import { CONNECTOR_KINDS } from '#connectors/kinds';
import type { SystemConfig } from '#core/config';
import { open, openIdentities, seal, sealIdentities } from '#core/envelope';
import { ConnectorPermanentError, IdentitiesUnresolvedError, ConnectorRetryableError, TaskBusyError, isRetryable, LetheError, PermanentError, RetryableError, retryDelaySeconds } from '#core/errors';
import { describeNearMisses, nearMissTotal, type NearMisses } from '#core/near-miss';
import { isBatchConnector, mergeRestrictions, type Connector, type ConnectorCommand, type JobState, type PendingJob, type Restriction } from '#core/ports';
import type { Identity } from '#core/identity';
import { inRound, isFinalRequestStatus, isFinalTaskStatus, TASK_KINDS, type Action, type RequestRecord, type TaskRecord } from '#core/request';
import { AuditLog } from '../commons/audit-log.ts';
import { connectorClients, sfn, sqs } from '../commons/clients.ts';
import { requireEnv } from '../commons/env.ts';
import { keyServiceFromEnv } from '../commons/keys.ts';
import { errorFields, logger, metrics, observe } from '../commons/observability.ts';
import { RequestStore } from '../commons/request-store.ts';
import { systemsFromEnv } from '../commons/systems.ts';

const table = requireEnv('REQUESTS_TABLE');
const store = new RequestStore(table);
const audit = new AuditLog(table, requireEnv('AUDIT_BUCKET'));
const keys = keyServiceFromEnv();
const systems = systemsFromEnv<SystemConfig>();
/** The API's root URL, for the callback URLs of webhook services (only their worker has it). */
const apiUrl = process.env['API_URL'];
const processor = new BatchProcessor(EventType.SQS);

/** What the saga puts on a system's queue: ids and the task token, never an identity. */
const taskMessageSchema = z.object({
  requestId: z.uuid(),
  system: z.string(),
  action: z.enum(TASK_KINDS),
  taskToken: z.string().min(1),
  /** From the poller: ask the vendor where the task's jobs stand. */
  poll: z.literal(true).optional(),
});
/** A task message with the round its task record is in (`inRound`), read by the worker. */
type TaskMessage = z.infer<typeof taskMessageSchema> & { round?: number | undefined };
/** What a worker puts on its own queue: time to run the system's batch. */
const batchMessageSchema = z.object({ batch: z.literal(true), system: z.string() });
const messageSchema = z.union([batchMessageSchema, taskMessageSchema]);

/**
 * A batch's lock is a lease its worker renews a third of the way through, for as long as it runs:
 * a worker that dies (a timeout, a crash) holds its system's batches up a minute at most, where a
 * fixed lock outliving the longest run held them up sixteen. (Two runs at once, should a worker
 * stall past its lease, are safe: a rewrite checks that nobody wrote between its read and write.)
 */
const BATCH_LEASE_SECONDS = 60;
/** A batch that failed retryably is tried again this much later, with whoever joined meanwhile. */
const BATCH_RETRY_SECONDS = 60;

/**
 * One task: decrypt the subject's identities, have the system's connector act, verify nothing
 * remains, record the outcome (forward-only, audited), and complete the saga's task token.
 * Retryable failures are retried through the queue until the task has run `maxAttempts` times (a
 * delivery that finds it held is not one); then, or on a permanent failure, the task fails with its
 * error class and the token is failed.
 */
async function runTask(record: SQSRecord): Promise<void> {
  const parsed = messageSchema.parse(JSON.parse(record.body));
  if ('batch' in parsed) return runBatch(parsed.system, record);
  const { requestId, system: systemName, action } = parsed;
  const system = systems.get(systemName);
  if (!system) {
    return fail(parsed, new PermanentError(`system ${systemName} is not served by this worker`));
  }
  const task = await store.task(requestId, systemName, action);
  const message: TaskMessage = { ...parsed, round: task?.round };
  if (task && isFinalTaskStatus(task.status)) return report(message, task);
  if (message.poll) {
    // A batch member's poll also asks for its batch, should a trigger have been lost.
    if (task?.status === 'waiting_on_vendor' && batchOf(system)) {
      await rejoinBatch(message, system);
      await triggerBatch(record, systemName, 0);
    }
    return pollJobs(message, system, task);
  }
  // A redelivered start of a task whose vendor job runs: the poller follows it. When the saga sent
  // it again with a new token (the old one's heartbeat lapsed), the poller follows that one.
  if (task?.status === 'waiting_on_vendor') {
    if (task.taskToken && task.taskToken !== message.taskToken && (await store.replaceTaskToken(task, task.taskToken, message.taskToken))) {
      logger.info('waiting task sent again with a new token', { requestId, system: systemName, action });
    }
    const batch = batchOf(system);
    if (batch && (await rejoinBatch(message, system))) await triggerBatch(record, systemName, batch.windowSeconds);
    return;
  }
  // Without the identities a failed resolver was to provide, acting would miss the subject: fail, to be retried.
  if (task?.needs?.length) {
    const unresolved = (await store.tasks(requestId)).filter((t) => t.action === 'resolve' && task.needs!.includes(t.system) && t.status !== 'succeeded');
    if (unresolved.length > 0) {
      const names = unresolved.map((t) => t.system).join(', ');
      return fail(message, new IdentitiesUnresolvedError(`${systemName}: not run, because ${names} did not resolve the linked identities it is reached by`));
    }
  }

  // One attempt at a time: a duplicate delivery finds the task held and comes back when the lease ends.
  const owner = randomUUID();
  const claim = await store.claimTask(requestId, systemName, action, owner, leaseSeconds(system));
  if (!claim.claimed) {
    if (claim.task && isFinalTaskStatus(claim.task.status)) return report(message, claim.task);
    if (!claim.busyUntil) return; // waiting on a vendor: the poller follows it
    // Back within half a heartbeat, this message's token kept alive meanwhile: when the holder is an
    // attempt that died, and this is the saga sending the task again, it takes over once the lease ends.
    const delay = Math.min(Math.max(1, Math.floor(system.heartbeatSeconds / 2)), Math.max(1, Math.ceil((Date.parse(claim.busyUntil) - Date.now()) / 1000)));
    logger.info('task held by another attempt', { requestId, system: systemName, action, delay });
    await beat(message);
    await retryAfter(record, delay);
    throw new TaskBusyError(`${systemName}/${action}: another attempt holds the task for ${String(delay)} s`);
  }
  if (claim.first) await audit.append(requestId, taskEvent('task.running', message, { status: 'running' }));
  const heartbeat = setInterval(() => void keepAlive(message, owner, system), renewEvery(system) * 1000);
  try {
    const { request, dataKey, identities } = await subjectOf(requestId);
    const connector = await connectorFor(system, connectorClients);
    let affected: number;
    let remaining = 0;
    let lifted: string[] | undefined;
    if (action === 'resolve') {
      const linked = await connector.resolve(identities);
      await store.putLinks(requestId, systemName, sealIdentities(linked, dataKey, requestId), linked.length);
      affected = linked.length;
    } else {
      // The pseudonym key serves the `hmac` anonymization strategy: only anonymizing needs it.
      const hmacKey = action === 'anonymize' ? (await keys.pseudonymKey()).key : undefined;
      const lifting = action === 'lift' ? await restrictionsToLift(request, systemName) : undefined;
      const command: ConnectorCommand = {
        requestId,
        action,
        identities,
        regulation: request.regulation,
        ...(apiUrl && { callbackUrl: callbackUrl(apiUrl, message) }),
        keyedHash: (value: string) => {
          if (!hmacKey) throw new PermanentError(`${systemName}: a keyed hash is only available to anonymize`);
          return createHmac('sha256', hmacKey).update(value).digest('hex');
        },
        ...(action === 'restrict' && { recordRestriction: (r: Restriction) => recordRestriction(requestId, systemName, r, dataKey) }),
        ...(lifting && { restrictions: lifting.map((l) => l.restriction) }),
      };
      if (action === 'delete' && batchOf(system)) return await joinBatch(message, system, record, dataKey);
      const result = await connector.run(command);
      affected = result.affected;
      if (result.pending?.length) return await waitOnVendor(message, system, result.pending, affected, dataKey);
      const verification = await connector.verify(command);
      ({ remaining } = verification);
      if (remaining > 0) {
        throw new ConnectorRetryableError(`${systemName}: ${String(remaining)} records remain after ${action}`);
      }
      if (nearMissTotal(verification.nearMisses) > 0) return await needsReview(message, affected, verification.nearMisses!);
      for (const l of lifting ?? []) await store.markLifted(l.requestId, systemName, requestId);
      lifted = lifting?.map((l) => l.requestId);
    }
    await store.transitionTask(requestId, systemName, action, 'succeeded', { affected, remaining });
    await audit.append(requestId, taskEvent('task.succeeded', message, { status: 'succeeded', affected, remaining, ...(lifted && { lifted }) }));
    logger.info('task succeeded', { requestId, system: systemName, action, affected });
    metrics.addMetric('TasksSucceeded', MetricUnit.Count, 1);
    metrics.addMetric('RecordsAffected', MetricUnit.Count, affected);
    await report(message, { status: 'succeeded', affected });
  } catch (error) {
    // The task's own count: deliveries that found it held (duplicates, a takeover's wait) are not attempts.
    const attempts = claim.attempts;
    if (isRetryable(error) && attempts < system.maxAttempts) {
      const delay = retryDelaySeconds(attempts, system.heartbeatSeconds);
      metrics.addMetric('TaskRetries', MetricUnit.Count, 1);
      logger.warn('task will be retried', { requestId, system: systemName, action, attempts, delay, ...errorFields(error) });
      // Keep the saga's heartbeat alive and bring the message back after a short backoff,
      // instead of the queue's full visibility timeout.
      await beat(message);
      await store.renewLease(message, owner, 0).catch(() => false); // the retry may claim it at once
      await retryAfter(record, delay);
      throw error;
    }
    await fail(message, error);
  } finally {
    clearInterval(heartbeat);
  }
}

/** The request, its data key, and the subject's identities: those given, and those earlier stages resolved. */
async function subjectOf(requestId: string): Promise<{ request: RequestRecord; dataKey: Uint8Array; identities: Identity[] }> {
  const request = await store.mustGet(requestId);
  const dataKey = await keys.unwrapDataKey(request.wrappedDataKey, requestId);
  const identities = [
    ...openIdentities(request.sealedIdentities, dataKey, requestId),
    ...(await store.links(requestId)).flatMap((l) => openIdentities(l.sealed, dataKey, requestId)),
  ];
  return { request, dataKey, identities };
}

type TrackedJob = PendingJob & { done?: boolean };

/** How often the saga must hear from a waiting task: twice per heartbeat timeout. */
const heartbeatEvery = (system: SystemConfig) => Math.max(5, Math.floor(system.heartbeatSeconds / 2));
const inSeconds = (seconds: number) => new Date(Date.now() + seconds * 1000).toISOString();
const jobNames = (jobs: readonly PendingJob[]) => jobs.map((j) => `${j.vendor} job ${j.id}`).join(', ');

/**
 * The vendor took the action on as jobs: keep them (sealed) beside the task token, and leave the
 * token open. The poller brings the task back when a poll or a heartbeat is due.
 */
async function waitOnVendor(message: TaskMessage, system: SystemConfig, jobs: readonly PendingJob[], affected: number, dataKey: Uint8Array): Promise<void> {
  const { requestId, system: systemName, action, taskToken } = message;
  const nextPollAt = inSeconds(Math.min(...jobs.map((j) => j.pollEverySeconds)));
  const nextHeartbeatAt = inSeconds(heartbeatEvery(system));
  const moved = await store.transitionTask(requestId, systemName, action, 'waiting_on_vendor', {
    affected,
    taskToken,
    sealedJobs: seal(jobs, dataKey, requestId),
    jobs: jobNames(jobs),
    deadlineAt: inSeconds(Math.max(...jobs.map((j) => j.deadlineSeconds))),
    nextPollAt,
    nextHeartbeatAt,
    nextCheckAt: nextPollAt < nextHeartbeatAt ? nextPollAt : nextHeartbeatAt,
  });
  if (moved) await audit.append(requestId, taskEvent('task.waiting_on_vendor', message, { status: 'waiting_on_vendor', affected, jobs: jobNames(jobs) }));
  logger.info('task waiting on vendor', { requestId, system: systemName, action, jobs: jobs.length });
  metrics.addMetric('TasksWaitingOnVendor', MetricUnit.Count, 1);
  await beat(message);
  // A service may have called back before the wait was recorded: settle the task now, then.
  const waiting = await store.task(requestId, systemName, action);
  if (waiting?.callback) await pollJobs(message, system, waiting);
}

/**
 * Find out where a waiting task's jobs stand: from the service's signed callback when it has
 * reported, else by asking the vendor. All done (and verified): the task succeeds.
 * One failed, or the deadline passed: the task fails, naming the vendor and the job. Otherwise the
 * next poll is scheduled. A poll that fails retryably is only logged: the next poll tries again.
 */
async function pollJobs(message: TaskMessage, system: SystemConfig, task: TaskRecord | undefined): Promise<void> {
  const { requestId, system: systemName, action } = message;
  if (task?.status !== 'waiting_on_vendor' || !task.sealedJobs) return;
  try {
    const { request, dataKey, identities } = await subjectOf(requestId);
    const connector = await connectorFor(system, connectorClients);
    const command: ConnectorCommand = { requestId, action: action as Action, identities, regulation: request.regulation, keyedHash: noKeyedHash };
    const jobs = open<TrackedJob[]>(task.sealedJobs, dataKey, requestId);
    let waitingOn: string | undefined;
    for (const job of jobs.filter((j) => !j.done)) {
      const { state, detail } = await jobState(connector, command, job, task);
      if (state === 'failed') {
        return await fail(message, new ConnectorPermanentError(`${systemName}: ${job.vendor} job ${job.id} failed${detail ? `: ${detail}` : ''}`));
      }
      if (state === 'done') job.done = true;
      else waitingOn ??= `${job.vendor} job ${job.id}${detail ? ` (${detail})` : ''}`;
    }
    if (!waitingOn) {
      const { remaining, nearMisses } = await connector.verify(command);
      if (remaining === 0) {
        const affected = (task.affected ?? 0) + (task.callback?.status === 'done' ? (task.callback.affected ?? 0) : 0);
        if (nearMissTotal(nearMisses) > 0) return await needsReview(message, affected, nearMisses!, task.jobs);
        await store.transitionTask(requestId, systemName, action, 'succeeded', { affected, remaining });
        await audit.append(requestId, taskEvent('task.succeeded', message, { status: 'succeeded', affected, remaining, jobs: task.jobs }));
        logger.info('task succeeded after vendor jobs', { requestId, system: systemName, action, affected });
        metrics.addMetric('TasksSucceeded', MetricUnit.Count, 1);
        return await report(message, { status: 'succeeded', affected });
      }
      waitingOn = `${String(remaining)} records still found after the vendor's jobs finished`;
    }
    if (task.deadlineAt && new Date().toISOString() > task.deadlineAt) {
      return await fail(message, new ConnectorPermanentError(`${systemName}: passed its deadline ${task.deadlineAt} waiting on ${waitingOn}`));
    }
    const pollEvery = Math.min(...jobs.map((j) => j.pollEverySeconds));
    await store.scheduleWaiting(task, { nextPollAt: inSeconds(pollEvery), nextHeartbeatAt: inSeconds(heartbeatEvery(system)), sealedJobs: seal(jobs, dataKey, requestId) });
    await beat(message);
  } catch (error) {
    if (!isRetryable(error)) return fail(message, error);
    logger.warn('vendor poll failed, the next poll tries again', { requestId, system: systemName, action, ...errorFields(error) });
  }
}

/** A job's state: as its service reported it by signed callback, else as the vendor answers a poll, else still pending. */
async function jobState(connector: Connector, command: ConnectorCommand, job: PendingJob, task: TaskRecord): Promise<JobState> {
  const report = task.callback?.job === job.id ? task.callback : undefined;
  if (report) return report.status === 'done' ? { state: 'done', detail: 'reported done' } : { state: 'failed', detail: report.error ?? 'reported failed' };
  return connector.poll ? connector.poll(command, job) : { state: 'pending', detail: `waiting for ${job.awaiting ?? 'the vendor'}` };
}

/** Where a webhook service reports a task it accepted: signed, to the API's callback route. */
const callbackUrl = (base: string, { requestId, system, action }: TaskMessage) =>
  new URL(`v1/callbacks/${requestId}/${encodeURIComponent(system)}/${action}`, base.endsWith('/') ? base : `${base}/`).toString();

/** A system's batching, when it collects its erasures (a data lake or Iceberg table with a window). */
function batchOf(system: SystemConfig): { windowSeconds: number; maxSubjects: number } | undefined {
  if (!CONNECTOR_KINDS[system.connector]?.batches) return undefined;
  const batch = (system.settings as { batch?: { windowSeconds: number; maxSubjects: number } } | undefined)?.batch;
  return batch && batch.windowSeconds > 0 ? batch : undefined;
}

/**
 * A waiting batch member whose environment died between its wait and its join is in no batch:
 * it joins now. True when it had to.
 */
async function rejoinBatch(message: TaskMessage, system: SystemConfig): Promise<boolean> {
  if (message.action !== 'delete' || !(await store.joinBatch(system.name, message.requestId, message.action))) return false;
  logger.warn('waiting task was not in its batch: joined it', { requestId: message.requestId, system: system.name, action: message.action });
  return true;
}

/**
 * Join the system's batch instead of acting alone: the task waits (its token kept, kept alive by
 * the poller) and a trigger on the system's queue runs the batch when this task's window closes,
 * or now when the batch is full.
 */
async function joinBatch(message: TaskMessage, system: SystemConfig, record: SQSRecord, dataKey: Uint8Array): Promise<void> {
  const batch = batchOf(system)!;
  const job: PendingJob = { vendor: system.connector, id: 'batch', vars: {}, pollEverySeconds: 3600, deadlineSeconds: system.timeoutSeconds, awaiting: 'the next batch' };
  // Waiting (with its token) before it joins: a batch run only ever finds members it can settle.
  await waitOnVendor(message, system, [job], 0, dataKey);
  await store.joinBatch(system.name, message.requestId, message.action);
  const full = await store.batchHasAtLeast(system.name, batch.maxSubjects);
  await triggerBatch(record, system.name, full ? 0 : batch.windowSeconds);
}

async function triggerBatch(record: SQSRecord, system: string, delaySeconds: number): Promise<void> {
  const queueUrl = await queueUrlOf(record);
  if (!queueUrl) throw new RetryableError(`${system}: cannot find its queue to schedule the batch`);
  await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: JSON.stringify({ batch: true, system }), DelaySeconds: delaySeconds }));
}

/**
 * Run a system's batch, under its lock, once its oldest member has waited the window (or it is
 * full): one rewrite pass removes every member's subject, one read verifies, and each member's task
 * succeeds with its own count. A member still found stays for the next batch; a retryable failure
 * keeps them all for the next batch; a permanent one fails them all with its cause.
 */
async function runBatch(systemName: string, record: SQSRecord): Promise<void> {
  const system = systems.get(systemName);
  const batch = system && batchOf(system);
  if (!system || !batch) return;
  const owner = randomUUID();
  if (!(await store.lockBatch(systemName, owner, BATCH_LEASE_SECONDS))) return triggerBatch(record, systemName, 30);
  const renewal = setInterval(() => {
    store.renewBatch(systemName, owner, BATCH_LEASE_SECONDS).then(
      (kept) => kept || logger.warn('batch lock lapsed and another worker took it', { system: systemName }),
      (error: unknown) => logger.warn('could not renew the batch lock', { system: systemName, ...errorFields(error) }),
    );
  }, (BATCH_LEASE_SECONDS * 1000) / 3);
  const waiting = new Map<string, TaskMessage>();
  try {
    const members = await store.batchMembers(systemName);
    const dueBy = new Date(Date.now() - (batch.windowSeconds - 1) * 1000).toISOString();
    if (members.length === 0 || (members.length < batch.maxSubjects && members[0]!.joinedAt > dueBy)) return;
    const subjects = new Map<string, Identity[]>();
    for (const m of members.slice(0, batch.maxSubjects)) {
      const task = await store.task(m.requestId, systemName, m.action);
      if (!task || isFinalTaskStatus(task.status)) {
        await store.leaveBatch(systemName, m.requestId, m.action); // settled or failed meanwhile
        continue;
      }
      if (task.status !== 'waiting_on_vendor' || !task.taskToken) continue; // not waiting yet: the next batch
      const key = `${m.requestId}#${m.action}`;
      subjects.set(key, (await subjectOf(m.requestId)).identities);
      waiting.set(key, { requestId: m.requestId, system: systemName, action: m.action, taskToken: task.taskToken, round: task.round });
    }
    if (subjects.size === 0) return;
    // Should this run die (a timeout, a crash), its trigger is gone for the queue's visibility
    // timeout: another, for when the lease has lapsed, runs the batch again in a minute.
    await triggerBatch(record, systemName, BATCH_LEASE_SECONDS + 5);
    const connector = await connectorFor(system, connectorClients);
    if (!isBatchConnector(connector)) throw new PermanentError(`${systemName}: the ${system.connector} connector does not batch`);
    const affected = await connector.runBatch(subjects);
    const verified = await connector.verifyBatch(subjects);
    let settled = 0;
    for (const [key, message] of waiting) {
      const verification = verified.get(key);
      if ((verification?.remaining ?? 0) > 0) continue;
      const n = affected.get(key) ?? 0;
      const jobs = `${system.connector} batch of ${String(subjects.size)}`;
      if (nearMissTotal(verification?.nearMisses) > 0) {
        await needsReview(message, n, verification!.nearMisses!, jobs);
        await store.leaveBatch(systemName, message.requestId, message.action);
        settled += 1;
        continue;
      }
      await store.transitionTask(message.requestId, systemName, message.action, 'succeeded', { affected: n, remaining: 0, jobs });
      await audit.append(message.requestId, taskEvent('task.succeeded', message, { status: 'succeeded', affected: n, remaining: 0, jobs }));
      await report(message, { status: 'succeeded', affected: n });
      await store.leaveBatch(systemName, message.requestId, message.action);
      metrics.addMetric('TasksSucceeded', MetricUnit.Count, 1);
      metrics.addMetric('RecordsAffected', MetricUnit.Count, n);
      settled += 1;
    }
    logger.info('batch done', { system: systemName, subjects: subjects.size, settled });
    // Whoever is left: at once when another full batch waits, else a minute later (each newer member has its own trigger too).
    if (members.length > settled) await triggerBatch(record, systemName, members.length > batch.maxSubjects ? 0 : BATCH_RETRY_SECONDS);
  } catch (error) {
    if (isRetryable(error)) {
      logger.warn('batch failed, its members wait for the next one', { system: systemName, members: waiting.size, ...errorFields(error) });
      await triggerBatch(record, systemName, BATCH_RETRY_SECONDS);
    } else {
      for (const message of waiting.values()) {
        await fail(message, error);
        await store.leaveBatch(systemName, message.requestId, message.action);
      }
    }
  } finally {
    clearInterval(renewal);
    await store.unlockBatch(systemName, owner);
  }
}

const queueUrls = new Map<string, Promise<string | undefined>>();

/** The URL of the queue a message came from. */
function queueUrlOf(record: SQSRecord): Promise<string | undefined> {
  const [, , , , account, name] = record.eventSourceARN.split(':');
  if (!queueUrls.has(record.eventSourceARN)) {
    queueUrls.set(
      record.eventSourceARN,
      sqs.send(new GetQueueUrlCommand({ QueueName: name, QueueOwnerAWSAccountId: account })).then(
        (out) => out.QueueUrl,
        () => undefined,
      ),
    );
  }
  return queueUrls.get(record.eventSourceARN)!;
}

const noKeyedHash = (): string => {
  throw new PermanentError('a keyed hash is only available to anonymize');
};

/**
 * Keep what a restrict task is about to restrict, sealed under the request's data key, merged with
 * what an earlier attempt recorded: written before the connector restricts, so a crash in between
 * can never leave a restriction that no withdraw would lift.
 */
async function recordRestriction(requestId: string, system: string, restriction: Restriction, dataKey: Uint8Array): Promise<void> {
  const earlier = await store.restriction(requestId, system);
  const merged = mergeRestrictions(earlier ? [open<Restriction>(earlier.sealed, dataKey, requestId), restriction] : [restriction]);
  const count = Object.values(merged).reduce((n, keys) => n + keys.length, 0);
  await store.putRestriction(requestId, system, seal(merged, dataKey, requestId), count);
}

/**
 * What a withdraw lifts in a system: the recorded restrictions of the subject's earlier restrict
 * requests there that no other withdraw has lifted. A restrict request still under way makes the
 * lift wait (retry), so that it lifts all of it.
 */
async function restrictionsToLift(withdraw: RequestRecord, system: string): Promise<{ requestId: string; restriction: Restriction }[]> {
  const earlier = (await store.requestsOfSubject(withdraw.pseudonyms)).filter(
    (r) => r.type === 'restrict' && r.requestId !== withdraw.requestId && r.receivedAt <= withdraw.receivedAt,
  );
  const out: { requestId: string; restriction: Restriction }[] = [];
  for (const { requestId } of earlier) {
    const restrict = await store.mustGet(requestId);
    if (!isFinalRequestStatus(restrict.status)) {
      throw new RetryableError(`${system}: restrict request ${requestId} is still ${restrict.status}; the lift waits for it`);
    }
    const item = await store.restriction(requestId, system);
    if (!item || (item.liftedBy !== undefined && item.liftedBy !== withdraw.requestId)) continue;
    const key = await keys.unwrapDataKey(restrict.wrappedDataKey, requestId);
    out.push({ requestId, restriction: open<Restriction>(item.sealed, key, requestId) });
  }
  return out;
}

/** The error name a task that needs review reports to the saga, the status and the alerts. */
const NEEDS_REVIEW = 'NeedsReview';

/**
 * The action ran and its own match finds nothing left, but the verification's wider net finds the
 * subject's data it left: the task ends `needs_review` with counts by reason (never values), and
 * the saga hears a failure, so that no receipt says `completed` for it.
 */
async function needsReview(message: TaskMessage, affected: number, nearMisses: NearMisses, jobs?: string): Promise<void> {
  const { requestId, system, action } = message;
  const errorMessage = `${system}: ${describeNearMisses(nearMisses)}`;
  logger.error('task needs review', { requestId, system, action, affected, nearMisses });
  metrics.addMetric('TasksNeedingReview', MetricUnit.Count, 1);
  const fields = { affected, remaining: 0, nearMisses, ...(jobs && { jobs }) };
  const moved = await store.transitionTask(requestId, system, action, 'needs_review', { ...fields, errorName: NEEDS_REVIEW, errorMessage });
  if (moved) await audit.append(requestId, taskEvent('task.needs_review', message, { status: 'needs_review', ...fields }));
  await report(message, { status: 'needs_review', errorName: NEEDS_REVIEW, errorMessage });
}

async function fail(message: TaskMessage, error: unknown): Promise<void> {
  const { requestId, system, action } = message;
  const { errorName } = errorFields(error);
  // Only Lethe's own messages are known to be free of personal data.
  const errorMessage = error instanceof LetheError ? error.message : 'unexpected error';
  logger.error('task failed', { requestId, system, action, errorName, errorMessage });
  metrics.addMetric('TasksFailed', MetricUnit.Count, 1);
  let moved = false;
  try {
    moved = await store.transitionTask(requestId, system, action, 'failed', { errorName, errorMessage });
  } catch (cause) {
    logger.warn('could not mark task failed', { requestId, system, ...errorFields(cause) });
  }
  if (moved) await audit.append(requestId, taskEvent('task.failed', message, { status: 'failed', errorName }));
  await report(message, { status: 'failed', errorName, errorMessage });
}

async function retryAfter(record: SQSRecord, seconds: number): Promise<void> {
  const queueUrl = await queueUrlOf(record);
  if (!queueUrl) return;
  try {
    await sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: queueUrl, ReceiptHandle: record.receiptHandle, VisibilityTimeout: seconds }));
  } catch (error) {
    logger.warn('could not shorten the retry delay', errorFields(error));
  }
}

/** Tell the saga the task is alive, so its heartbeat timeout does not fire while a connector works. */
async function beat({ requestId, system, taskToken }: TaskMessage): Promise<void> {
  try {
    await sfn.send(new SendTaskHeartbeatCommand({ taskToken }));
  } catch (error) {
    logger.warn('heartbeat failed', { requestId, system, ...errorFields(error) });
  }
}

/**
 * An attempt's lease on its task is two heartbeats long and renewed four times a heartbeat, so a
 * holder whose renewals stall (a starved CPU, a slow table) keeps it for a heartbeat and a half
 * longer than they should take. An attempt that died is taken over within two heartbeats, the
 * saga's token kept alive meanwhile by the attempt waiting for it.
 */
function leaseSeconds(system: SystemConfig): number {
  return 2 * system.heartbeatSeconds;
}
function renewEvery(system: SystemConfig): number {
  return Math.max(1, system.heartbeatSeconds / 4);
}

/** While an attempt works: the saga's heartbeat, and the attempt's lease on the task, side by side. */
async function keepAlive(message: TaskMessage, owner: string, system: SystemConfig): Promise<void> {
  const renewal = store.renewLease(message, owner, leaseSeconds(system)).then(
    (held) => {
      if (!held) logger.warn('lease lost: another attempt may act on the task', { requestId: message.requestId, system: message.system, action: message.action });
    },
    (error: unknown) => logger.warn('lease renewal failed', { requestId: message.requestId, system: message.system, ...errorFields(error) }),
  );
  await Promise.all([beat(message), renewal]);
}

/** Complete the saga's task token from the task's final state. A stale token is not an error. */
async function report(
  message: TaskMessage,
  task: Pick<TaskRecord, 'status' | 'affected' | 'errorName' | 'errorMessage'>,
): Promise<void> {
  const { requestId, system, action, taskToken } = message;
  try {
    if (task.status === 'succeeded') {
      const output = { requestId, system, action, status: 'succeeded', affected: task.affected ?? 0 };
      await sfn.send(new SendTaskSuccessCommand({ taskToken, output: JSON.stringify(output) }));
    } else {
      await sfn.send(
        new SendTaskFailureCommand({ taskToken, error: task.errorName ?? 'TaskFailed', cause: task.errorMessage ?? '' }),
      );
    }
  } catch (error) {
    const name = (error as { name?: string }).name;
    if (name !== 'TaskTimedOut' && name !== 'InvalidToken' && name !== 'TaskDoesNotExist') throw error;
    logger.warn('task token no longer open', { requestId, system, errorName: name });
  }
}

function taskEvent(
  event: 'task.running' | 'task.succeeded' | 'task.failed' | 'task.needs_review' | 'task.waiting_on_vendor',
  { system, action, round }: TaskMessage,
  fields: { status: TaskRecord['status']; affected?: number; remaining?: number; nearMisses?: NearMisses; errorName?: string; lifted?: string[]; jobs?: string | undefined },
) {
  return { eventId: inRound(`${event}:${system}:${action}`, round), event, at: new Date().toISOString(), actor: `lethe:worker:${system}`, system, action, ...fields };
}

export const handler = middy<SQSEvent, SQSBatchResponse>()
  .use(observe())
  .handler((event, context) => processPartialResponse(event, runTask, processor, { context, throwOnFullBatchFailure: false }));
