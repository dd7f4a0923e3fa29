import type { ConnectorKinds } from '#core/config';
import { ACTIONS } from '#core/request';
import { COGNITO_ACTIONS, cognitoSettingsSchema } from './cognito/settings.ts';
import { DYNAMODB_ACTIONS, dynamoDbSettingsSchema } from './dynamodb/settings.ts';
import { definedActions } from './http/definition.ts';
import { httpSettingsSchema, type HttpSettings } from './http/settings.ts';
import { ICEBERG_ACTIONS, icebergSettingsSchema } from './iceberg/settings.ts';
import { LAKE_ACTIONS, lakeSettingsSchema } from './lake/settings.ts';
import { REDIS_ACTIONS, redisSettingsSchema } from './redis/settings.ts';
import { S3_ACTIONS, s3SettingsSchema } from './s3/settings.ts';
import { SQL_ACTIONS, sqlSettingsSchema } from './sql/settings.ts';
import { webhookSettingsSchema, type WebhookSettings } from './webhook/settings.ts';

/**
 * Every connector kind Lethe knows: what it can do and how its settings are validated. Pure data
 * (no SDK), so that `cdk synth` can validate the data map.
 */
export const CONNECTOR_KINDS: ConnectorKinds = {
  dynamodb: { actions: DYNAMODB_ACTIONS, settings: dynamoDbSettingsSchema },
  postgres: { actions: SQL_ACTIONS, settings: sqlSettingsSchema, resolves: true, privateNetwork: true },
  mysql: { actions: SQL_ACTIONS, settings: sqlSettingsSchema, resolves: true, privateNetwork: true },
  redis: { actions: REDIS_ACTIONS, settings: redisSettingsSchema, privateNetwork: true },
  s3: { actions: S3_ACTIONS, settings: s3SettingsSchema },
  cognito: { actions: COGNITO_ACTIONS, settings: cognitoSettingsSchema },
  /** Analytics tables on S3 (Parquet, JSON Lines): objects rewritten without the subject's rows. */
  lake: { actions: LAKE_ACTIONS, settings: lakeSettingsSchema, batches: true },
  /** Apache Iceberg tables through Athena: DELETE, compaction, snapshot expiry. */
  iceberg: { actions: ICEBERG_ACTIONS, settings: icebergSettingsSchema, batches: true },
  /** A vendor's API, from its definition: the actions are the ones the definition offers. */
  http: {
    actions: ACTIONS,
    settings: httpSettingsSchema,
    actionsOf: (s) => definedActions((s as HttpSettings).definition),
    longestJobSeconds: (s) => Math.max(0, ...Object.values((s as HttpSettings).definition.actions).map((a) => a.job?.deadlineSeconds ?? 0)),
  },
  /** A company's own service, by signed webhook: the actions are the ones it handles. */
  webhook: {
    actions: ACTIONS,
    settings: webhookSettingsSchema,
    actionsOf: (s) => (s as WebhookSettings).handles,
    longestJobSeconds: (s) => (s as WebhookSettings).callbackDeadlineSeconds ?? 0,
  },
};
