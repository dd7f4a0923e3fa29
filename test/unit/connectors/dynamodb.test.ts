import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { BatchWriteCommand, DynamoDBDocumentClient, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { DynamoDbConnector } from '#connectors/dynamodb/connector';
import { dynamoDbSettingsSchema } from '#connectors/dynamodb/settings';
import { ConnectorRetryableError } from '#core/errors';

const doc = DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } }));
const mock = mockClient(doc);
afterEach(() => mock.reset());

const settings = dynamoDbSettingsSchema.parse({ tables: [{ table: 'users', partitionKey: 'userId', lookups: [{ identity: 'user_id', attribute: 'userId' }] }] });
const command = { requestId: 'r', action: 'delete' as const, identities: [{ type: 'user_id', value: 'u1' }], keyedHash: (v: string) => v };
const keys = (n: number) => Array.from({ length: n }, (_, i) => ({ userId: `u1-${String(i)}` }));

describe('Class: DynamoDbConnector (BatchWriteItem)', () => {
  it('sends deletes 25 to a batch and retries the items DynamoDB left unprocessed', async () => {
    mock.on(QueryCommand).resolves({ Items: keys(30) });
    mock
      .on(BatchWriteCommand)
      .resolvesOnce({ UnprocessedItems: { users: [{ DeleteRequest: { Key: { userId: 'u1-3' } } }] } })
      .resolves({});

    expect(await new DynamoDbConnector(doc, settings).run(command)).toEqual({ affected: 30 });

    const batches = mock.commandCalls(BatchWriteCommand).map((c) => c.args[0].input.RequestItems?.['users']?.length);
    expect(batches).toEqual([25, 1, 5]);
  });

  it('gives up retryably when items stay unprocessed', async () => {
    mock.on(QueryCommand).resolves({ Items: keys(2) });
    mock.on(BatchWriteCommand).resolves({ UnprocessedItems: { users: [{ DeleteRequest: { Key: { userId: 'u1-0' } } }] } });

    await expect(new DynamoDbConnector(doc, settings).run(command)).rejects.toThrow(ConnectorRetryableError);
    expect(mock.commandCalls(BatchWriteCommand)).toHaveLength(8);
  });
});
