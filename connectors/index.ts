import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { SystemConfig } from '#core/config';
import { ConnectorPermanentError } from '#core/errors';
import type { Connector } from '#core/ports';
import { DynamoDbConnector } from './dynamodb/connector.ts';
import { dynamoDbSettingsSchema } from './dynamodb/settings.ts';

export interface ConnectorClients {
  readonly dynamo: DynamoDBDocumentClient;
}

/** Build the connector for one system of the data map. */
export function createConnector(system: SystemConfig, clients: ConnectorClients): Connector {
  switch (system.connector) {
    case 'dynamodb':
      return new DynamoDbConnector(clients.dynamo, dynamoDbSettingsSchema.parse(system.settings));
    default:
      throw new ConnectorPermanentError(`no connector of kind ${system.connector}`);
  }
}
