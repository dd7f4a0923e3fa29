import type { AthenaClient } from '@aws-sdk/client-athena';
import type { CognitoIdentityProviderClient } from '@aws-sdk/client-cognito-identity-provider';
import type { S3Client } from '@aws-sdk/client-s3';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { Redis } from 'ioredis';
import type { SystemConfig } from '#core/config';
import { ConnectorPermanentError } from '#core/errors';
import type { Connector } from '#core/ports';
import { CognitoConnector } from './cognito/connector.ts';
import { cognitoSettingsSchema } from './cognito/settings.ts';
import { DynamoDbConnector } from './dynamodb/connector.ts';
import { VendorClient } from './http/client.ts';
import { HttpConnector } from './http/connector.ts';
import { IcebergConnector } from './iceberg/connector.ts';
import { icebergSettingsSchema } from './iceberg/settings.ts';
import { LakeConnector } from './lake/connector.ts';
import { lakeSettingsSchema } from './lake/settings.ts';
import { httpSettingsSchema } from './http/settings.ts';
import { dynamoDbSettingsSchema } from './dynamodb/settings.ts';
import { RedisConnector } from './redis/connector.ts';
import { redisSettingsSchema } from './redis/settings.ts';
import { S3Connector } from './s3/connector.ts';
import { s3SettingsSchema } from './s3/settings.ts';
import { readSecret } from './secrets.ts';
import { SqlConnector } from './sql/connector.ts';
import { mysqlDatabase, postgres } from './sql/database.ts';
import { sqlSettingsSchema } from './sql/settings.ts';
import { WebhookConnector } from './webhook/connector.ts';
import { signerOf } from './webhook/protocol.ts';
import { webhookSettingsSchema } from './webhook/settings.ts';

/** The clients connectors use; built by the caller so endpoints and credentials stay theirs. */
export interface ConnectorClients {
  readonly dynamo: DynamoDBDocumentClient;
  readonly s3: () => S3Client;
  readonly cognito: () => CognitoIdentityProviderClient;
  readonly athena: () => AthenaClient;
  /** A Secrets Manager secret's string, for connection secrets held there. */
  readonly secret: (arn: string) => Promise<string | undefined>;
  /** An SSM parameter's decrypted value, for connection secrets held there. */
  readonly parameter: (name: string) => Promise<string | undefined>;
}

const cache = new Map<string, Promise<Connector>>();

/**
 * The connector for one system of the data map, built once per process so that database pools
 * and connections are reused across invocations.
 */
export function connectorFor(system: SystemConfig, clients: ConnectorClients): Promise<Connector> {
  let connector = cache.get(system.name);
  if (!connector) {
    connector = build(system, clients);
    connector.catch(() => cache.delete(system.name));
    cache.set(system.name, connector);
  }
  return connector;
}

async function build(system: SystemConfig, clients: ConnectorClients): Promise<Connector> {
  switch (system.connector) {
    case 'dynamodb':
      return new DynamoDbConnector(clients.dynamo, dynamoDbSettingsSchema.parse(system.settings));
    case 'postgres':
    case 'mysql': {
      const settings = sqlSettingsSchema.parse(system.settings);
      const url = await readSecret(settings.connection.url, clients);
      return new SqlConnector(system.connector === 'postgres' ? postgres(url) : mysqlDatabase(url), settings);
    }
    case 'redis': {
      const settings = redisSettingsSchema.parse(system.settings);
      const redis = new Redis(await readSecret(settings.connection.url, clients), { maxRetriesPerRequest: 2, lazyConnect: true });
      redis.on('error', () => undefined); // failures surface, classified, from the calls themselves
      return new RedisConnector(redis, settings);
    }
    case 's3':
      return new S3Connector(clients.s3(), s3SettingsSchema.parse(system.settings));
    case 'iceberg':
      return new IcebergConnector(clients.athena(), icebergSettingsSchema.parse(system.settings));
    case 'lake':
      return new LakeConnector(clients.s3(), lakeSettingsSchema.parse(system.settings));
    case 'cognito':
      return new CognitoConnector(clients.cognito(), cognitoSettingsSchema.parse(system.settings));
    case 'http': {
      const settings = httpSettingsSchema.parse(system.settings);
      const credentials: Record<string, string> = {};
      for (const [name, source] of Object.entries(settings.credentials)) credentials[name] = await readSecret(source, clients);
      const client = new VendorClient(settings.definition, { params: settings.params, credentials }, settings.baseUrl);
      return new HttpConnector(settings.definition, client, settings.pollEverySeconds);
    }
    case 'webhook': {
      const settings = webhookSettingsSchema.parse(system.settings);
      return new WebhookConnector(system.name, settings, await signerOf(system.name, settings.secret, clients), settings.callbackDeadlineSeconds ?? system.timeoutSeconds);
    }
    default:
      throw new ConnectorPermanentError(`no connector of kind ${system.connector}`);
  }
}

