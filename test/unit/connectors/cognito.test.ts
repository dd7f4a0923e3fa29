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
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { CognitoConnector } from '#connectors/cognito/connector';
import { cognitoSettingsSchema } from '#connectors/cognito/settings';
import { ConnectorPermanentError, ConnectorRetryableError } from '#core/errors';
import type { Restriction } from '#core/ports';
import { HOSTILE_RUNS, hostileIdentifier, NEIGHBOUR_EMAILS } from '../../fixtures/hostile.ts';

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

  it('finds users by the address as submitted too, reports one in another case as a near-miss, and touches no neighbour', async () => {
    // A pool as Cognito keeps it: ListUsers' `=` matches the attribute exactly.
    const users = new Map([
      ['s-normal', 'ada@example.com'],
      ['s-typed', 'Ada@Example.com'],
      ['s-upper', 'ADA@EXAMPLE.COM'],
      ...NEIGHBOUR_EMAILS.map((e, i): [string, string] => [`n-${String(i)}`, e]),
      ['n-adam', 'adam@example.com'],
    ]);
    mock.on(ListUsersCommand).callsFake((input: { Filter: string }) => {
      const value = /^email = "(.*)"$/.exec(input.Filter)![1]!.replace(/\\(.)/g, '$1');
      return { Users: [...users].filter(([, e]) => e === value).map(([Username]) => ({ Username })) };
    });
    mock.on(AdminGetUserCommand).callsFake((input: { Username: string }) => {
      if (!users.has(input.Username)) throw notFound;
      return { Username: input.Username, Enabled: true };
    });
    mock.on(AdminDeleteUserCommand).callsFake((input: { Username: string }) => {
      if (!users.delete(input.Username)) throw notFound;
      return {};
    });
    const before = JSON.stringify([...users].filter(([u]) => u.startsWith('n-')));
    const subject = { ...command('delete'), identities: [{ type: 'email', value: 'ada@example.com', forms: ['Ada@Example.com'] }] };

    expect(await connector.run(subject)).toEqual({ affected: 2 });
    expect(await connector.verify(subject)).toEqual({ remaining: 0, nearMisses: { case: 1 } });
    expect([...users.keys()].filter((u) => u.startsWith('s-'))).toEqual(['s-upper']);
    expect(JSON.stringify([...users].filter(([u]) => u.startsWith('n-')))).toBe(before);
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

/**
 * A user pool as Cognito's API answers (aws-sdk-client-mock): ListUsers parses its filter by the
 * documented grammar (`attribute = "value"` or `^=`, quotes and backslashes escaped, at most 256
 * characters) and refuses any other; the Admin calls take a username by its pattern and refuse
 * any other; users match exactly, or by prefix.
 */
function cognitoPool(users: Record<string, { email: string }>) {
  const pool = new Map(Object.entries(users));
  const invalid = (message: string) => Object.assign(new Error(message), { name: 'InvalidParameterException', $metadata: { httpStatusCode: 400 } });
  const named = (input: { Username: string }) => {
    if (!/^[\p{L}\p{M}\p{S}\p{N}\p{P}]{1,128}$/u.test(input.Username)) throw invalid('1 validation error detected: Value at \'username\' failed to satisfy constraint');
    if (!pool.has(input.Username)) throw notFound;
    return input.Username;
  };
  mock.on(ListUsersCommand).callsFake((input: { Filter?: string }) => {
    const filter = input.Filter ?? '';
    if (filter.length > 256) throw invalid('1 validation error detected: Value at \'filter\' failed to satisfy constraint: Member must have length less than or equal to 256');
    const parsed = /^(\w+) (=|\^=) "((?:[^"\\]|\\.)*)"$/su.exec(filter);
    if (!parsed) throw invalid('Invalid search filter');
    const [, attribute, type, quoted] = parsed as unknown as [string, string, string, string];
    if (attribute !== 'email') throw invalid('Invalid search attribute');
    const value = quoted.replace(/\\(.)/gsu, '$1');
    const Users = [...pool].filter(([, u]) => (type === '=' ? u.email === value : u.email.startsWith(value))).map(([Username]) => ({ Username }));
    return { Users };
  });
  mock.on(AdminDeleteUserCommand).callsFake((input: { Username: string }) => pool.delete(named(input)) && {});
  mock.on(AdminGetUserCommand).callsFake((input: { Username: string }) => ({ Username: named(input), Enabled: true }));
  return pool;
}

describe('Class: CognitoConnector, against a pool that parses filters and usernames as Cognito does', () => {
  // Canaries: users whose e-mail or name is the syntax a hostile value is made of, or the prefix of a subject's.
  const canaries = {
    'ada-sub-1': { email: 'ada@example.com' },
    '*': { email: '*' },
    '"': { email: '"' },
    '\\': { email: '\\' },
    'u-ada': { email: 'u-ada@example.com' },
    '..': { email: 'a' },
  };

  it('deletes the subject found by e-mail, and nobody whose e-mail merely starts the same', async () => {
    const pool = cognitoPool({ ...canaries, 'ada-sub-2': { email: 'ada@example.com.evil' } });
    expect(await connector.run(command('delete'))).toEqual({ affected: 2 }); // ada-sub-1 by e-mail, u-ada by username
    expect([...pool.keys()].sort()).toEqual(['"', '*', '..', '\\', 'ada-sub-2']);
  });

  it('fails, naming neither the value nor the pool\'s answer, when a value is too long to search for', async () => {
    cognitoPool(canaries);
    const error = await connector.run(command('delete', `${'a'.repeat(250)}@example.com`)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectorPermanentError);
    expect((error as Error).message).toBe(`cognito user pool ${pool}: this email is too long to search email for (ListUsers filters hold 256 characters)`);
    expect(mock).not.toHaveReceivedCommand(ListUsersCommand);
  });

  it(`deletes nothing for ${String(HOSTILE_RUNS)} generated hostile identities (fast-check): every canary user remains`, async () => {
    const users = cognitoPool(canaries);
    const own = new Set([...Object.keys(canaries), ...Object.values(canaries).map((u) => u.email)]);
    await fc.assert(
      fc.asyncProperty(hostileIdentifier, async (value) => {
        fc.pre(!own.has(value));
        expect(await connector.run({ ...command('delete'), identities: [{ type: 'email', value }, { type: 'user_id', value }] })).toEqual({ affected: 0 });
      }),
      { numRuns: HOSTILE_RUNS },
    );
    expect([...users.keys()]).toEqual(Object.keys(canaries));
  });
});

