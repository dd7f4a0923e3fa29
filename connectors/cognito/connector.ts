import {
  AdminDeleteUserCommand,
  AdminDisableUserCommand,
  AdminEnableUserCommand,
  AdminGetUserCommand,
  paginateListUsers,
  type CognitoIdentityProviderClient,
} from '@aws-sdk/client-cognito-identity-provider';
import { ConnectorPermanentError } from '#core/errors';
import { formsOf, type Identity } from '#core/identity';
import { nearMissReason, NearMissTally, wideSpellings } from '#core/near-miss';
import { mergeRestrictions, type Connector, type ConnectorCommand, type ConnectorResult, type Verification } from '#core/ports';
import type { Action } from '#core/request';
import { classifyAwsError } from '../aws-errors.ts';
import { fill } from '../templates.ts';
import { COGNITO_ACTIONS, type CognitoSettings } from './settings.ts';

/** What can be a username: 1 to 128 letters, marks, symbols, digits and punctuation (Cognito's own pattern). Nothing else names a user. */
const USERNAME = /^[\p{L}\p{M}\p{S}\p{N}\p{P}]{1,128}$/u;
/** The longest ListUsers filter Cognito accepts. */
const FILTER_LENGTH = 256;

/**
 * A subject's users in one Cognito user pool: deleted (AdminDeleteUser), restricted by disabling
 * them (AdminDisableUser), and lifted by enabling again exactly the users a restriction disabled
 * (a user disabled by someone else stays disabled). Each counts only when it changes something,
 * so repeating an action affects 0.
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
    const pool = this.#s.userPoolId;
    switch (command.action) {
      case 'delete': {
        let affected = 0;
        for (const username of await this.#find(command.identities)) {
          if (await this.#ifExists(() => this.#cognito.send(new AdminDeleteUserCommand({ UserPoolId: pool, Username: username })))) affected += 1;
        }
        return { affected };
      }
      case 'restrict': {
        // Only users enabled now are this restriction's to record, and later to enable again.
        const enabled: string[] = [];
        for (const username of await this.#find(command.identities)) if ((await this.#enabled(username)) === true) enabled.push(username);
        if (enabled.length === 0) return { affected: 0 };
        await command.recordRestriction?.({ [pool]: enabled });
        return { affected: await this.#setEnabled(enabled, false) };
      }
      case 'lift': {
        if (!command.restrictions) throw new ConnectorPermanentError('cognito: lift needs the restrictions it undoes');
        return { affected: await this.#setEnabled(mergeRestrictions(command.restrictions)[pool] ?? [], true) };
      }
      default:
        throw new ConnectorPermanentError(`cognito connector cannot ${command.action}`);
    }
  }

  /** What the action's match still finds; and, asked in other case and Unicode forms, the near-misses (delete and restrict). */
  async verify(command: ConnectorCommand): Promise<Verification> {
    const lifting = command.action === 'lift' && command.restrictions;
    const mine = lifting ? new Map((mergeRestrictions(command.restrictions)[this.#s.userPoolId] ?? []).map((u) => [u, u])) : await this.#found(command.identities, formsOf);
    const left = async (username: string) => {
      const enabled = await this.#enabled(username);
      return enabled !== undefined && (command.action === 'delete' || enabled === (command.action === 'restrict'));
    };
    let remaining = 0;
    for (const username of mine.keys()) if (await left(username)) remaining += 1;
    const nearMisses = new NearMissTally();
    if (command.action === 'delete' || command.action === 'restrict') {
      for (const [username, spelling] of await this.#found(command.identities, wideSpellings)) {
        if (mine.has(username) || !(await left(username))) continue;
        nearMisses.add(nearMissReason(spelling));
      }
    }
    return nearMisses.result(remaining);
  }

  /** Enable or disable the users that exist and are not so already; how many changed. */
  async #setEnabled(usernames: readonly string[], enable: boolean): Promise<number> {
    let changed = 0;
    for (const username of usernames) {
      const enabled = await this.#enabled(username);
      if (enabled === undefined || enabled === enable) continue;
      const input = { UserPoolId: this.#s.userPoolId, Username: username };
      if (await this.#ifExists(() => this.#cognito.send(enable ? new AdminEnableUserCommand(input) : new AdminDisableUserCommand(input)))) changed += 1;
    }
    return changed;
  }

  /** Usernames of the subject's users in the pool. */
  async #find(identities: readonly Identity[]): Promise<string[]> {
    return [...(await this.#found(identities, formsOf)).keys()];
  }

  /** The subject's users in the pool, by username, each with the spelling that found it. */
  async #found(identities: readonly Identity[], spell: (identity: Identity) => string[]): Promise<Map<string, string>> {
    const usernames = new Map<string, string>();
    for (const entry of this.#s.users) {
      if ('username' in entry) {
        for (const u of fill(entry.username, identities, undefined, spell)) if (USERNAME.test(u)) usernames.set(u, u);
        continue;
      }
      for (const [identity, value] of identities.filter((i) => i.type === entry.identity).flatMap((i) => spell(i).map((v) => [i, v] as const))) {
        const filter = `${entry.attribute} = "${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
        if (filter.length > FILTER_LENGTH) {
          // Another spelling of the value (as typed, or the wider net's) that is too long is not asked.
          if (value !== identity.value) continue;
          // Not found is not the truth here: the pool cannot be searched for it. Someone must look.
          throw new ConnectorPermanentError(
            `cognito user pool ${this.#s.userPoolId}: this ${identity.type} is too long to search ${entry.attribute} for (ListUsers filters hold ${String(FILTER_LENGTH)} characters)`,
          );
        }
        try {
          for await (const page of paginateListUsers({ client: this.#cognito }, { UserPoolId: this.#s.userPoolId, Filter: filter })) {
            for (const user of page.Users ?? []) if (user.Username) usernames.set(user.Username, value);
          }
        } catch (error) {
          throw classifyAwsError(`cognito user pool ${this.#s.userPoolId}`, error);
        }
      }
    }
    return usernames;
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
