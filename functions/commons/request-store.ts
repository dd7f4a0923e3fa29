import { DeleteCommand, GetCommand, paginateQuery, paginateScan, PutCommand, QueryCommand, TransactWriteCommand, UpdateCommand, type QueryCommandInput, type QueryCommandOutput } from '@aws-sdk/lib-dynamodb';
import { classifyStoreError } from '#connectors/aws-errors';
import type { PseudonymousIdentity } from '#core/identity';
import { isOverdue, type ReminderKind } from '#core/deadlines';
import type { ListedRequest } from '#core/report';
import { InvalidTransitionError, NotFoundError, PermanentError, ValidationError } from '#core/errors';
import {
  BY_MONTH_INDEX,
  FINAL_REQUEST_STATUSES,
  isFinalRequestStatus,
  NOTHING_FOUND_INDEX,
  OPEN_INDEX,
  RETRYABLE_REQUEST_STATUSES,
  requestStatusesBefore,
  type Regulation,
  taskStatusesBefore,
  type TaskKind,
  type RequestRecord,
  type RequestType,
  type RequestStatus,
  type TaskRecord,
  type TaskStatus,
  type JobReport,
  WAITING_INDEX,
  SHRED_INDEX,
} from '#core/request';
import { batchGetAll } from './batch-get.ts';
import { dynamo } from './clients.ts';

/**
 * Requests and their tasks in one DynamoDB table: `pk = REQ#<id>`, `sk = META` for the request,
 * `TASK#<system>#<action>` for each task, `LINK#<system>` for the linked identities a system
 * resolved, `RESTRICTION#<system>` for what a restriction changed there; and `pk = SUBJECT#…`
 * indexing each request under its subject's pseudonyms. Status changes are conditional writes that only move
 * forward, so a redelivered message can never move a request or task backwards.
 */
export const requestKey = (requestId: string) => ({ pk: `REQ#${requestId}`, sk: 'META' });
export const taskKey = (requestId: string, system: string, action: TaskKind) => ({
  pk: `REQ#${requestId}`,
  sk: `TASK#${system}#${action}`,
});

const WAITING = 'WAITING';
/** The value of `shred` on requests due for shredding (the Shred index's partition key). */
export const SHRED_DUE = 'DUE';

const subjectKey = (p: PseudonymousIdentity) => `SUBJECT#${p.type}:${p.pseudonym}`;
const restrictionKey = (requestId: string, system: string) => ({ pk: `REQ#${requestId}`, sk: `RESTRICTION#${system}` });

export interface SubjectRequest {
  readonly requestId: string;
  readonly type: RequestType;
  readonly receivedAt: string;
}

export interface BatchMember {
  readonly requestId: string;
  readonly action: TaskKind;
  readonly joinedAt: string;
}

export interface RestrictionItem {
  readonly sealed: string;
  readonly count: number;
  readonly liftedBy?: string;
}

type Extra = Record<string, string | number | boolean | Readonly<Record<string, number>> | undefined>;

export class RequestStore {
  readonly #table: string;

  constructor(table: string) {
    this.#table = table;
  }

  /** Store a new request; `false` when one with this id exists already (nothing is changed then). */
  async create(record: RequestRecord): Promise<boolean> {
    try {
      await dynamo.send(
        new PutCommand({
          TableName: this.#table,
          Item: { ...requestKey(record.requestId), ...record, month: monthOf(record.receivedAt), ...(!isFinalRequestStatus(record.status) && { open: OPEN }) },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw wrap('create request', error);
    }
  }

  async get(requestId: string): Promise<RequestRecord | undefined> {
    return (await this.getWithAuditHead(requestId))?.request;
  }

  /** The request, with the head of its audit chain (its last record's sequence number and hash) when it has one: one read. */
  async getWithAuditHead(requestId: string): Promise<{ request: RequestRecord; auditHead?: { seq: number; head: string; eventId: string } } | undefined> {
    const item = await this.#getItem(requestKey(requestId), 'read request');
    if (!item) return undefined;
    const { auditSeq: seq, auditHead: head, auditHeadEvent: eventId } = item;
    return {
      request: stripKeys<RequestRecord>(item),
      ...(typeof seq === 'number' && typeof head === 'string' && typeof eventId === 'string' && { auditHead: { seq, head, eventId } }),
    };
  }

  async mustGet(requestId: string): Promise<RequestRecord> {
    const record = await this.get(requestId);
    if (!record) throw new NotFoundError(`request ${requestId} does not exist`);
    return record;
  }

  /**
   * Move a request to `to` if the lifecycle allows it from where it is. Returns `false` when it
   * is there already; throws InvalidTransitionError when it is somewhere `to` cannot follow.
   */
  async transition(requestId: string, to: RequestStatus, extra: Extra = {}): Promise<boolean> {
    return this.#transition(requestKey(requestId), to, requestStatusesBefore(to), extra, `request ${requestId}`, { close: isFinalRequestStatus(to), foundNothing: extra['nothingFound'] === true });
  }

  /** Every request not yet final, by deadline, through the sparse Open index (what it projects). */
  async openRequests(): Promise<(ListedRequest & { reminded?: ReminderKind })[]> {
    const found: (ListedRequest & { reminded?: ReminderKind })[] = [];
    try {
      for await (const page of paginateQuery(
        { client: dynamo },
        { TableName: this.#table, IndexName: OPEN_INDEX, KeyConditionExpression: '#open = :open', ExpressionAttributeNames: { '#open': 'open' }, ExpressionAttributeValues: { ':open': OPEN } },
      )) {
        for (const item of page.Items ?? []) found.push({ ...listed(item, new Date()), ...(item['reminded'] ? { reminded: item['reminded'] as ReminderKind } : {}) });
      }
    } catch (error) {
      throw wrap('read open requests', error);
    }
    return found;
  }

  /** Record the reminder sent, unless another was recorded meanwhile or the request became final. */
  async markReminded(requestId: string, kind: ReminderKind, previous: ReminderKind | undefined): Promise<boolean> {
    try {
      await dynamo.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: requestKey(requestId),
          UpdateExpression: 'SET reminded = :kind',
          ConditionExpression: `attribute_exists(#open) AND ${previous ? 'reminded = :previous' : 'attribute_not_exists(reminded)'}`,
          ExpressionAttributeNames: { '#open': 'open' },
          ExpressionAttributeValues: { ':kind': kind, ...(previous && { ':previous': previous }) },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw wrap('record a reminder', error);
    }
  }

  /**
   * Extend a request's deadline: only from the deadline it has, only once, only while it is open.
   * False when another change came first (nothing is changed then).
   */
  async extendDeadline(requestId: string, change: { from: string; to: string; at: string; reason: string }): Promise<boolean> {
    try {
      await dynamo.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: requestKey(requestId),
          UpdateExpression: 'SET dueAt = :to, extendedAt = :at, extensionReason = :reason, updatedAt = :at REMOVE reminded',
          ConditionExpression: 'attribute_exists(#open) AND dueAt = :from AND attribute_not_exists(extendedAt)',
          ExpressionAttributeNames: { '#open': 'open' },
          ExpressionAttributeValues: { ':to': change.to, ':from': change.from, ':at': change.at, ':reason': change.reason },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw wrap('extend a deadline', error);
    }
  }

  /**
   * Requests, newest first, month by month of receipt through the ByMonth index, or, for the
   * overdue, most overdue first through the sparse Open index; filtered on what the indexes hold.
   * Never a scan. A page may hold fewer than `limit` while a cursor says there is more.
   */
  async list(query: ListQuery, now = new Date()): Promise<{ requests: ListedRequest[]; cursor?: string }> {
    const filters: string[] = [];
    const names: Record<string, string> = {};
    const values: Record<string, unknown> = {};
    for (const field of ['status', 'type', 'regulation'] as const) {
      const wanted = query[field];
      if (wanted === undefined) continue;
      names[`#${field}`] = field;
      values[`:${field}`] = wanted;
      filters.push(`#${field} = :${field}`);
    }
    const until = query.until ?? now.toISOString();
    const since = query.since ?? new Date(Date.UTC(now.getUTCFullYear() - 2, now.getUTCMonth(), 1)).toISOString();
    const position = decodeCursor(query.cursor);
    const requests: ListedRequest[] = [];
    let calls = 0;
    const page = async (input: Omit<QueryCommandInput, 'TableName'>) => {
      calls += 1;
      try {
        return await dynamo.send(new QueryCommand({ TableName: this.#table, ...input }));
      } catch (error) {
        throw wrap('list requests', error);
      }
    };
    if (query.overdue === true) {
      const out = await page({
        IndexName: OPEN_INDEX,
        KeyConditionExpression: '#open = :open AND dueAt < :now',
        FilterExpression: [...filters, 'receivedAt BETWEEN :since AND :until'].join(' AND '),
        ExpressionAttributeNames: { ...names, '#open': 'open' },
        ExpressionAttributeValues: { ...values, ':open': OPEN, ':now': now.toISOString(), ':since': since, ':until': until },
        Limit: query.limit,
        ...(position?.key && { ExclusiveStartKey: position.key }),
      });
      requests.push(...(out.Items ?? []).map((item) => listed(item, now)));
      return { requests, ...(out.LastEvaluatedKey && { cursor: encodeCursor({ key: out.LastEvaluatedKey }) }) };
    }
    if (query.overdue === false) {
      filters.push(`(#status IN (${FINAL_REQUEST_STATUSES.map((_, i) => `:final${String(i)}`).join(', ')}) OR dueAt >= :now)`);
      names['#status'] = 'status';
      FINAL_REQUEST_STATUSES.forEach((status, i) => (values[`:final${String(i)}`] = status));
      values[':now'] = now.toISOString();
    }
    let month = position?.month ?? monthOf(until);
    let key = position?.key;
    while (month >= monthOf(since) && requests.length < query.limit && calls < 24) {
      const out = await page({
        IndexName: BY_MONTH_INDEX,
        KeyConditionExpression: '#month = :month AND receivedAt BETWEEN :since AND :until',
        ...(filters.length > 0 && { FilterExpression: filters.join(' AND ') }),
        ExpressionAttributeNames: { ...names, '#month': 'month' },
        ExpressionAttributeValues: { ...values, ':month': month, ':since': since, ':until': until },
        ScanIndexForward: false,
        Limit: query.limit - requests.length,
        ...(key && { ExclusiveStartKey: key }),
      });
      requests.push(...(out.Items ?? []).map((item) => listed(item, now)));
      key = out.LastEvaluatedKey;
      if (!key) month = previousMonth(month);
    }
    const more = key !== undefined || month >= monthOf(since);
    return { requests, ...(more && { cursor: encodeCursor({ month, ...(key && { key }) }) }) };
  }

  /** These requests as the list shows them, in the order given (those that do not exist left out). */
  async getListed(requestIds: readonly string[], now = new Date()): Promise<ListedRequest[]> {
    const found = new Map<string, ListedRequest>();
    try {
      for (const item of await batchGetAll(this.#table, requestIds.map(requestKey))) found.set(String(item['requestId']), listed(item, now));
    } catch (error) {
      throw wrap('read requests', error);
    }
    return requestIds.flatMap((id) => found.get(id) ?? []);
  }

  /**
   * The same requests, each completed one saying whether it found nothing anywhere: read from the
   * requests themselves, since the list indexes do not project it (for exports).
   */
  async withNothingFound(requests: readonly ListedRequest[]): Promise<ListedRequest[]> {
    const completed = requests.filter((r) => r.status === 'completed');
    const found = new Set<string>();
    try {
      for (const item of await batchGetAll(this.#table, completed.map((r) => requestKey(r.requestId)))) if (item['nothingFound'] === true) found.add(String(item['requestId']));
    } catch (error) {
      throw wrap('read requests', error);
    }
    return requests.map((r) => ({ ...r, nothingFound: found.has(r.requestId) }));
  }

  /**
   * Every request received between `since` and `until`, month by month through the ByMonth
   * index (what it projects), for reports; at most `max` (more throws a ValidationError, so a
   * report never silently leaves requests out).
   */
  async receivedBetween(since: string, until: string, max: number, now = new Date()): Promise<ListedRequest[]> {
    const found: ListedRequest[] = [];
    try {
      for await (const page of this.#receivedPages(BY_MONTH_INDEX, 'month', since, until)) {
        for (const item of page.Items ?? []) found.push(listed(item, now));
        if (found.length > max) throw new ValidationError([{ path: 'since', message: `the period holds more than ${String(max)} requests: ask for a shorter one` }]);
      }
    } catch (error) {
      if (error instanceof ValidationError) throw error;
      throw wrap('read the requests of a period', error);
    }
    return found.sort((a, b) => a.receivedAt.localeCompare(b.receivedAt));
  }

  /** How many requests received between `since` and `until` completed with nothing found anywhere (the NothingFound index, counted page by page). */
  async countNothingFound(since: string, until: string): Promise<number> {
    let n = 0;
    try {
      for await (const page of this.#receivedPages(NOTHING_FOUND_INDEX, 'foundNothingIn', since, until, 'COUNT')) n += page.Count ?? 0;
    } catch (error) {
      throw wrap('count the requests that found nothing', error);
    }
    return n;
  }

  /** Every page of an index keyed by month of receipt and `receivedAt`, month by month, newest month first. */
  async *#receivedPages(index: string, monthKey: string, since: string, until: string, select?: 'COUNT'): AsyncGenerator<QueryCommandOutput> {
    for (let month = monthOf(until); month >= monthOf(since); month = previousMonth(month)) {
      yield* paginateQuery(
        { client: dynamo },
        {
          TableName: this.#table,
          IndexName: index,
          KeyConditionExpression: '#month = :month AND receivedAt BETWEEN :since AND :until',
          ExpressionAttributeNames: { '#month': monthKey },
          ExpressionAttributeValues: { ':month': month, ':since': since, ':until': until },
          ...(select && { Select: select }),
        },
      );
    }
  }

  /**
   * An operator's retry: a failed, partially failed or needs_review request, whose data key still exists, is
   * open again in round `round`, and its failed and needs_review tasks are pending again (their errors cleared);
   * what succeeded stays. One transaction, conditional on the request being where the caller
   * saw it. False when it was not (retried or shredded meanwhile).
   */
  async reopenFailed(requestId: string, round: number, failed: readonly Pick<TaskRecord, 'system' | 'action'>[], at: string): Promise<boolean> {
    if (failed.length > 99) throw new PermanentError(`request ${requestId} has ${String(failed.length)} failed tasks; a retry reopens at most 99 at once`);
    const previous = round - 1;
    try {
      await dynamo.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Update: {
                TableName: this.#table,
                Key: requestKey(requestId),
                UpdateExpression: 'SET #status = :running, #round = :round, #open = :open, updatedAt = :at REMOVE completedAt, shred, shredAt',
                ConditionExpression: `#status IN (:failed, :partially, :review) AND attribute_exists(wrappedDataKey) AND ${previous ? '#round = :previous' : 'attribute_not_exists(#round)'}`,
                ExpressionAttributeNames: { '#status': 'status', '#round': 'round', '#open': 'open' },
                ExpressionAttributeValues: {
                  ':running': 'in_progress',
                  ':round': round,
                  ':open': OPEN,
                  ':at': at,
                  ':failed': 'failed',
                  ':partially': 'partially_failed',
                  ':review': 'needs_review',
                  ...(previous && { ':previous': previous }),
                },
              },
            },
            ...failed.map((t) => ({
              Update: {
                TableName: this.#table,
                Key: taskKey(requestId, t.system, t.action),
                UpdateExpression:
                  'SET #status = :pending, #round = :round, roundStartAttempts = if_not_exists(attempts, :zero), updatedAt = :at REMOVE errorName, errorMessage, affected, remaining, nearMisses, taskToken, sealedJobs, jobs, deadlineAt, nextPollAt, nextHeartbeatAt, nextCheckAt, #callback',
                ConditionExpression: '#status IN (:failed, :review)',
                ExpressionAttributeNames: { '#status': 'status', '#round': 'round', '#callback': 'callback' },
                ExpressionAttributeValues: { ':pending': 'pending', ':round': round, ':zero': 0, ':at': at, ':failed': 'failed', ':review': 'needs_review' },
              },
            })),
          ],
        }),
      );
      return true;
    } catch (error) {
      const reasons = (error as { CancellationReasons?: { Code?: string }[] }).CancellationReasons ?? [];
      if (reasons.some((r) => r.Code === 'ConditionalCheckFailed')) return false;
      throw wrap('reopen a request', error);
    }
  }

  async putTaskIfAbsent(task: TaskRecord): Promise<void> {
    try {
      await dynamo.send(
        new PutCommand({
          TableName: this.#table,
          Item: { ...taskKey(task.requestId, task.system, task.action), ...task },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
    } catch (error) {
      if (!isConditionFailure(error)) throw wrap('create task', error);
    }
  }

  async tasks(requestId: string): Promise<TaskRecord[]> {
    return (await this.#itemsUnder(requestId, 'TASK#', 'read tasks')).map((item) => stripKeys<TaskRecord>(item));
  }

  async task(requestId: string, system: string, action: TaskKind): Promise<TaskRecord | undefined> {
    const item = await this.#getItem(taskKey(requestId, system, action), 'read task');
    return item ? stripKeys<TaskRecord>(item) : undefined;
  }

  /** Linked identities a system resolved for the request, sealed under the request's data key. */
  async putLinks(requestId: string, system: string, sealed: string, count: number): Promise<void> {
    try {
      await dynamo.send(
        new PutCommand({ TableName: this.#table, Item: { pk: `REQ#${requestId}`, sk: `LINK#${system}`, system, sealed, count } }),
      );
    } catch (error) {
      throw wrap('store linked identities', error);
    }
  }

  /** Every system's sealed linked identities for the request. */
  async links(requestId: string): Promise<{ system: string; sealed: string }[]> {
    const items = await this.#itemsUnder(requestId, 'LINK#', 'read linked identities');
    return items.map((i) => ({ system: String(i['system']), sealed: String(i['sealed']) }));
  }

  /**
   * Index a request under each of its subject's pseudonyms (`SUBJECT#<type>:<pseudonym>`), so a
   * later request of the same subject finds it: a withdraw, the restrictions it lifts.
   */
  async indexSubject(record: Pick<RequestRecord, 'requestId' | 'type' | 'receivedAt' | 'pseudonyms'>): Promise<void> {
    try {
      for (const p of record.pseudonyms) {
        await dynamo.send(
          new PutCommand({
            TableName: this.#table,
            Item: { pk: subjectKey(p), sk: `REQ#${record.receivedAt}#${record.requestId}`, requestId: record.requestId, type: record.type, receivedAt: record.receivedAt },
          }),
        );
      }
    } catch (error) {
      throw wrap('index the subject', error);
    }
  }

  /** The requests of the subject any of these pseudonyms names, oldest first, each once. */
  async requestsOfSubject(pseudonyms: readonly PseudonymousIdentity[]): Promise<SubjectRequest[]> {
    const found = new Map<string, SubjectRequest>();
    try {
      for (const p of pseudonyms) {
        const pages = paginateQuery(
          { client: dynamo },
          { TableName: this.#table, KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': subjectKey(p) }, ConsistentRead: true },
        );
        for await (const page of pages) {
          for (const i of page.Items ?? []) {
            found.set(String(i['requestId']), { requestId: String(i['requestId']), type: i['type'] as RequestType, receivedAt: String(i['receivedAt']) });
          }
        }
      }
    } catch (error) {
      throw wrap('read the requests of a subject', error);
    }
    return [...found.values()].sort((a, b) => a.receivedAt.localeCompare(b.receivedAt));
  }

  /**
   * What a restrict request restricted in a system, sealed under its data key; `liftedBy` is the
   * withdraw that lifted it.
   */
  async restriction(requestId: string, system: string): Promise<RestrictionItem | undefined> {
    const item = await this.#getItem(restrictionKey(requestId, system), 'read a restriction');
    if (!item) return undefined;
    const liftedBy = typeof item['liftedBy'] === 'string' ? item['liftedBy'] : undefined;
    return { sealed: String(item['sealed']), count: Number(item['count']), ...(liftedBy ? { liftedBy } : {}) };
  }

  async putRestriction(requestId: string, system: string, sealed: string, count: number): Promise<void> {
    try {
      await dynamo.send(new PutCommand({ TableName: this.#table, Item: { ...restrictionKey(requestId, system), system, sealed, count } }));
    } catch (error) {
      throw wrap('record a restriction', error);
    }
  }

  /** Mark a restriction lifted by a withdraw (again by the same one is fine; by another, not). */
  async markLifted(requestId: string, system: string, liftedBy: string): Promise<void> {
    try {
      await dynamo.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: restrictionKey(requestId, system),
          UpdateExpression: 'SET liftedBy = :by, liftedAt = if_not_exists(liftedAt, :now)',
          ConditionExpression: 'attribute_exists(pk) AND (attribute_not_exists(liftedBy) OR liftedBy = :by)',
          ExpressionAttributeValues: { ':by': liftedBy, ':now': new Date().toISOString() },
        }),
      );
    } catch (error) {
      if (isConditionFailure(error)) return;
      throw wrap('mark a restriction lifted', error);
    }
  }

  /**
   * Tasks waiting on a vendor whose next poll or heartbeat is due by `now`, soonest first, page by
   * page until the last, through the sparse `Waiting` index (only waiting tasks carry its key).
   */
  async *dueWaitingTasks(now: string, pageSize = 100): AsyncGenerator<TaskRecord[]> {
    try {
      for await (const page of paginateQuery(
        { client: dynamo, pageSize },
        {
          TableName: this.#table,
          IndexName: WAITING_INDEX,
          KeyConditionExpression: 'waiting = :waiting AND nextCheckAt <= :now',
          ExpressionAttributeValues: { ':waiting': WAITING, ':now': now },
        },
      )) {
        yield (page.Items ?? []).map((item) => stripKeys<TaskRecord>(item));
      }
    } catch (error) {
      throw wrap('read the tasks waiting on vendors', error);
    }
  }

  /**
   * The saga sent a waiting task again, with a new token (its heartbeat lapsed): keep that token
   * instead of `previous`, due for a heartbeat now. False when the task is no longer waiting, or
   * another delivery replaced the token first.
   */
  async replaceTaskToken(task: Pick<TaskRecord, 'requestId' | 'system' | 'action'>, previous: string, taskToken: string): Promise<boolean> {
    const now = new Date().toISOString();
    try {
      await dynamo.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: taskKey(task.requestId, task.system, task.action),
          UpdateExpression: 'SET taskToken = :token, nextHeartbeatAt = :now, nextCheckAt = :now',
          ConditionExpression: '#status = :waiting AND taskToken = :previous',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: { ':token': taskToken, ':now': now, ':waiting': 'waiting_on_vendor', ':previous': previous },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw wrap('replace a task token', error);
    }
  }

  /**
   * Claim a task for one attempt: move it to `running` under a lease held by `owner` for
   * `leaseSeconds`, from `pending` or `dispatched`, or from `running` when the lease of an attempt
   * that died has run out. Another live attempt (a duplicate delivery) holds it: `busy`, with when
   * its lease ends. Anything else: the task as it stands (final, or waiting on a vendor).
   */
  async claimTask(
    requestId: string,
    system: string,
    action: TaskKind,
    owner: string,
    leaseSeconds: number,
  ): Promise<{ claimed: true; first: boolean; attempts: number } | { claimed: false; busyUntil?: string; task?: TaskRecord }> {
    const now = new Date();
    try {
      const out = await dynamo.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: taskKey(requestId, system, action),
          UpdateExpression: 'SET #status = :running, updatedAt = :now, leaseOwner = :owner, leaseUntil = :until, attempts = if_not_exists(attempts, :zero) + :one',
          ConditionExpression: 'attribute_exists(pk) AND (#status IN (:pending, :dispatched) OR (#status = :running AND (attribute_not_exists(leaseUntil) OR leaseUntil < :now)))',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: {
            ':running': 'running',
            ':pending': 'pending',
            ':dispatched': 'dispatched',
            ':now': now.toISOString(),
            ':owner': owner,
            ':until': new Date(now.getTime() + leaseSeconds * 1000).toISOString(),
            ':zero': 0,
            ':one': 1,
          },
          ReturnValues: 'ALL_OLD',
        }),
      );
      // This round's attempts that ran, this one included: a delivery that found the task held spent none.
      const old = out.Attributes ?? {};
      return { claimed: true, first: old['status'] !== 'running', attempts: Number(old['attempts'] ?? 0) + 1 - Number(old['roundStartAttempts'] ?? 0) };
    } catch (error) {
      if (!isConditionFailure(error)) throw wrap(`claim task ${system}/${action}`, error);
      const item = await this.#getItem(taskKey(requestId, system, action), 'read task');
      if (!item) throw new NotFoundError(`task ${system}/${action} does not exist`, { cause: error });
      if (item['status'] === 'running') return { claimed: false, busyUntil: item['leaseUntil'] as string };
      return { claimed: false, task: stripKeys<TaskRecord>(item) };
    }
  }

  /**
   * Extend (a live attempt's heartbeat) or end (`seconds` 0: it failed and will be retried) the
   * lease `owner` holds on a running task. False when it no longer holds one.
   */
  async renewLease(task: Pick<TaskRecord, 'requestId' | 'system' | 'action'>, owner: string, seconds: number): Promise<boolean> {
    try {
      await dynamo.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: taskKey(task.requestId, task.system, task.action),
          UpdateExpression: 'SET leaseUntil = :until',
          ConditionExpression: '#status = :running AND leaseOwner = :owner',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: { ':until': new Date(Date.now() + seconds * 1000).toISOString(), ':running': 'running', ':owner': owner },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw wrap('renew a task lease', error);
    }
  }

  /** When a waiting task is next polled or kept alive; only while it still waits. */
  async scheduleWaiting(
    task: Pick<TaskRecord, 'requestId' | 'system' | 'action'>,
    at: { nextPollAt: string; nextHeartbeatAt: string; sealedJobs?: string },
  ): Promise<boolean> {
    const nextCheckAt = at.nextPollAt < at.nextHeartbeatAt ? at.nextPollAt : at.nextHeartbeatAt;
    try {
      await dynamo.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: taskKey(task.requestId, task.system, task.action),
          UpdateExpression: `SET nextPollAt = :poll, nextHeartbeatAt = :beat, nextCheckAt = :check${at.sealedJobs ? ', sealedJobs = :jobs' : ''}`,
          ConditionExpression: '#status = :waiting',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: {
            ':poll': at.nextPollAt,
            ':beat': at.nextHeartbeatAt,
            ':check': nextCheckAt,
            ':waiting': 'waiting_on_vendor',
            ...(at.sealedJobs ? { ':jobs': at.sealedJobs } : {}),
          },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw wrap('schedule a waiting task', error);
    }
  }

  /**
   * Keep a service's report on a task's job, while the task runs (a fast service may call back
   * before the worker has recorded the wait) or waits, and set when the worker is next due to
   * settle it. The first report stands: false when the task is neither or has one already.
   */
  async recordCallback(task: Pick<TaskRecord, 'requestId' | 'system' | 'action' | 'nextHeartbeatAt'>, report: JobReport, nextPollAt: string): Promise<boolean> {
    const beat = task.nextHeartbeatAt ?? nextPollAt;
    try {
      await dynamo.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: taskKey(task.requestId, task.system, task.action),
          UpdateExpression: 'SET #callback = :report, nextPollAt = :poll, nextCheckAt = :check',
          ConditionExpression: '#status IN (:running, :waiting) AND attribute_not_exists(#callback)',
          ExpressionAttributeNames: { '#status': 'status', '#callback': 'callback' },
          ExpressionAttributeValues: {
            ':report': report,
            ':poll': nextPollAt,
            ':check': nextPollAt < beat ? nextPollAt : beat,
            ':running': 'running',
            ':waiting': 'waiting_on_vendor',
          },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw wrap('record a callback', error);
    }
  }

  /**
   * Count a request's subject once against a dataset built from data it was erased from. Returns
   * whether the taint is still to be announced (new, or a retry after a failed announcement), and
   * how many subjects have tainted the dataset since it was last rebuilt (`DATASET#<name>`:
   * `STATE`, and `TAINT#<requestId>` per request).
   */
  async taintDataset(dataset: string, requestId: string, at: string): Promise<{ announce: boolean; subjects: number; since: string }> {
    let announce = true;
    try {
      await dynamo.send(
        new TransactWriteCommand({
          TransactItems: [
            { Put: { TableName: this.#table, Item: { pk: `DATASET#${dataset}`, sk: `TAINT#${requestId}`, at, announced: false }, ConditionExpression: 'attribute_not_exists(pk)' } },
            {
              Update: {
                TableName: this.#table,
                Key: { pk: `DATASET#${dataset}`, sk: 'STATE' },
                UpdateExpression: 'ADD subjects :one SET since = if_not_exists(since, :at), lastAt = :at',
                ExpressionAttributeValues: { ':one': 1, ':at': at },
              },
            },
          ],
        }),
      );
    } catch (error) {
      // Cancelled because this request's taint is there already: counted before.
      const reasons = (error as { CancellationReasons?: { Code?: string }[] }).CancellationReasons;
      if (reasons?.[0]?.Code !== 'ConditionalCheckFailed') throw wrap('taint a dataset', error);
      announce = (await this.#getItem({ pk: `DATASET#${dataset}`, sk: `TAINT#${requestId}` }, 'read a taint'))?.['announced'] !== true;
    }
    const state = await this.#getItem({ pk: `DATASET#${dataset}`, sk: 'STATE' }, 'read a dataset');
    return { announce, subjects: Number(state?.['subjects'] ?? 0), since: (state?.['since'] as string | undefined) ?? at };
  }

  async markTaintAnnounced(dataset: string, requestId: string): Promise<void> {
    try {
      await dynamo.send(new UpdateCommand({ TableName: this.#table, Key: { pk: `DATASET#${dataset}`, sk: `TAINT#${requestId}` }, UpdateExpression: 'SET announced = :yes', ExpressionAttributeValues: { ':yes': true } }));
    } catch (error) {
      throw wrap('mark a taint announced', error);
    }
  }

  /** Where each dataset stands: subjects erased from its sources since it was last rebuilt. */
  async datasetState(dataset: string): Promise<{ subjects: number; since?: string; lastAt?: string; rebuiltAt?: string }> {
    const state = await this.#getItem({ pk: `DATASET#${dataset}`, sk: 'STATE' }, 'read a dataset');
    return {
      subjects: Number(state?.['subjects'] ?? 0),
      ...(typeof state?.['since'] === 'string' && { since: state['since'] }),
      ...(typeof state?.['lastAt'] === 'string' && { lastAt: state['lastAt'] }),
      ...(typeof state?.['rebuiltAt'] === 'string' && { rebuiltAt: state['rebuiltAt'] }),
    };
  }

  /** A dataset was rebuilt without the erased subjects: its count starts again. */
  async datasetRebuilt(dataset: string, at: string): Promise<void> {
    try {
      await dynamo.send(
        new UpdateCommand({ TableName: this.#table, Key: { pk: `DATASET#${dataset}`, sk: 'STATE' }, UpdateExpression: 'SET subjects = :zero, rebuiltAt = :at REMOVE since', ExpressionAttributeValues: { ':zero': 0, ':at': at } }),
      );
    } catch (error) {
      throw wrap('mark a dataset rebuilt', error);
    }
  }

  /**
   * Every subject, as `<type>:<pseudonym>`, whose data must not be used: asked for erasure (ever),
   * or opted out with no later withdraw. Read from the subject index with a Scan: meant for the
   * occasional offline filtering of a dataset, not for a request path.
   */
  async suppressedSubjects(): Promise<Set<string>> {
    const bySubject = new Map<string, { type: string; receivedAt: string }[]>();
    try {
      for await (const page of paginateScan(
        { client: dynamo },
        { TableName: this.#table, FilterExpression: 'begins_with(pk, :subject)', ExpressionAttributeValues: { ':subject': 'SUBJECT#' }, ConsistentRead: true },
      )) {
        for (const item of page.Items ?? []) {
          const key = (item['pk'] as string).slice('SUBJECT#'.length);
          bySubject.set(key, [...(bySubject.get(key) ?? []), { type: item['type'] as string, receivedAt: item['receivedAt'] as string }]);
        }
      }
    } catch (error) {
      throw wrap('read the subject index', error);
    }
    const out = new Set<string>();
    for (const [key, requests] of bySubject) {
      const optOuts = requests.filter((r) => r.type === 'opt_out' || r.type === 'withdraw').sort((a, b) => a.receivedAt.localeCompare(b.receivedAt));
      if (requests.some((r) => r.type === 'erasure') || optOuts.at(-1)?.type === 'opt_out') out.add(key);
    }
    return out;
  }

  /** Final requests whose data key is due to be destroyed by `now`, soonest first, page by page until the last, through the sparse Shred index. */
  async *dueForShredding(now: string, pageSize = 100): AsyncGenerator<RequestRecord[]> {
    try {
      for await (const page of paginateQuery(
        { client: dynamo, pageSize },
        {
          TableName: this.#table,
          IndexName: SHRED_INDEX,
          KeyConditionExpression: 'shred = :due AND shredAt <= :now',
          ExpressionAttributeValues: { ':due': SHRED_DUE, ':now': now },
        },
      )) {
        yield (page.Items ?? []).map((item) => stripKeys<RequestRecord>(item));
      }
    } catch (error) {
      throw wrap('read the requests due for shredding', error);
    }
  }

  /**
   * Destroy a request's data key: its sealed identities (and everything else sealed under it) can
   * no longer be opened by anyone. Only while the request is still final and due (a retry that
   * reopened it since it was listed keeps its key) and, unless it completed or was cancelled, past
   * its deadline (a failure may be retried until then). False when any of that no longer holds, or
   * the key was destroyed already.
   */
  async shredDataKey(requestId: string, at: string): Promise<boolean> {
    const retryable = RETRYABLE_REQUEST_STATUSES;
    const settled = FINAL_REQUEST_STATUSES.filter((s) => !retryable.includes(s));
    try {
      await dynamo.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: requestKey(requestId),
          UpdateExpression: 'REMOVE wrappedDataKey, shred, shredAt SET shreddedAt = :at',
          ConditionExpression: `attribute_exists(wrappedDataKey) AND shred = :due AND shredAt <= :at AND (#status IN (${settled.map((_, i) => `:settled${String(i)}`).join(', ')}) OR (#status IN (${retryable.map((_, i) => `:retryable${String(i)}`).join(', ')}) AND dueAt <= :at))`,
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: {
            ':at': at,
            ':due': SHRED_DUE,
            ...Object.fromEntries(settled.map((s, i) => [`:settled${String(i)}`, s])),
            ...Object.fromEntries(retryable.map((s, i) => [`:retryable${String(i)}`, s])),
          },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw wrap('destroy a data key', error);
    }
  }

  /** Check a request again later for shredding. */
  async postponeShredding(requestId: string, until: string): Promise<void> {
    try {
      await dynamo.send(new UpdateCommand({ TableName: this.#table, Key: requestKey(requestId), UpdateExpression: 'SET shredAt = :until', ExpressionAttributeValues: { ':until': until } }));
    } catch (error) {
      throw wrap('postpone shredding', error);
    }
  }

  /** The systems where this (restrict) request recorded a restriction that no withdraw has lifted. */
  async unliftedRestrictions(requestId: string): Promise<string[]> {
    const items = await this.#itemsUnder(requestId, 'RESTRICTION#', 'read restrictions');
    return items.filter((i) => i['liftedBy'] === undefined).map((i) => (i['sk'] as string).slice('RESTRICTION#'.length));
  }

  // Batches: tasks of a system that wait to be done together (a data lake rewrite), under
  // `pk = BATCH#<system>`: `M#<requestId>#<action>` per member, `LOCK` while a worker runs the batch.

  /** Join the system's batch (again: no change). */
  /** Join the system's batch; false when the task is a member already. */
  async joinBatch(system: string, requestId: string, action: TaskKind): Promise<boolean> {
    try {
      await dynamo.send(
        new PutCommand({
          TableName: this.#table,
          Item: { pk: `BATCH#${system}`, sk: `M#${requestId}#${action}`, requestId, action, joinedAt: new Date().toISOString() },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
      return true;
    } catch (error) {
      if (!isConditionFailure(error)) throw wrap('join a batch', error);
      return false;
    }
  }

  /** The batch's members, those who joined first first. */
  async batchMembers(system: string): Promise<BatchMember[]> {
    const items = await this.#itemsOf(`BATCH#${system}`, 'M#', 'read a batch');
    return items.map((i) => ({ requestId: i['requestId'] as string, action: i['action'] as TaskKind, joinedAt: i['joinedAt'] as string })).sort((a, b) => a.joinedAt.localeCompare(b.joinedAt));
  }

  /** Whether at least `n` members wait in the batch: counted a page at a time, not read. */
  async batchHasAtLeast(system: string, n: number): Promise<boolean> {
    let count = 0;
    let start: Record<string, unknown> | undefined;
    try {
      do {
        const out = await dynamo.send(
          new QueryCommand({
            TableName: this.#table,
            KeyConditionExpression: 'pk = :pk AND begins_with(sk, :m)',
            ExpressionAttributeValues: { ':pk': `BATCH#${system}`, ':m': 'M#' },
            Select: 'COUNT', // no Limit: DynamoDB Local fails COUNT with a Limit; a page is counted, not returned
            ConsistentRead: true,
            ...(start && { ExclusiveStartKey: start }),
          }),
        );
        count += out.Count ?? 0;
        start = out.LastEvaluatedKey;
      } while (start && count < n);
    } catch (error) {
      throw wrap('count a batch', error);
    }
    return count >= n;
  }

  async leaveBatch(system: string, requestId: string, action: TaskKind): Promise<void> {
    try {
      await dynamo.send(new DeleteCommand({ TableName: this.#table, Key: { pk: `BATCH#${system}`, sk: `M#${requestId}#${action}` } }));
    } catch (error) {
      throw wrap('leave a batch', error);
    }
  }

  /** Take the batch's lock for `seconds` (a crashed holder's lock lapses); false when another worker holds it. */
  async lockBatch(system: string, owner: string, seconds: number): Promise<boolean> {
    const now = new Date();
    try {
      await dynamo.send(
        new PutCommand({
          TableName: this.#table,
          Item: { pk: `BATCH#${system}`, sk: 'LOCK', owner, until: new Date(now.getTime() + seconds * 1000).toISOString() },
          ConditionExpression: 'attribute_not_exists(pk) OR #until < :now',
          ExpressionAttributeNames: { '#until': 'until' },
          ExpressionAttributeValues: { ':now': now.toISOString() },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw wrap('lock a batch', error);
    }
  }

  /** Extend the batch's lock by `seconds` from now; false when it lapsed and another worker took it. */
  async renewBatch(system: string, owner: string, seconds: number): Promise<boolean> {
    try {
      await dynamo.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: { pk: `BATCH#${system}`, sk: 'LOCK' },
          UpdateExpression: 'SET #until = :until',
          ConditionExpression: '#owner = :owner',
          ExpressionAttributeNames: { '#until': 'until', '#owner': 'owner' },
          ExpressionAttributeValues: { ':until': new Date(Date.now() + seconds * 1000).toISOString(), ':owner': owner },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw wrap('renew a batch lock', error);
    }
  }

  async unlockBatch(system: string, owner: string): Promise<void> {
    try {
      await dynamo.send(
        new DeleteCommand({ TableName: this.#table, Key: { pk: `BATCH#${system}`, sk: 'LOCK' }, ConditionExpression: '#owner = :owner', ExpressionAttributeNames: { '#owner': 'owner' }, ExpressionAttributeValues: { ':owner': owner } }),
      );
    } catch (error) {
      if (!isConditionFailure(error)) throw wrap('unlock a batch', error);
    }
  }

  /** Every item of a request whose sort key starts with `prefix`, read consistently. */
  async #itemsUnder(requestId: string, prefix: string, what: string): Promise<Record<string, unknown>[]> {
    return this.#itemsOf(`REQ#${requestId}`, prefix, what);
  }

  /** Every item of a partition whose sort key starts with `prefix`, read consistently. */
  async #itemsOf(pk: string, prefix: string, what: string): Promise<Record<string, unknown>[]> {
    const items: Record<string, unknown>[] = [];
    try {
      const pages = paginateQuery(
        { client: dynamo },
        {
          TableName: this.#table,
          KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
          ExpressionAttributeValues: { ':pk': pk, ':prefix': prefix },
          ConsistentRead: true,
        },
      );
      for await (const page of pages) items.push(...(page.Items ?? []));
    } catch (error) {
      throw wrap(what, error);
    }
    return items;
  }

  async #getItem(key: { pk: string; sk: string }, what: string): Promise<Record<string, unknown> | undefined> {
    try {
      const out = await dynamo.send(new GetCommand({ TableName: this.#table, Key: key, ConsistentRead: true }));
      return out.Item;
    } catch (error) {
      throw wrap(what, error);
    }
  }

  async transitionTask(
    requestId: string,
    system: string,
    action: TaskKind,
    to: TaskStatus,
    extra: Extra = {},
  ): Promise<boolean> {
    return this.#transition(taskKey(requestId, system, action), to, taskStatusesBefore(to), extra, `task ${system}/${action}`, {
      attempts: to === 'running',
      // Only a task waiting on a vendor is in the Waiting index.
      ...(to === 'waiting_on_vendor' ? { waiting: true } : { unwait: to === 'succeeded' || to === 'failed' || to === 'needs_review' }),
    });
  }

  async #transition(
    key: { pk: string; sk: string },
    to: string,
    from: readonly string[],
    extra: Extra,
    what: string,
    options: { attempts?: boolean; waiting?: boolean; unwait?: boolean; close?: boolean; foundNothing?: boolean } = {},
  ): Promise<boolean> {
    if (from.length === 0) {
      // Nothing may move to `to` (it is an initial status): it is either where the record is, or wrong.
      const current = (await this.#getItem(key, `read ${what}`))?.['status'] as string | undefined;
      if (current === undefined) throw new NotFoundError(`${what} does not exist`);
      if (current === to) return false;
      throw new InvalidTransitionError(`${what} cannot move from ${current} to ${to}`);
    }
    const sets = ['#status = :to', 'updatedAt = :now'];
    const values: Record<string, unknown> = { ':to': to, ':now': new Date().toISOString() };
    const names: Record<string, string> = { '#status': 'status', ...(options.close && { '#open': 'open' }) };
    Object.entries(extra).forEach(([name, value], i) => {
      if (value === undefined) return;
      names[`#x${String(i)}`] = name;
      values[`:x${String(i)}`] = value;
      sets.push(`#x${String(i)} = :x${String(i)}`);
    });
    if (options.attempts) {
      sets.push('attempts = if_not_exists(attempts, :zero) + :one');
      values[':zero'] = 0;
      values[':one'] = 1;
    }
    if (options.foundNothing) {
      // Into the NothingFound index, under the request's month of receipt.
      sets.push('foundNothingIn = #month');
      names['#month'] = 'month';
    }
    if (options.waiting) {
      sets.push('waiting = :waiting');
      values[':waiting'] = WAITING;
    }
    from.forEach((status, i) => (values[`:from${String(i)}`] = status));
    try {
      await dynamo.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: key,
          UpdateExpression: `SET ${sets.join(', ')}${options.unwait ? ' REMOVE waiting, nextCheckAt' : ''}${options.close ? ' REMOVE #open' : ''}`,
          ConditionExpression: `attribute_exists(pk) AND #status IN (${from.map((_, i) => `:from${String(i)}`).join(', ')})`,
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      );
      return true;
    } catch (error) {
      if (!isConditionFailure(error)) throw wrap(`update ${what}`, error);
      const current = (error as { Item?: Record<string, { S?: string }> }).Item?.['status']?.S;
      if (current === undefined) throw new NotFoundError(`${what} does not exist`, { cause: error });
      if (current === to) return false;
      throw new InvalidTransitionError(`${what} cannot move from ${current} to ${to}`, { cause: error });
    }
  }
}

export function isConditionFailure(error: unknown): boolean {
  return (error as { name?: string }).name === 'ConditionalCheckFailedException';
}

const wrap = (what: string, error: unknown) => classifyStoreError(`requests table: ${what}`, error);

function stripKeys<T>(item: Record<string, unknown>): T {
  const { pk: _pk, sk: _sk, auditSeq: _s, auditHead: _h, auditHeadEvent: _e, waiting: _w, nextCheckAt: _c, shred: _d, shredAt: _a, month: _m, open: _o, leaseOwner: _lo, leaseUntil: _lu, ...rest } = item;
  return rest as T;
}

/** A query of `GET /v1/requests`. */
export interface ListQuery {
  readonly status?: RequestStatus | undefined;
  readonly type?: RequestType | undefined;
  readonly regulation?: Regulation | undefined;
  readonly overdue?: boolean | undefined;
  /** Received at or after (ISO 8601); default: two years back, to the first of the month. */
  readonly since?: string | undefined;
  /** Received at or before (ISO 8601); default: now. */
  readonly until?: string | undefined;
  readonly limit: number;
  readonly cursor?: string | undefined;
}

const OPEN = 'OPEN';
const monthOf = (iso: string) => `REQ#${iso.slice(0, 7)}`;
function previousMonth(month: string): string {
  const [y, m] = month.slice(4).split('-').map(Number) as [number, number];
  return monthOf(new Date(Date.UTC(y, m - 2, 1)).toISOString());
}

function listed(item: Record<string, unknown>, now: Date): ListedRequest {
  const r = item as unknown as RequestRecord;
  return {
    requestId: r.requestId,
    type: r.type,
    regulation: r.regulation,
    status: r.status,
    receivedAt: r.receivedAt,
    dueAt: r.dueAt,
    overdue: isOverdue(r, now),
    completedAt: r.completedAt ?? null,
    ...(r.acknowledgeBy && { acknowledgeBy: r.acknowledgeBy }),
    ...(r.extendedAt && { extendedAt: r.extendedAt }),
    ...(r.nothingFound && { nothingFound: true }),
  };
}

/** Where a listing stopped: the month it was in and DynamoDB's key there, opaque to callers. */
function encodeCursor(position: { month?: string; key?: Record<string, unknown> }): string {
  return Buffer.from(JSON.stringify(position)).toString('base64url');
}

function decodeCursor(cursor: string | undefined): { month?: string; key?: Record<string, unknown> } | undefined {
  if (cursor === undefined) return undefined;
  try {
    const position = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { month?: unknown; key?: unknown };
    if ((position.month === undefined || (typeof position.month === 'string' && /^REQ#\d{4}-\d{2}$/.test(position.month))) && (position.key === undefined || (typeof position.key === 'object' && position.key !== null))) {
      return position as { month?: string; key?: Record<string, unknown> };
    }
  } catch {
    // fall through
  }
  throw new ValidationError([{ path: 'cursor', message: 'is not a cursor this API gave' }]);
}
