import {
  BatchWriteCommand,
  GetCommand,
  paginateQuery,
  UpdateCommand,
  type DynamoDBDocumentClient,
} from '@aws-sdk/lib-dynamodb';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConnectorPermanentError, ConnectorRetryableError } from '#core/errors';
import { formsOf, type Identity } from '#core/identity';
import { nearMissReason, NearMissTally, wideSpellings } from '#core/near-miss';
import type { Connector, ConnectorCommand, ConnectorResult, Verification } from '#core/ports';
import type { Action } from '#core/request';
import { classifyAwsError } from '../aws-errors.ts';
import { DYNAMODB_ACTIONS, type DynamoDbSettings, type DynamoDbTable } from './settings.ts';

type Key = Record<string, unknown>;

/** BatchWriteItem's limit. */
const BATCH = 25;
const BATCH_ATTEMPTS = 8;

/** How a lookup spells the subject's value: the action's forms, or the wider net's. */
type Spell = (identity: Identity) => string[];

/**
 * Deletes or anonymizes a subject's items in the DynamoDB tables of one system. Items are found by
 * querying a table (identity in the partition key) or a GSI (identity in another attribute), never
 * by a scan, with the subject's value and every form it was submitted in; deletes go 25 to a
 * BatchWriteItem, unprocessed items retried with backoff. `verify` also asks for the value in other
 * case and Unicode forms: items found so are near-misses.
 */
export class DynamoDbConnector implements Connector {
  readonly kind = 'dynamodb';
  readonly #db: DynamoDBDocumentClient;
  readonly #s: DynamoDbSettings;

  constructor(db: DynamoDBDocumentClient, settings: DynamoDbSettings) {
    this.#db = db;
    this.#s = settings;
  }

  describe(): { actions: readonly Action[] } {
    return { actions: DYNAMODB_ACTIONS };
  }

  /** DynamoDB systems provide no linked identities yet. */
  resolve(): Promise<Identity[]> {
    return Promise.resolve([]);
  }

  async run(command: ConnectorCommand): Promise<ConnectorResult> {
    let affected = 0;
    for (const table of this.#s.tables) {
      const keys = [...(await this.#findKeys(table, command.identities, formsOf)).values()].map((f) => f.key);
      if (command.action === 'delete') {
        affected += await this.#deleteAll(table, keys);
      } else if (command.action === 'anonymize') {
        for (const key of keys) if (await this.#anonymizeItem(table, key)) affected += 1;
      } else {
        throw new ConnectorPermanentError(`dynamodb connector cannot ${command.action}`);
      }
    }
    return { affected };
  }

  /**
   * Items of the subject that still exist (delete) or still hold an anonymized attribute
   * (anonymize). Index reads are eventually consistent and may not project those attributes, so
   * every item found is read again from the table with a consistent read.
   */
  async verify(command: ConnectorCommand): Promise<Verification> {
    if (command.action !== 'delete' && command.action !== 'anonymize') {
      throw new ConnectorPermanentError(`dynamodb connector cannot verify ${command.action}`);
    }
    let remaining = 0;
    const nearMisses = new NearMissTally();
    for (const table of this.#s.tables) {
      const attributes = command.action === 'anonymize' ? table.anonymize : [];
      const left = async (key: Key) => {
        const item = await this.#read(table, key, attributes);
        return Boolean(item && (command.action === 'delete' || attributes.some((a) => item[a] !== undefined)));
      };
      const mine = await this.#findKeys(table, command.identities, formsOf);
      for (const { key } of mine.values()) if (await left(key)) remaining += 1;
      for (const [id, { key, spelling }] of await this.#findKeys(table, command.identities, wideSpellings)) {
        if (mine.has(id) || !(await left(key))) continue;
        nearMisses.add(nearMissReason(spelling));
      }
    }
    return nearMisses.result(remaining);
  }

  /** Primary keys of the subject's items in one table, through every lookup an identity fits, each with the spelling that found it. */
  async #findKeys(t: DynamoDbTable, identities: readonly Identity[], spell: Spell): Promise<Map<string, { key: Key; spelling: string }>> {
    const found = new Map<string, { key: Key; spelling: string }>();
    for (const lookup of t.lookups) {
      for (const spelling of identities.filter((i) => i.type === lookup.identity).flatMap(spell)) {
        const names: Record<string, string> = { '#k': lookup.attribute, '#pk': t.partitionKey };
        if (t.sortKey) names['#sk'] = t.sortKey;
        const pages = paginateQuery(
          { client: this.#db },
          {
            TableName: t.table,
            IndexName: lookup.index,
            KeyConditionExpression: '#k = :v',
            ExpressionAttributeNames: names,
            ExpressionAttributeValues: { ':v': spelling },
            ProjectionExpression: t.sortKey ? '#pk, #sk' : '#pk',
          },
        );
        try {
          for await (const page of pages) {
            for (const item of page.Items ?? []) {
              const key: Key = { [t.partitionKey]: item[t.partitionKey] as unknown };
              if (t.sortKey) key[t.sortKey] = item[t.sortKey];
              found.set(JSON.stringify(key), { key, spelling });
            }
          }
        } catch (error) {
          throw classifyAwsError(`dynamodb table ${t.table}${lookup.index ? ` index ${lookup.index}` : ''}`, error);
        }
      }
    }
    return found;
  }

  /** Delete in batches of 25; the count is the items found, each of which existed when found. */
  async #deleteAll(t: DynamoDbTable, keys: readonly Key[]): Promise<number> {
    for (let i = 0; i < keys.length; i += BATCH) {
      let pending = keys.slice(i, i + BATCH).map((Key) => ({ DeleteRequest: { Key } }));
      for (let attempt = 0; pending.length > 0; attempt += 1) {
        if (attempt === BATCH_ATTEMPTS) {
          throw new ConnectorRetryableError(`dynamodb table ${t.table}: ${String(pending.length)} deletes left unprocessed`);
        }
        if (attempt > 0) await sleep(Math.min(50 * 2 ** attempt, 2000) * (0.5 + Math.random() / 2));
        try {
          const out = await this.#db.send(new BatchWriteCommand({ RequestItems: { [t.table]: pending } }));
          pending = (out.UnprocessedItems?.[t.table] ?? []) as typeof pending;
        } catch (error) {
          throw classifyAwsError(`dynamodb table ${t.table}`, error);
        }
      }
    }
    return keys.length;
  }

  async #read(t: DynamoDbTable, key: Key, attributes: readonly string[]): Promise<Record<string, unknown> | undefined> {
    const names: Record<string, string> = { '#pk': t.partitionKey };
    attributes.forEach((a, i) => (names[`#a${String(i)}`] = a));
    try {
      const out = await this.#db.send(
        new GetCommand({ TableName: t.table, Key: key, ConsistentRead: true, ProjectionExpression: Object.keys(names).join(', '), ExpressionAttributeNames: names }),
      );
      return out.Item;
    } catch (error) {
      throw classifyAwsError(`dynamodb table ${t.table}`, error);
    }
  }

  /** Remove the anonymized attributes; false when the item is gone or holds none of them. */
  async #anonymizeItem(t: DynamoDbTable, key: Key): Promise<boolean> {
    if (t.anonymize.length === 0) return false;
    const names = Object.fromEntries(t.anonymize.map((a, i) => [`#a${String(i)}`, a]));
    try {
      await this.#db.send(
        new UpdateCommand({
          TableName: t.table,
          Key: key,
          UpdateExpression: `REMOVE ${Object.keys(names).join(', ')}`,
          ConditionExpression: Object.keys(names).map((n) => `attribute_exists(${n})`).join(' OR '),
          ExpressionAttributeNames: names,
        }),
      );
      return true;
    } catch (error) {
      if ((error as { name?: string }).name === 'ConditionalCheckFailedException') return false;
      throw classifyAwsError(`dynamodb table ${t.table}`, error);
    }
  }
}
