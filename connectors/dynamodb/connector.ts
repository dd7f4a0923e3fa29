import {
  DeleteCommand,
  GetCommand,
  paginateQuery,
  UpdateCommand,
  type DynamoDBDocumentClient,
} from '@aws-sdk/lib-dynamodb';
import { ConnectorPermanentError } from '#core/errors';
import type { Identity } from '#core/identity';
import type { Connector, ConnectorCommand, ConnectorResult } from '#core/ports';
import type { Action } from '#core/request';
import { classifyAwsError } from '../aws-errors.ts';
import { DYNAMODB_ACTIONS, type DynamoDbSettings } from './settings.ts';

type Key = Record<string, unknown>;

/**
 * Deletes or anonymizes a subject's items in one DynamoDB table. Items are found by querying the
 * table (identity in the partition key) or a GSI (identity in another attribute); never by a scan.
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

  /** Linked identities come with issue 3's `provides` for DynamoDB; none yet. */
  resolve(): Promise<Identity[]> {
    return Promise.resolve([]);
  }

  async run(command: ConnectorCommand): Promise<ConnectorResult> {
    const keys = await this.#findKeys(command.identities);
    switch (command.action) {
      case 'delete':
        return { affected: await this.#count(keys, (key) => this.#deleteItem(key)) };
      case 'anonymize':
        return { affected: await this.#count(keys, (key) => this.#anonymizeItem(key)) };
      default:
        throw new ConnectorPermanentError(`dynamodb connector cannot ${command.action}`);
    }
  }

  /**
   * Items of the subject that still exist (delete) or still hold an anonymized attribute
   * (anonymize). Index reads are eventually consistent and may not project those attributes, so
   * every item found is read again from the table with a consistent read.
   */
  async verify(command: ConnectorCommand): Promise<{ remaining: number }> {
    if (command.action !== 'delete' && command.action !== 'anonymize') {
      throw new ConnectorPermanentError(`dynamodb connector cannot verify ${command.action}`);
    }
    const attributes = command.action === 'anonymize' ? this.#s.anonymize : [];
    let remaining = 0;
    for (const key of await this.#findKeys(command.identities)) {
      const item = await this.#read(key, attributes);
      if (item && (command.action === 'delete' || attributes.some((a) => item[a] !== undefined))) remaining += 1;
    }
    return { remaining };
  }

  async #read(key: Key, attributes: readonly string[]): Promise<Record<string, unknown> | undefined> {
    const names: Record<string, string> = { '#pk': this.#s.partitionKey };
    attributes.forEach((a, i) => (names[`#a${String(i)}`] = a));
    try {
      const out = await this.#db.send(
        new GetCommand({
          TableName: this.#s.table,
          Key: key,
          ConsistentRead: true,
          ProjectionExpression: Object.keys(names).join(', '),
          ExpressionAttributeNames: names,
        }),
      );
      return out.Item;
    } catch (error) {
      throw classifyAwsError(`dynamodb table ${this.#s.table}`, error);
    }
  }

  /** Primary keys of the subject's items, through every lookup that an identity of the subject fits. */
  async #findKeys(identities: readonly Identity[]): Promise<Key[]> {
    const { table, partitionKey, sortKey } = this.#s;
    const found = new Map<string, Key>();
    for (const lookup of this.#s.lookups) {
      for (const identity of identities.filter((i) => i.type === lookup.identity)) {
        const names: Record<string, string> = { '#k': lookup.attribute, '#pk': partitionKey };
        if (sortKey) names['#sk'] = sortKey;
        const pages = paginateQuery(
          { client: this.#db },
          {
            TableName: table,
            IndexName: lookup.index,
            KeyConditionExpression: '#k = :v',
            ExpressionAttributeNames: names,
            ExpressionAttributeValues: { ':v': identity.value },
            ProjectionExpression: sortKey ? '#pk, #sk' : '#pk',
          },
        );
        try {
          for await (const page of pages) {
            for (const item of page.Items ?? []) {
              const key: Key = { [partitionKey]: item[partitionKey] as unknown };
              if (sortKey) key[sortKey] = item[sortKey];
              found.set(JSON.stringify(key), key);
            }
          }
        } catch (error) {
          throw classifyAwsError(`dynamodb table ${table}${lookup.index ? ` index ${lookup.index}` : ''}`, error);
        }
      }
    }
    return [...found.values()];
  }

  /** Apply `op` to each key; count the items it changed (false: already gone or already done). */
  async #count(keys: readonly Key[], op: (key: Key) => Promise<boolean>): Promise<number> {
    let affected = 0;
    for (const key of keys) if (await op(key)) affected += 1;
    return affected;
  }

  async #deleteItem(key: Key): Promise<boolean> {
    return this.#conditional(() =>
      this.#db.send(
        new DeleteCommand({
          TableName: this.#s.table,
          Key: key,
          ConditionExpression: 'attribute_exists(#pk)',
          ExpressionAttributeNames: { '#pk': this.#s.partitionKey },
        }),
      ),
    );
  }

  async #anonymizeItem(key: Key): Promise<boolean> {
    const attributes = this.#s.anonymize;
    if (attributes.length === 0) return false;
    const names = Object.fromEntries(attributes.map((a, i) => [`#a${String(i)}`, a]));
    return this.#conditional(() =>
      this.#db.send(
        new UpdateCommand({
          TableName: this.#s.table,
          Key: key,
          UpdateExpression: `REMOVE ${Object.keys(names).join(', ')}`,
          ConditionExpression: Object.keys(names).map((n) => `attribute_exists(${n})`).join(' OR '),
          ExpressionAttributeNames: names,
        }),
      ),
    );
  }

  async #conditional(send: () => Promise<unknown>): Promise<boolean> {
    try {
      await send();
      return true;
    } catch (error) {
      if ((error as { name?: string }).name === 'ConditionalCheckFailedException') return false;
      throw classifyAwsError(`dynamodb table ${this.#s.table}`, error);
    }
  }
}
