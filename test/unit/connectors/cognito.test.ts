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
import type { Restriction } from '#core/ports';

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

  it('restricts by disabling the enabled users, recording them, and lifts exactly those', async () => {
    // ada-sub-1 is enabled; u-ada was disabled by an administrator before Lethe was asked.
    const enabled = new Map([['ada-sub-1', true], ['u-ada', false]]);
    mock.on(ListUsersCommand).resolves({ Users: [{ Username: 'ada-sub-1' }] });
    mock.on(AdminGetUserCommand).callsFake((input: { Username: string }) => {
      const e = enabled.get(input.Username);
      if (e === undefined) throw notFound;
      return { Username: input.Username, Enabled: e };
    });
    mock.on(AdminDisableUserCommand).callsFake((input: { Username: string }) => enabled.set(input.Username, false));
    mock.on(AdminEnableUserCommand).callsFake((input: { Username: string }) => enabled.set(input.Username, true));

    const recorded: Restriction[] = [];
    const restrict = { ...command('restrict'), recordRestriction: (r: Restriction) => Promise.resolve(void recorded.push(r)) };
    expect(await connector.run(restrict)).toEqual({ affected: 1 });
    expect(recorded).toEqual([{ [pool]: ['ada-sub-1'] }]);
    expect(await connector.verify(restrict)).toEqual({ remaining: 0 });
    expect(await connector.run(restrict)).toEqual({ affected: 0 });
    expect(recorded).toHaveLength(1);

    const lift = { ...command('lift'), restrictions: recorded };
    expect(await connector.verify(lift)).toEqual({ remaining: 1 });
    expect(await connector.run(lift)).toEqual({ affected: 1 });
    expect(await connector.verify(lift)).toEqual({ remaining: 0 });
    expect(await connector.run(lift)).toEqual({ affected: 0 });
    expect([...enabled]).toEqual([['ada-sub-1', true], ['u-ada', false]]);
    // Without a record, lift does nothing rather than guess.
    await expect(connector.run(command('lift'))).rejects.toThrow(ConnectorPermanentError);
  });

  it('types AWS errors: throttling retryable, not authorized permanent', async () => {
    mock.on(ListUsersCommand).rejects(Object.assign(new Error('slow'), { name: 'TooManyRequestsException', $metadata: { httpStatusCode: 400 } }));
    await expect(connector.run(command('delete'))).rejects.toThrow(ConnectorRetryableError);

    mock.on(ListUsersCommand).rejects(Object.assign(new Error('no'), { name: 'NotAuthorizedException', $metadata: { httpStatusCode: 400 } }));
    await expect(connector.run(command('delete'))).rejects.toThrow(ConnectorPermanentError);
  });
});
