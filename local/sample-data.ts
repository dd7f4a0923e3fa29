import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { BatchWriteCommand, DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { DataMap } from '#core/config';
import { dynamoDbSettingsSchema } from '#connectors/dynamodb/settings';
import { createTable } from './dynamodb-local.ts';

/** The people local mode's sample `users` table starts with. */
export const SAMPLE_USERS = [
  { userId: 'u-ada', email: 'ada@example.com', name: 'Ada Lovelace', phone: '+442079460958', plan: 'pro' },
  { userId: 'u-grace', email: 'grace@example.com', name: 'Grace Hopper', phone: '+12025550173', plan: 'free' },
];

/**
 * Stand up the target tables the data map names for its DynamoDB systems (with the indexes its
 * lookups use), and seed the sample `users` table so a newcomer has someone to forget.
 */
export async function seedTargets(client: DynamoDBClient, dataMap: DataMap): Promise<string[]> {
  const created: string[] = [];
  const tables = dataMap.systems
    .filter((system) => system.connector === 'dynamodb')
    .flatMap((system) => dynamoDbSettingsSchema.parse(system.settings).tables);
  for (const s of tables) {
    const indexed = s.lookups.filter((l) => l.index);
    const attributes = new Set([s.partitionKey, ...(s.sortKey ? [s.sortKey] : []), ...indexed.map((l) => l.attribute)]);
    await createTable(client, {
      TableName: s.table,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [...attributes].map((name) => ({ AttributeName: name, AttributeType: 'S' })),
      KeySchema: [
        { AttributeName: s.partitionKey, KeyType: 'HASH' },
        ...(s.sortKey ? [{ AttributeName: s.sortKey, KeyType: 'RANGE' as const }] : []),
      ],
      ...(indexed.length
        ? {
            GlobalSecondaryIndexes: indexed.map((l) => ({
              IndexName: l.index!,
              KeySchema: [{ AttributeName: l.attribute, KeyType: 'HASH' as const }],
              Projection: { ProjectionType: 'KEYS_ONLY' as const },
            })),
          }
        : {}),
    });
    created.push(s.table);
  }
  if (created.includes('users')) {
    await DynamoDBDocumentClient.from(client).send(
      new BatchWriteCommand({ RequestItems: { users: SAMPLE_USERS.map((Item) => ({ PutRequest: { Item } })) } }),
    );
  }
  return created;
}
