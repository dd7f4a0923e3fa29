import { describe, expect, it } from 'vitest';
import { ConfigError } from '#core/errors';
import { parseDataMap, taintedDatasets } from '#core/config';
import { CONNECTOR_KINDS } from '#connectors/kinds';
import { readFileSync } from 'node:fs';

describe('Function: parseDataMap', () => {
  it('reads the repository data map', () => {
    const map = parseDataMap(readFileSync('lethe.config.yaml', 'utf8'), CONNECTOR_KINDS);
    expect(map.systems.map((s) => s.name)).toEqual(['app-db', 'users', 'exports', 'analytics']);
    expect(map.systems.find((s) => s.name === 'users')?.actions).toEqual({ erasure: 'delete', anonymize: 'anonymize' });
    expect(map.systems.find((s) => s.name === 'app-db')).toMatchObject({ provides: ['user_id'], dependsOn: ['users', 'exports', 'analytics'] });
  });

  it('names every problem at once with its path', () => {
    const text = `
version: 1
systems:
  Users:
    connector: dynamodb
    identities: [email]
    settings: { tables: [{ table: users, partitionKey: userId, lookups: [{ identity: email, attribute: email, index: byEmail }] }] }
  crm:
    connector: salesforce-classic
    identities: [email]
  orders:
    connector: dynamodb
    identities: [email]
    actions: { restrict: restrict }
    settings: { tables: [{ table: orders, partitionKey: orderId, lookups: [{ identity: email, attribute: email }], anonymize: [orderId] }] }
`;
    let error: unknown;
    try {
      parseDataMap(text, CONNECTOR_KINDS);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    // Schema problems come first; a file with a bad system name is reported on that alone.
    expect((error as ConfigError).issues.map((i) => i.path)).toEqual(['systems.Users']);

    try {
      parseDataMap(text.replace('Users:', 'users:'), CONNECTOR_KINDS);
    } catch (e) {
      error = e;
    }
    expect((error as ConfigError).issues.map((i) => i.path).sort()).toEqual([
      'systems.crm.connector',
      'systems.orders.actions.restrict',
      'systems.orders.settings.tables.0.anonymize.0',
      'systems.orders.settings.tables.0.lookups.0.index',
    ]);
  });

  it('validates the network that database workers join in AWS', () => {
    const text = (network: string) => `version: 1\nnetwork: ${network}\nsystems:\n  users:\n    connector: dynamodb\n    identities: [email]\n    settings: { tables: [{ table: users, partitionKey: userId, lookups: [{ identity: email, attribute: userId }] }] }\n`;
    expect(parseDataMap(text('{ subnetIds: [subnet-0123456789abcdef0], securityGroupIds: [sg-0123456789abcdef0] }'), CONNECTOR_KINDS).network).toEqual({
      subnetIds: ['subnet-0123456789abcdef0'],
      securityGroupIds: ['sg-0123456789abcdef0'],
    });
    let error: unknown;
    try {
      parseDataMap(text('{ subnetIds: [subnet-x], securityGroupIds: [] }'), CONNECTOR_KINDS);
    } catch (e) {
      error = e;
    }
    expect((error as ConfigError).issues.map((i) => i.path)).toEqual(['network.subnetIds.0', 'network.securityGroupIds']);
  });

  it('takes derived datasets, naming unknown sources, cycles and names taken by systems', () => {
    const text = (datasets: string) =>
      `version: 1\ndatasets:\n${datasets}\nsystems:\n  users:\n    connector: dynamodb\n    identities: [email]\n    settings: { tables: [{ table: users, partitionKey: userId, lookups: [{ identity: email, attribute: userId }] }] }\n`;
    const map = parseDataMap(text('  features: { kind: feature_table, derivedFrom: [users] }\n  model: { kind: model, derivedFrom: [features] }'), CONNECTOR_KINDS);
    expect(map.datasets).toEqual([
      { name: 'features', kind: 'feature_table', derivedFrom: ['users'] },
      { name: 'model', kind: 'model', derivedFrom: ['features'] },
    ]);
    expect(taintedDatasets(map.datasets!, ['users'])).toEqual(['features', 'model']);
    expect(taintedDatasets(map.datasets!, ['features'])).toEqual(['model']);
    expect(taintedDatasets(map.datasets!, ['crm'])).toEqual([]);

    let error: unknown;
    try {
      parseDataMap(text('  a: { kind: synthetic, derivedFrom: [b] }\n  b: { kind: model, derivedFrom: [a, nowhere] }\n  users: { kind: model, derivedFrom: [users] }'), CONNECTOR_KINDS);
    } catch (e) {
      error = e;
    }
    expect((error as ConfigError).issues).toEqual([
      { path: 'datasets.a.derivedFrom', message: 'a dataset cannot be derived from itself' },
      { path: 'datasets.b.derivedFrom.1', message: 'no system or dataset named "nowhere"' },
      { path: 'datasets.b.derivedFrom', message: 'a dataset cannot be derived from itself' },
      { path: 'datasets.users', message: 'a dataset cannot share its name with a system' },
    ]);
  });

  it("takes the stream filter's streams, naming identity types no request carries and bad fields", () => {
    const text = (streams: string) =>
      `version: 1\nidentities: [email, user_id]\nstreams:\n${streams}\nsystems:\n  users:\n    connector: dynamodb\n    identities: [email]\n    settings: { tables: [{ table: users, partitionKey: userId, lookups: [{ identity: email, attribute: userId }] }] }\n`;
    const map = parseDataMap(text('  events: { fields: [{ path: user.email, identity: email }], action: redact }'), CONNECTOR_KINDS);
    expect(map.streams).toEqual({ events: { fields: [{ path: 'user.email', identity: 'email' }], action: 'redact', redact: [] } });
    expect(parseDataMap(readFileSync('lethe.config.yaml', 'utf8'), CONNECTOR_KINDS).streams).toHaveProperty('product-events');
    const issues = (streams: string) => {
      try {
        parseDataMap(text(streams), CONNECTOR_KINDS);
      } catch (error) {
        return (error as ConfigError).issues.map((i) => i.path);
      }
      return [];
    };
    expect(issues('  events: { fields: [{ path: device, identity: device_id }], action: drop }')).toEqual(['streams.events.fields.0.identity']);
    expect(issues('  events: { fields: [{ path: "a b", identity: email }], action: erase }')).toEqual(['streams.events.fields.0.path', 'streams.events.action']);
  });

  it('reports YAML syntax errors', () => {
    expect(() => parseDataMap('version: 1\nsystems: [', CONNECTOR_KINDS)).toThrow(/YAML/);
  });
});

describe('README', () => {
  it('shows a complete data map that validates', () => {
    const readme = readFileSync('README.md', 'utf8');
    const block = readme.split('A complete data map')[1]?.split('```yaml')[1]?.split('```')[0];
    expect(block).toBeDefined();
    const map = parseDataMap(block!, CONNECTOR_KINDS);
    expect(new Set(map.systems.map((s) => s.connector))).toEqual(new Set(Object.keys(CONNECTOR_KINDS)));
  });
});

describe('README, vendors', () => {
  it('shows a vendor definition that validates', async () => {
    const { httpSettingsSchema } = await import('#connectors/http/settings');
    const { parse } = await import('yaml');
    const readme = readFileSync('README.md', 'utf8');
    const block = readme.split('### Adding a vendor')[1]?.split('```yaml')[1]?.split('```')[0];
    const parsed = httpSettingsSchema.safeParse({ definition: parse(block!) as unknown, credentials: { token: { env: 'X' } }, params: { region: 'eu' } });
    expect(parsed.success ? [] : parsed.error.issues).toEqual([]);
  });

  it('lists every built-in vendor', async () => {
    const { builtInVendors } = await import('#connectors/http/settings');
    const table = readFileSync('README.md', 'utf8').split('## Vendors')[1]?.split('### Adding a vendor')[0] ?? '';
    const listed = [...table.matchAll(/^\| `([a-z-]+)` \|/gm)].map((m) => m[1]);
    expect([...listed].sort()).toEqual(builtInVendors());
  });
});

describe('Function: parseDataMap (vendors)', () => {
  it('asks for a task timeout at least as long as the vendor’s job deadline', () => {
    const text = (timeout: string) => `version: 1
systems:
  analytics:
    connector: http
    identities: [user_id]${timeout}
    settings: { vendor: segment, credentials: { token: { env: SEGMENT_TOKEN } } }
`;
    let error: unknown;
    try {
      parseDataMap(text(''), CONNECTOR_KINDS);
    } catch (e) {
      error = e;
    }
    expect((error as ConfigError).issues).toEqual([
      { path: 'systems.analytics.timeoutSeconds', message: "its vendor's jobs may take up to 3024000 s: give the task at least that long (timeoutSeconds: 3024000)" },
    ]);
    expect(parseDataMap(text('\n    timeoutSeconds: 3024000'), CONNECTOR_KINDS).systems[0]?.actions).toEqual({ erasure: 'delete', opt_out: 'suppress', withdraw: 'lift' });
  });
});
