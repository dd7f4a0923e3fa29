import {
  AdminDeleteUserCommand,
  AdminDisableUserCommand,
  AdminEnableUserCommand,
  AdminGetUserCommand,
  paginateListUsers,
  type CognitoIdentityProviderClient,
} from '@aws-sdk/client-cognito-identity-provider';
import { ConnectorPermanentError } from '#core/errors';
import type { Identity } from '#core/identity';
import type { Connector, ConnectorCommand, ConnectorResult } from '#core/ports';
import type { Action } from '#core/request';
import { classifyAwsError } from '../aws-errors.ts';
import { fill } from '../templates.ts';
import { COGNITO_ACTIONS, type CognitoSettings } from './settings.ts';

/**
 * A subject's users in one Cognito user pool: deleted (AdminDeleteUser), restricted by disabling
 * them (AdminDisableUser) or lifted by enabling them again. Each counts only when it changes
 * something, so repeating an action affects 0.
 */
export class CognitoConnector implements Connector {
  readonly kind = 'cognito';
  readonly #cognito: CognitoIdentityProviderClient;
  readonly #s: CognitoSettings;

  constructor(cognito: CognitoIdentityProviderClient, settings: CognitoSettings) {
    this.#cognito = cognito;
    this.#s = settings;
  }

  describe(): { actions: readonly Action[] } {
    return { actions: COGNITO_ACTIONS };
  }

  resolve(): Promise<Identity[]> {
    return Promise.resolve([]);
  }

  async run(command: ConnectorCommand): Promise<ConnectorResult> {
    let affected = 0;
    for (const username of await this.#find(command.identities)) {
      switch (command.action) {
        case 'delete':
          if (await this.#ifExists(() => this.#cognito.send(new AdminDeleteUserCommand({ UserPoolId: this.#s.userPoolId, Username: username })))) affected += 1;
          break;
        case 'restrict':
        case 'lift': {
          const enabled = await this.#enabled(username);
          if (enabled === undefined || enabled === (command.action === 'lift')) break;
          const input = { UserPoolId: this.#s.userPoolId, Username: username };
          const done = await this.#ifExists(() =>
            this.#cognito.send(command.action === 'restrict' ? new AdminDisableUserCommand(input) : new AdminEnableUserCommand(input)),
          );
          if (done) affected += 1;
          break;
        }
        default:
          throw new ConnectorPermanentError(`cognito connector cannot ${command.action}`);
      }
    }
    return { affected };
  }

  async verify(command: ConnectorCommand): Promise<{ remaining: number }> {
    let remaining = 0;
    for (const username of await this.#find(command.identities)) {
      const enabled = await this.#enabled(username);
      if (enabled === undefined) continue;
      if (command.action === 'delete' || enabled === (command.action === 'restrict')) remaining += 1;
    }
    return { remaining };
  }

  /** Usernames of the subject's users in the pool. */
  async #find(identities: readonly Identity[]): Promise<string[]> {
    const usernames = new Set<string>();
    for (const entry of this.#s.users) {
      if ('username' in entry) {
        for (const u of fill(entry.username, identities)) usernames.add(u);
        continue;
      }
      for (const identity of identities.filter((i) => i.type === entry.identity)) {
        const filter = `${entry.attribute} = "${identity.value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
        try {
          for await (const page of paginateListUsers({ client: this.#cognito }, { UserPoolId: this.#s.userPoolId, Filter: filter })) {
            for (const user of page.Users ?? []) if (user.Username) usernames.add(user.Username);
          }
        } catch (error) {
          throw classifyAwsError(`cognito user pool ${this.#s.userPoolId}`, error);
        }
      }
    }
    return [...usernames];
  }

  /** Whether the user is enabled; undefined when there is no such user. */
  async #enabled(username: string): Promise<boolean | undefined> {
    let enabled: boolean | undefined;
    await this.#ifExists(async () => {
      enabled = (await this.#cognito.send(new AdminGetUserCommand({ UserPoolId: this.#s.userPoolId, Username: username }))).Enabled ?? true;
    });
    return enabled;
  }

  /** Run a call about one user; false when the user does not exist. */
  async #ifExists(call: () => Promise<unknown>): Promise<boolean> {
    try {
      await call();
      return true;
    } catch (error) {
      if ((error as { name?: string }).name === 'UserNotFoundException') return false;
      throw classifyAwsError(`cognito user pool ${this.#s.userPoolId}`, error);
    }
  }
}
