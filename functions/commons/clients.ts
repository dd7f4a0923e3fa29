import { AthenaClient } from '@aws-sdk/client-athena';
import { CognitoIdentityProviderClient } from '@aws-sdk/client-cognito-identity-provider';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { KMSClient } from '@aws-sdk/client-kms';
import { S3Client } from '@aws-sdk/client-s3';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SFNClient } from '@aws-sdk/client-sfn';
import { SQSClient } from '@aws-sdk/client-sqs';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';

/**
 * SDK clients, built once per container. Endpoints come from the standard `AWS_ENDPOINT_URL_*`
 * variables, which local mode sets; in AWS they are unset and the regional endpoints apply.
 */
export const dynamo = DynamoDBDocumentClient.from(new DynamoDBClient({}), {
  marshallOptions: { removeUndefinedValues: true },
});
/** Queue URLs name their own host; always use the configured endpoint instead (same result in AWS). */
export const sqs = new SQSClient({ useQueueUrlAsEndpoint: false });
export const sfn = new SFNClient({});
export const s3 = new S3Client({ forcePathStyle: Boolean(process.env['AWS_ENDPOINT_URL_S3']) });
export const kms = new KMSClient({});
export const secrets = new SecretsManagerClient({});

let cognito: CognitoIdentityProviderClient | undefined;
let athena: AthenaClient | undefined;
let ssm: SSMClient | undefined;

/** What connectors are given: these clients, Cognito built only when a system needs it. */
export const connectorClients = {
  dynamo,
  s3: () => s3,
  cognito: () => (cognito ??= new CognitoIdentityProviderClient({})),
  athena: () => (athena ??= new AthenaClient({})),
  secret: async (arn: string) => (await secrets.send(new GetSecretValueCommand({ SecretId: arn }))).SecretString,
  parameter: async (name: string) =>
    (await (ssm ??= new SSMClient({})).send(new GetParameterCommand({ Name: name, WithDecryption: true }))).Parameter?.Value,
};
