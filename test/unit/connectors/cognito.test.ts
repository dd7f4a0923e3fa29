import {
  AdminDeleteUserCommand,
  AdminDisableUserCommand,
  AdminEnableUserCommand,
  AdminGetUserCommand,
  CognitoIdentityProviderClient,
  ListUsersCommand,
  UserNotFoundException,
} from '@aws-sdk/client-cognito-identity-provider';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { CognitoConnector } from '#connectors/cognito/connector';
import { cognitoSettingsSchema } from '#connectors/cognito/settings';
import { ConnectorPermanentError, ConnectorRetryableError } from '#core/errors';

const client = new CognitoIdentityProviderClient({ region: 'eu-west-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
const mock = mockClient(client);
afterEach(() => mock.reset());

const pool = 'eu-west-1_AbCdEf123';
const connector = new CognitoConnector(client, cognitoSettingsSchema.parse({ userPoolId: pool, users: [{ attribute: 'email', identity: 'email' }, { username: '{user_id}' }] }));
const command = (action: 'delete' | 'restrict' | 'lift', email = 'ada@example.com') => ({
  requestId: 'r',
  action,
  identities: [
    { type: 'email', value: email },
    { type: 'user_id', value: 'u-ada' },
  ],
  keyedHash: (v: string) => v,
});
const notFound = new UserNotFoundException({ message: 'User does not exist.', $metadata: {} });

describe('Class: CognitoConnector', () => {
  it('deletes the users found by attribute and by username, counting only those that existed', async () => {
    mock.on(ListUsersCommand).resolves({ Users: [{ Username: 'ada-sub-1' }] });
    mock.on(AdminDeleteUserCommand, { Username: 'ada-sub-1' }).resolves({});
    mock.on(AdminDeleteUserCommand, { Username: 'u-ada' }).rejects(notFound);

    expect(await connector.run(command('delete'))).toEqual({ affected: 1 });
    expect(mock).toHaveReceivedCommandWith(ListUsersCommand, { UserPoolId: pool, Filter: 'email = "ada@example.com"' });
  });

  it('escapes quotes in the ListUsers filter', async () => {
    mock.on(ListUsersCommand).resolves({ Users: [] });
    mock.on(AdminDeleteUserCommand).rejects(notFound);

    await connector.run(command('delete', 'x" or email ^= "'));

    expect(mock).toHaveReceivedCommandWith(ListUsersCommand, { Filter: 'email = "x\\" or email ^= \\""' });
  });

  it('restricts by disabling, lifts by enabling, and repeats as no-ops', async () => {
    mock.on(ListUsersCommand).resolves({ Users: [] });
    mock.on(AdminGetUserCommand).resolvesOnce({ Enabled: true }).resolves({ Enabled: false });
    mock.on(AdminDisableUserCommand).resolves({});

    expect(await connector.run(command('restrict'))).toEqual({ affected: 1 });
    expect(await connector.run(command('restrict'))).toEqual({ affected: 0 });
    expect(await connector.verify(command('restrict'))).toEqual({ remaining: 0 });

    mock.on(AdminEnableUserCommand).resolves({});
    expect(await connector.run(command('lift'))).toEqual({ affected: 1 });
    expect(mock).toHaveReceivedCommandTimes(AdminDisableUserCommand, 1);
  });

  it('types AWS errors: throttling retryable, not authorized permanent', async () => {
    mock.on(ListUsersCommand).rejects(Object.assign(new Error('slow'), { name: 'TooManyRequestsException', $metadata: { httpStatusCode: 400 } }));
    await expect(connector.run(command('delete'))).rejects.toThrow(ConnectorRetryableError);

    mock.on(ListUsersCommand).rejects(Object.assign(new Error('no'), { name: 'NotAuthorizedException', $metadata: { httpStatusCode: 400 } }));
    await expect(connector.run(command('delete'))).rejects.toThrow(ConnectorPermanentError);
  });
});
