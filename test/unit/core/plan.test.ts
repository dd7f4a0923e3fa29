import { describe, expect, it } from 'vitest';
import { validateDataMap, type ConnectorKinds } from '#core/config';
import { ConfigError } from '#core/errors';
import { planStages, resolversOf, unreachableSystems } from '#core/plan';
import { z } from 'zod';

const kinds: ConnectorKinds = {
  store: { actions: ['delete', 'anonymize', 'restrict', 'lift'], settings: z.unknown(), resolves: true },
  vendor: { actions: ['delete'], settings: z.unknown() },
};

/** A product: users (Postgres) links to the CRM and Stripe ids; orders depend on nothing; the CRM must go after billing. */
const map = validateDataMap(
  {
    version: 1,
    identities: ['email', 'user_id', 'device_id'],
    systems: {
      users: { connector: 'store', identities: ['email', 'user_id'], provides: ['user_id', 'crm_contact_id', 'stripe_customer_id'], dependsOn: ['crm', 'billing'] },
      orders: { connector: 'store', identities: ['user_id'] },
      crm: { connector: 'vendor', identities: ['crm_contact_id'], dependsOn: ['billing'] },
      billing: { connector: 'vendor', identities: ['stripe_customer_id'] },
      sessions: { connector: 'vendor', identities: ['device_id'], actions: { erasure: 'delete' } },
    },
  },
  kinds,
);

describe('Function: planStages', () => {
  it('resolves links first, then acts in dependency order with independent systems together', () => {
    expect(planStages('erasure', map, ['email'])).toEqual([
      { kind: 'resolve', systems: ['users'] },
      { kind: 'act', tasks: [{ system: 'orders', action: 'delete' }, { system: 'billing', action: 'delete' }] },
      { kind: 'act', tasks: [{ system: 'crm', action: 'delete' }] },
      { kind: 'act', tasks: [{ system: 'users', action: 'delete' }] },
    ]);
  });

  it('names the resolvers whose links reach each system, beyond the identities given', () => {
    const stages = planStages('erasure', map, ['email']);
    expect(['users', 'orders', 'crm', 'billing'].map((s) => resolversOf(s, stages, map, ['email']))).toEqual([[], ['users'], ['users'], ['users']]);
    // Given the user id, orders needs no resolution; the CRM still does.
    const withId = planStages('erasure', map, ['email', 'user_id']);
    expect(resolversOf('orders', withId, map, ['email', 'user_id'])).toEqual([]);
    expect(resolversOf('crm', withId, map, ['email', 'user_id'])).toEqual(['users']);
  });

  it('skips systems the request type has no action for', () => {
    expect(planStages('restrict', map, ['email', 'user_id']).filter((s) => s.kind === 'act')).toEqual([
      { kind: 'act', tasks: [{ system: 'users', action: 'restrict' }, { system: 'orders', action: 'restrict' }] },
    ]);
  });

  it('lifts in every lifting system without resolving, because a lift acts on recorded restrictions', () => {
    expect(planStages('withdraw', map, ['email'])).toEqual([
      { kind: 'act', tasks: [{ system: 'users', action: 'lift' }, { system: 'orders', action: 'lift' }] },
    ]);
    expect(unreachableSystems('withdraw', map, ['device_id'])).toEqual([]);
  });

  it('names the systems no identity of the subject reaches', () => {
    expect(unreachableSystems('erasure', map, ['email'])).toEqual(['sessions']);
  });
});

describe('Function: validateDataMap (links and dependencies)', () => {
  const issues = (systems: Record<string, unknown>, identities?: string[]) => {
    try {
      validateDataMap({ version: 1, ...(identities ? { identities } : {}), systems }, kinds);
    } catch (error) {
      if (error instanceof ConfigError) return error.issues.map((i) => `${i.path}: ${i.message}`);
      throw error;
    }
    return [];
  };

  it('names a dependency cycle system by system, once', () => {
    expect(
      issues({
        a: { connector: 'vendor', identities: ['email'], dependsOn: ['b'] },
        b: { connector: 'vendor', identities: ['email'], dependsOn: ['c'] },
        c: { connector: 'vendor', identities: ['email'], dependsOn: ['a', 'nope'] },
      }),
    ).toEqual(['systems.c.dependsOn.1: no system named "nope"', 'systems.a.dependsOn: dependency cycle: a → b → c → a']);
  });

  it('names identities nothing provides, and providers that cannot resolve', () => {
    expect(
      issues(
        {
          crm: { connector: 'vendor', identities: ['crm_contact_id'] },
          app: { connector: 'vendor', identities: ['email'], provides: ['crm_contact_id'] },
        },
        ['email'],
      ),
    ).toEqual(['systems.app.provides: connector "vendor" cannot resolve linked identities']);
    expect(issues({ crm: { connector: 'vendor', identities: ['crm_contact_id'] } }, ['email'])).toEqual([
      'systems.crm.identities.0: nothing provides "crm_contact_id": add it to identities or to a system\'s provides',
    ]);
  });

  it('insists that a system that restricts lifts on withdraw', () => {
    expect(issues({ app: { connector: 'store', identities: ['email'], actions: { withdraw: 'skip' } } })).toEqual([
      'systems.app.actions.withdraw: this system restricts, so a withdraw must lift what it restricted: withdraw: lift',
    ]);
    expect(issues({ app: { connector: 'store', identities: ['email'], actions: { restrict: 'skip', withdraw: 'skip' } } })).toEqual([]);
  });
});
