import type { Redis } from 'ioredis';
import { ConnectorPermanentError, ConnectorRetryableError } from '#core/errors';
import { formsOf, type Identity } from '#core/identity';
import { nearMissReason, NearMissTally, wideSpellings } from '#core/near-miss';
import type { Connector, ConnectorCommand, ConnectorResult, Verification } from '#core/ports';
import type { Action } from '#core/request';
import { fill } from '../templates.ts';
import { REDIS_ACTIONS, type RedisSettings } from './settings.ts';

type Target = { kind: 'key'; key: string } | { kind: 'field'; hash: string; field: string };

/**
 * Deletes a subject's keys and hash fields in one Redis database. Keys come from templates filled
 * with the subject's identities; patterns are walked with SCAN (never KEYS), with the identity's
 * glob characters escaped so that an identity like `*` matches only itself.
 */
export class RedisConnector implements Connector {
  readonly kind = 'redis';
  readonly #redis: Redis;
  readonly #s: RedisSettings;

  constructor(redis: Redis, settings: RedisSettings) {
    this.#redis = redis;
    this.#s = settings;
  }

  describe(): { actions: readonly Action[] } {
    return { actions: REDIS_ACTIONS };
  }

  resolve(): Promise<Identity[]> {
    return Promise.resolve([]);
  }

  async run(command: ConnectorCommand): Promise<ConnectorResult> {
    if (command.action !== 'delete') throw new ConnectorPermanentError(`redis connector cannot ${command.action}`);
    return this.#guard('delete', async () => {
      let affected = 0;
      for (const target of await this.#targets(command.identities)) {
        affected += target.kind === 'key' ? await this.#redis.del(target.key) : await this.#redis.hdel(target.hash, target.field);
      }
      return { affected };
    });
  }

  /** What the action's targets still hold; and, asked in other case and Unicode forms, the near-misses. */
  async verify(command: ConnectorCommand): Promise<Verification> {
    return this.#guard('verify', async () => {
      const exists = async (t: Target) => (t.kind === 'key' ? this.#redis.exists(t.key) : this.#redis.hexists(t.hash, t.field));
      const id = (t: Target) => (t.kind === 'key' ? t.key : `${t.hash}\u0000${t.field}`);
      let remaining = 0;
      const mine = new Set<string>();
      for (const target of await this.#targets(command.identities)) {
        mine.add(id(target));
        remaining += await exists(target);
      }
      const nearMisses = new NearMissTally();
      for (const target of await this.#targets(command.identities, wideSpellings)) {
        if (mine.has(id(target)) || !(await exists(target))) continue;
        nearMisses.add(nearMissReason(target.kind === 'key' ? target.key : target.field));
      }
      return nearMisses.result(remaining);
    });
  }

  async #targets(identities: readonly Identity[], spell: (identity: Identity) => string[] = formsOf): Promise<Target[]> {
    const targets: Target[] = [];
    for (const entry of this.#s.entries) {
      if ('key' in entry) {
        for (const key of fill(entry.key, identities, undefined, spell)) targets.push({ kind: 'key', key });
      } else if ('pattern' in entry) {
        for (const match of fill(entry.pattern, identities, escapeGlob, spell)) {
          for await (const batch of this.#redis.scanStream({ match, count: 500 }) as AsyncIterable<string[]>) {
            for (const key of batch) targets.push({ kind: 'key', key });
          }
        }
      } else {
        for (const field of fill(entry.field, identities, undefined, spell)) targets.push({ kind: 'field', hash: entry.hash, field });
      }
    }
    return targets;
  }

  async #guard<T>(what: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (error instanceof ConnectorPermanentError) throw error;
      const e = error as { name?: unknown; code?: unknown };
      const code = typeof e.code === 'string' ? e.code : typeof e.name === 'string' ? e.name : 'Error';
      // Redis refusing a command (WRONGTYPE, NOAUTH, NOPERM) will refuse again; anything else is the connection.
      if (error instanceof Error && /^(WRONGTYPE|NOAUTH|NOPERM|ERR)/.test(error.message)) {
        throw new ConnectorPermanentError(`redis ${what}: ${error.message.split(' ')[0] ?? code}`, { cause: error });
      }
      throw new ConnectorRetryableError(`redis ${what}: ${code}`, { cause: error });
    }
  }
}

/** Escape Redis glob specials so a value matches only itself. */
export function escapeGlob(value: string): string {
  return value.replace(/[*?[\]\\^-]/g, (c) => `\\${c}`);
}

