import type { ConnectorKinds } from '#core/config';
import { DYNAMODB_ACTIONS, dynamoDbSettingsSchema } from './dynamodb/settings.ts';

/**
 * Every connector kind Lethe knows: what it can do and how its settings are validated. Pure data
 * (no SDK), so that `cdk synth` can validate the data map.
 */
export const CONNECTOR_KINDS: ConnectorKinds = {
  dynamodb: { actions: DYNAMODB_ACTIONS, settings: dynamoDbSettingsSchema },
};
