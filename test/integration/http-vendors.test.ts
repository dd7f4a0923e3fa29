import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { VendorClient } from '#connectors/http/client';
import { HttpConnector } from '#connectors/http/connector';
import { vendorDefinitionSchema } from '#connectors/http/definition';
import { httpSettingsSchema } from '#connectors/http/settings';
import { AmbiguousTargetsError, ConfigError, ConnectorPermanentError, ConnectorRetryableError, ConnectorThrottledError } from '#core/errors';
import { normalizeIdentities, type Identity } from '#core/identity';
import type { Action } from '#core/request';
import * as vendors from '../fixtures/vendors.ts';
import { NEIGHBOUR_EMAILS, SUBJECT_EMAIL_STORED, SUBMITTED_EMAIL } from '../fixtures/hostile.ts';
import { OTHER, SUBJECT, type FakeVendor } from '../fixtures/vendors.ts';

/**
 * Every built-in vendor definition against a fake of that vendor's documented API on 127.0.0.1
 * (test/fixtures/vendors.ts): the fake refuses anything the vendor's docs do not describe.
 */
const open: FakeVendor[] = [];
afterEach(async () => {
  // A call the vendor's docs do not describe fails the test that made it.
  const violations = open.flatMap((fake) => fake.violations);
  for (const fake of open.splice(0)) await fake.close();
  if (violations.length > 0) throw new Error(`undocumented vendor calls:\n${violations.join('\n')}`);
});

async function connect<T extends { fake: FakeVendor; credentials: Record<string, string>; params: Record<string, string> }>(
  vendor: string,
  start: () => Promise<T>,
  basePath = '',
): Promise<T & { connector: HttpConnector }> {
  const env = await start();
  open.push(env.fake);
  const settings = httpSettingsSchema.parse({
    vendor,
    baseUrl: `${env.fake.url}${basePath}`,
    credentials: Object.fromEntries(Object.keys(env.credentials).map((k) => [k, { env: 'UNUSED' }])),
    params: env.params,
  });
  const client = new VendorClient(settings.definition, { params: settings.params, credentials: env.credentials }, settings.baseUrl);
  return { ...env, connector: new HttpConnector(settings.definition, client) };
}

const command = (action: Action, regulation = 'gdpr') => ({
  requestId: 'r-1',
  action,
  regulation,
  identities: [
    { type: 'email', value: SUBJECT.email },
    { type: 'user_id', value: SUBJECT.userId },
  ],
  keyedHash: () => '',
});

describe('Vendor definitions against their documented APIs', () => {
  it('HubSpot: GDPR-deletes the contact by address, and verifies it is gone', async () => {
    const { connector, contacts } = await connect('hubspot', vendors.hubspot);
    expect(await connector.verify(command('delete'))).toEqual({ remaining: 1 });
    expect(await connector.run(command('delete'))).toEqual({ affected: 1 });
    expect([...contacts.keys()]).toEqual([OTHER.email]);
    expect(await connector.verify(command('delete'))).toEqual({ remaining: 0 });
  });

  it('Salesforce: hard-deletes Contacts and Leads through Bulk API 2.0 jobs, never through the Recycle Bin', async () => {
    const { connector, records, recycleBin, fake } = await connect('salesforce', vendors.salesforce);
    const result = await connector.run(command('delete'));
    expect(result.affected).toBe(2);
    expect(result.pending?.map((j) => j.vendor)).toEqual(['salesforce', 'salesforce']);
    for (const job of result.pending ?? []) {
      expect(await connector.poll(command('delete'), job)).toEqual({ state: 'pending', detail: 'InProgress' });
      expect(await connector.poll(command('delete'), job)).toEqual({ state: 'done', detail: 'JobComplete' });
    }
    expect([...records.keys()]).toEqual(['003B']);
    expect(recycleBin.size).toBe(0);
    expect(await connector.verify(command('delete'))).toEqual({ remaining: 0 });
    expect(fake.calls.filter((c) => c.path === '/services/oauth2/token')).toHaveLength(1);
  });

  it('Salesforce (recycle bin): deletes with the REST API, and the records are recoverable', async () => {
    const { connector, records, recycleBin } = await connect('salesforce-recycle-bin', vendors.salesforce);
    expect(await connector.run(command('delete'))).toEqual({ affected: 2 });
    expect([...recycleBin].sort()).toEqual(['003A', '00QA']);
    expect(records.has('003A')).toBe(true);
    expect(await connector.verify(command('delete'))).toEqual({ remaining: 0 });
  });

  it('Mailchimp: deletes the member permanently from every audience', async () => {
    const { connector, members } = await connect('mailchimp', vendors.mailchimp, '/3.0');
    expect(await connector.run(command('delete'))).toEqual({ affected: 2 });
    expect([...members.get('list-1')!]).toEqual([OTHER.email]);
    expect(members.get('list-2')!.size).toBe(0);
    expect(await connector.run(command('delete'))).toEqual({ affected: 0 });
  });

  it('Stripe: finds every customer of the address across pages and deletes each', async () => {
    const { connector, customers } = await connect('stripe', vendors.stripe);
    expect(await connector.verify(command('delete'))).toEqual({ remaining: 2 });
    expect(await connector.run(command('delete'))).toEqual({ affected: 2 });
    expect([...customers.keys()]).toEqual(['cus_3']);
    expect(await connector.verify(command('delete'))).toEqual({ remaining: 0 });
  });

  it('Segment: a SUPPRESS_WITH_DELETE regulation, polled to FINISHED; suppress and lift as regulations too', async () => {
    const { connector, regulations } = await connect('segment', vendors.segment);
    const { pending } = await connector.run(command('delete'));
    expect(pending).toEqual([{ vendor: 'segment', id: 'reg-1', vars: {}, pollEverySeconds: 3600, deadlineSeconds: 3_024_000 }]);
    const states = [];
    for (let i = 0; i < 3; i += 1) states.push((await connector.poll(command('delete'), pending![0]!)).state);
    expect(states).toEqual(['pending', 'pending', 'done']);
    await connector.run(command('suppress'));
    expect(await connector.run(command('lift'))).toEqual({ affected: 0 }); // nothing of Lethe's to lift
    await connector.run({ ...command('lift'), restrictions: [{ segment: ['subject'] }] });
    expect([...regulations.values()].map((r) => `${r.type} ${r.subjects.join()}`)).toEqual([
      `SUPPRESS_WITH_DELETE ${SUBJECT.userId}`,
      `SUPPRESS_ONLY ${SUBJECT.userId}`,
      `UNSUPPRESS ${SUBJECT.userId}`,
    ]);
  });

  it('Braze: deletes the user by external id, counting what Braze says it deleted', async () => {
    const { connector, users } = await connect('braze', vendors.braze);
    expect(await connector.run(command('delete'))).toEqual({ affected: 1 });
    expect([...users]).toEqual([OTHER.userId]);
  });

  it('Amplitude: a deletion job, staging → submitted → done', async () => {
    const { connector } = await connect('amplitude', vendors.amplitude);
    const { affected, pending } = await connector.run(command('delete'));
    expect(affected).toBe(1);
    expect(pending?.[0]?.id).toBe('2026-12-04');
    expect((await connector.poll(command('delete'), pending![0]!)).state).toBe('pending');
    expect(await connector.poll(command('delete'), pending![0]!)).toEqual({ state: 'done', detail: 'done' });
  });

  it('Mixpanel: a deletion task with the request’s compliance type, polled to SUCCESS', async () => {
    const { connector, tasks } = await connect('mixpanel', vendors.mixpanel);
    const { pending } = await connector.run(command('delete', 'ccpa'));
    expect([...tasks.values()][0]).toMatchObject({ ids: [SUBJECT.userId], type: 'CCPA' });
    const states = [];
    for (let i = 0; i < 3; i += 1) states.push((await connector.poll(command('delete'), pending![0]!)).detail);
    expect(states).toEqual(['PENDING', 'STARTED', 'SUCCESS']);
  });

  it('Intercom: searches the contact by address and deletes it', async () => {
    const { connector, contacts } = await connect('intercom', vendors.intercom);
    expect(await connector.run(command('delete'))).toEqual({ affected: 1 });
    expect([...contacts.values()]).toEqual([OTHER.email]);
    expect(await connector.verify(command('delete'))).toEqual({ remaining: 0 });
  });

  it('Zendesk: soft-deletes, then permanently deletes, every user of the address (following next_page)', async () => {
    const { connector, users } = await connect('zendesk', vendors.zendesk);
    expect(await connector.run(command('delete'))).toEqual({ affected: 2 });
    expect([...users.values()].map((u) => u.state)).toEqual(['purged', 'purged', 'active']);
    expect(await connector.verify(command('delete'))).toEqual({ remaining: 0 });
  });

  it('SendGrid: deletes the contact (a job, done when the search no longer finds it); suppresses and lifts globally', async () => {
    const { connector, contacts, suppressed } = await connect('sendgrid', vendors.sendgrid);
    const { pending } = await connector.run(command('delete'));
    expect(pending).toEqual([{ vendor: 'sendgrid', id: 'job-7', vars: {}, pollEverySeconds: 300, deadlineSeconds: 172_800 }]);
    expect(await connector.poll(command('delete'), pending![0]!)).toEqual({ state: 'done', detail: 'HTTP 404' });
    expect([...contacts.values()]).toEqual([OTHER.email]);
    expect(await connector.run(command('suppress'))).toEqual({ affected: 1 });
    expect([...suppressed]).toEqual([SUBJECT.email]);
    expect(await connector.run({ ...command('lift'), restrictions: [{ sendgrid: ['subject'] }] })).toEqual({ affected: 1 });
    expect(suppressed.size).toBe(0);
  });
});

describe('Vendor lookups under hostile data: only the subject, every form of the subject', () => {
  // As intake hands it on: the normal form, and the form the subject typed.
  const [subject] = normalizeIdentities([{ type: 'email', value: SUBMITTED_EMAIL }]) as [Identity];
  const hostile = (identities: { type: string; value: string; forms?: readonly string[] }[], action: Action = 'delete') => ({ ...command(action), identities });

  it('Zendesk: an address that is search syntax reaches nobody else; the one stored literally is the only match', async () => {
    const planted = NEIGHBOUR_EMAILS.map((e, i): [number, string] => [100 + i, e]);
    const { connector, users, fake } = await connect('zendesk', () => vendors.zendesk(planted));
    const before = JSON.stringify([...users].filter(([id]) => id !== 105));
    // A linked identity, or one taken before intake refused search syntax: `*@example.com`.
    expect(await connector.run(hostile([{ type: 'email', value: '*@example.com' }]))).toEqual({ affected: 1 });
    expect(users.get(105)).toEqual({ email: '*@example.com', state: 'purged' });
    expect(JSON.stringify([...users].filter(([id]) => id !== 105))).toBe(before);
    // Asked as a quoted phrase, never as a wildcard.
    expect(fake.calls[0]!.query.get('query')).toBe('email:"*@example.com"');
  });

  it('Zendesk: results whose own address is not the subject’s are dropped even when the search matches them', async () => {
    const planted = NEIGHBOUR_EMAILS.map((e, i): [number, string] => [100 + i, e]);
    const env = await vendors.zendesk(planted);
    open.push(env.fake);
    // A definition that forgets to quote: the vendor's search then matches by wildcard, as Zendesk's does.
    const settings = httpSettingsSchema.parse({ vendor: 'zendesk', baseUrl: env.fake.url, credentials: { apiToken: { env: 'UNUSED' } }, params: env.params });
    const definition = vendorDefinitionSchema.parse({
      ...settings.definition,
      lookup: settings.definition.lookup.map((l) => ({ ...l, request: { ...l.request, query: { query: 'email:{email}' } } })),
    });
    const connector = new HttpConnector(definition, new VendorClient(definition, { params: settings.params, credentials: env.credentials }, env.fake.url));
    const before = JSON.stringify([...env.users].filter(([id]) => ![105, 106].includes(id)));
    expect(await connector.run(hostile([{ type: 'email', value: '*@example.com' }]))).toEqual({ affected: 1 });
    // The search matched all twelve users; only the one whose address is literally `*@example.com` went.
    expect([...env.users].filter(([, u]) => u.state !== 'active').map(([id]) => id)).toEqual([105]);
    expect(JSON.stringify([...env.users].filter(([id]) => ![105, 106].includes(id)))).toBe(before);
  });

  it('Zendesk: more of the subject’s records than maxTargets fails as ambiguous, and nothing is deleted', async () => {
    const { connector, users } = await connect('zendesk', () => vendors.zendesk([4, 5, 6, 7].map((id): [number, string] => [id, SUBJECT.email])));
    const error = await connector.run(command('delete')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AmbiguousTargetsError);
    expect((error as Error).message).toMatch(/6 records found for the subject, more than maxTargets \(5\); nothing was done/);
    expect([...users.values()].every((u) => u.state === 'active')).toBe(true);
  });

  it('Stripe (case-sensitive): finds the customer stored as the subject typed it, and no neighbour', async () => {
    const planted: [string, string][] = [
      ['cus_typed', SUBMITTED_EMAIL],
      ['cus_normal', SUBJECT_EMAIL_STORED.normal],
      ['cus_upper', SUBJECT_EMAIL_STORED.normal.toUpperCase()], // neither normal nor as typed: the wider net's
      ...NEIGHBOUR_EMAILS.map((e, i): [string, string] => [`cus_n${String(i)}`, e]),
    ];
    const { connector, customers } = await connect('stripe', () => vendors.stripe(planted));
    const neighbours = JSON.stringify([...customers].filter(([id]) => /^cus_(n\d|3)$/.test(id)));
    expect(await connector.verify(hostile([subject]))).toEqual({ remaining: 2, nearMisses: { case: 1 } });
    expect(await connector.run(hostile([subject]))).toEqual({ affected: 2 });
    expect(customers.has('cus_typed')).toBe(false);
    expect(customers.has('cus_normal')).toBe(false);
    expect(JSON.stringify([...customers].filter(([id]) => /^cus_(n\d|3)$/.test(id)))).toBe(neighbours);
    // The customer stored in capitals is the subject's, but Stripe compares exactly: a person must look.
    expect(await connector.verify(hostile([subject]))).toEqual({ remaining: 0, nearMisses: { case: 1 } });
    expect(customers.has('cus_upper')).toBe(true);
  });

  it('Mixpanel: sends only the compliance types its API documents, at the documented path', async () => {
    const { connector, tasks, fake } = await connect('mixpanel', vendors.mixpanel);
    for (const regulation of ['gdpr', 'ccpa', 'vcdpa', 'lgpd']) await connector.run(command('delete', regulation));
    expect([...tasks.values()].map((t) => t.type)).toEqual(['GDPR', 'CCPA', 'CCPA', 'GDPR']);
    expect(fake.calls.map((c) => `${c.method} ${c.path}`)).toEqual(Array(4).fill('POST /api/app/data-deletions/v3.0'));
  });

  it('refuses a regulation the vendor’s map lacks as a configuration error, before any call', async () => {
    const env = await vendors.mixpanel();
    open.push(env.fake);
    const settings = httpSettingsSchema.parse({ vendor: 'mixpanel', baseUrl: env.fake.url, credentials: { gdprToken: { env: 'UNUSED' } }, params: env.params });
    const definition = vendorDefinitionSchema.parse({ ...settings.definition, regulations: { gdpr: 'GDPR', ccpa: 'CCPA' } });
    const connector = new HttpConnector(definition, new VendorClient(definition, { params: settings.params, credentials: env.credentials }, env.fake.url));
    const error = await connector.run(command('delete', 'lgpd')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).issues[0]!.message).toBe('mixpanel takes GDPR or CCPA; the definition gives none for lgpd');
    expect(env.fake.calls).toHaveLength(0);
  });

  it('refuses a path value of "", "." or "..", which would address the resource above', async () => {
    const env = await vendors.acme();
    open.push(env.fake);
    const definition = vendorDefinitionSchema.parse({
      name: 'acme',
      docs: ['https://developer.acme.example/privacy'],
      baseUrl: env.fake.url,
      auth: { type: 'bearer', credential: 'token' },
      credentials: ['token'],
      actions: { delete: { identity: 'user_id', steps: [{ method: 'DELETE', path: '/v2/users/{value}', ok: [202] }] } },
    });
    const connector = new HttpConnector(definition, new VendorClient(definition, { params: {}, credentials: env.credentials }));
    for (const value of ['..', '.', '']) {
      const error = await connector.run(hostile([{ type: 'user_id', value }])).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConnectorPermanentError);
      expect((error as Error).message).toMatch(/may not be empty, "\." or "\.\."/);
    }
    // `..x` and `%2e%2e` are ordinary values, encoded into one segment.
    await connector.run(hostile([{ type: 'user_id', value: '..x' }])).catch(() => undefined);
    expect(env.fake.calls.map((c) => c.path)).toEqual(['/v2/users/..x']);
    env.fake.violations.splice(0); // the fake knows no user `..x`
    expect(env.users.size).toBe(3);
  });

  it('requires a lookup that verifies to say where a result holds its identity', () => {
    const definition = (lookup: Record<string, unknown>) =>
      vendorDefinitionSchema.safeParse({
        name: 'acme',
        docs: ['https://developer.acme.example/privacy'],
        baseUrl: 'https://api.acme.example',
        auth: { type: 'none' },
        lookup: [{ identity: 'email', request: { method: 'GET', path: '/v2/users' }, targets: 'users[].id', ...lookup }],
        actions: { delete: { steps: [{ method: 'DELETE', path: '/v2/users/{id}' }] } },
      });
    const issues = (lookup: Record<string, unknown>) => definition(lookup).error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    expect(issues({})).toEqual(['lookup.0.caseSensitive: Invalid input: expected boolean, received undefined']);
    expect(issues({ caseSensitive: false })).toEqual([
      "lookup.0.match: say where a result holds the identity it was found by, so that only the subject's records are kept",
    ]);
    expect(definition({ caseSensitive: false, match: 'email' }).success).toBe(true);
  });
});

describe('A vendor added with YAML alone', () => {
  it('runs README’s acme definition from its file: lookup across pages, a delete job per user, polled to complete', async () => {
    const env = await vendors.acme();
    open.push(env.fake);
    const block = readFileSync('README.md', 'utf8').split('### Adding a vendor')[1]?.split('```yaml')[1]?.split('```')[0];
    const file = join(mkdtempSync(join(tmpdir(), 'lethe-acme-')), 'acme.yaml');
    writeFileSync(file, block!);
    const settings = httpSettingsSchema.parse({ definition: file, baseUrl: env.fake.url, credentials: { token: { env: 'UNUSED' } }, params: env.params });
    const connector = new HttpConnector(settings.definition, new VendorClient(settings.definition, { params: settings.params, credentials: env.credentials }, settings.baseUrl));

    expect(await connector.verify(command('delete'))).toEqual({ remaining: 2 });
    const { affected, pending } = await connector.run(command('delete'));
    expect(affected).toBe(2);
    expect(pending?.map((j) => `${j.vendor} ${j.id} ${String(j.deadlineSeconds)}`)).toEqual(['acme job-1 604800', 'acme job-2 604800']);
    for (const job of pending!) {
      expect((await connector.poll(command('delete'), job)).state).toBe('pending');
      expect(await connector.poll(command('delete'), job)).toEqual({ state: 'done', detail: 'complete' });
    }
    expect(await connector.verify(command('delete'))).toEqual({ remaining: 0 });
    expect([...env.users.values()]).toEqual([OTHER.email]);
  });
});

describe('Class: VendorClient, authentication', () => {
  const acmeWith = async (auth: Record<string, string>, authorized: (r: vendors.FakeRequest) => boolean) => {
    const env = await vendors.acme(authorized);
    open.push(env.fake);
    const definition = vendorDefinitionSchema.parse({
      name: 'acme',
      docs: ['https://developer.acme.example/privacy'],
      baseUrl: env.fake.url,
      auth,
      credentials: ['apiKey'],
      errorMessage: 'error.message',
      lookup: [{ identity: 'email', request: { method: 'GET', path: '/v2/users', query: { email: '{email}' } }, targets: 'users[].id', caseSensitive: true, cursor: { next: 'next_cursor', param: 'cursor' } }],
      actions: { delete: { steps: [{ method: 'DELETE', path: '/v2/users/{id}', ok: [202] }] } },
      verify: 'none',
    });
    return { env, connector: new HttpConnector(definition, new VendorClient(definition, { params: {}, credentials: { apiKey: 'acme-key' } })) };
  };

  it('sends an API key in a header, with its prefix, as the definition says', async () => {
    const { env, connector } = await acmeWith({ type: 'header', name: 'x-api-key', credential: 'apiKey', prefix: 'Key ' }, (r) => r.headers['x-api-key'] === 'Key acme-key');
    expect(await connector.run(command('delete'))).toEqual({ affected: 2 });
    expect(env.fake.calls.every((c) => !c.headers.authorization && !c.query.has('api_key'))).toBe(true);
  });

  it('sends an API key in the query, as the definition says, and scrubs it from the vendor’s error text', async () => {
    const { env, connector } = await acmeWith({ type: 'query', name: 'api_key', credential: 'apiKey' }, (r) => r.query.get('api_key') === 'acme-key');
    expect(await connector.run(command('delete'))).toEqual({ affected: 2 });
    env.fake.fault(400, 1, {}, { error: { message: 'bad key acme-key' } });
    const error = (await connector.run(command('delete')).catch((e: unknown) => e)) as Error;
    expect(error.message).toBe('acme GET /v2/users: HTTP 400: bad key [redacted]');
  });
});

describe('Class: VendorClient, through the Stripe definition', () => {
  it('is slowed by 429 answers, waiting as Retry-After says, not failed', async () => {
    const { connector, fake, customers } = await connect('stripe', vendors.stripe);
    fake.fault(429, 2, { 'retry-after': '1' });

    expect(await connector.run(command('delete'))).toEqual({ affected: 2 });

    const [first, second, third] = fake.calls;
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(950);
    expect(third!.at - second!.at).toBeGreaterThanOrEqual(950);
    expect(customers.size).toBe(1);
  });

  it('spaces calls by the definition’s token bucket', async () => {
    const env = await vendors.stripe();
    open.push(env.fake);
    const stripeDefinition = httpSettingsSchema.parse({ vendor: 'stripe', credentials: { secretKey: { env: 'UNUSED' } } }).definition;
    const definition = { ...stripeDefinition, name: 'stripe-slow', rateLimit: { requests: 1, perSeconds: 0.4 } };
    const connector = new HttpConnector(definition, new VendorClient(definition, { params: {}, credentials: env.credentials }, env.fake.url));

    await connector.run(command('delete'));

    const at = env.fake.calls.map((c) => c.at);
    expect(at).toHaveLength(4);
    for (let i = 1; i < at.length; i += 1) expect(at[i]! - at[i - 1]!).toBeGreaterThanOrEqual(350);
  });

  it('hands a long Retry-After to the queue as a throttle, without waiting it out', async () => {
    const { connector, fake } = await connect('stripe', vendors.stripe);
    fake.fault(429, 1, { 'retry-after': '120' });
    const error = await connector.run(command('delete')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectorThrottledError);
    expect((error as ConnectorThrottledError).retryAfterSeconds).toBe(120);
  });

  it('retries a 5xx, and gives up retryably when it persists', async () => {
    const { connector, fake } = await connect('stripe', vendors.stripe);
    fake.fault(503, 2);
    expect(await connector.run(command('delete'))).toEqual({ affected: 2 });

    fake.fault(500, 10);
    await expect(connector.verify(command('delete'))).rejects.toThrow(ConnectorRetryableError);
  });

  it('fails a 4xx permanently with the vendor’s message, the subject’s identities scrubbed', async () => {
    const { connector, fake } = await connect('stripe', vendors.stripe);
    fake.fault(400, 1, {}, { error: { message: `Invalid email: ${SUBJECT.email} (customer ${SUBJECT.userId})` } });
    const error = (await connector.run(command('delete')).catch((e: unknown) => e)) as Error;
    expect(error).toBeInstanceOf(ConnectorPermanentError);
    expect(error.message).toBe('stripe GET /v1/customers: HTTP 400: Invalid email: [redacted] (customer [redacted])');
  });

  it('fails permanently on wrong credentials', async () => {
    const env = await vendors.stripe();
    open.push(env.fake);
    const settings = httpSettingsSchema.parse({ vendor: 'stripe', baseUrl: env.fake.url, credentials: { secretKey: { env: 'UNUSED' } } });
    const connector = new HttpConnector(settings.definition, new VendorClient(settings.definition, { params: {}, credentials: { secretKey: 'sk_wrong' } }, settings.baseUrl));
    await expect(connector.run(command('delete'))).rejects.toThrow(/HTTP 401/);
  });
});

describe('Schema: http connector settings', () => {
  const issues = (settings: unknown) => {
    const parsed = httpSettingsSchema.safeParse(settings);
    return parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };

  it('names every problem of a definition at once', () => {
    expect(
      issues({
        definition: {
          name: 'acme',
          docs: ['https://acme.test/docs'],
          baseUrl: 'https://{params.region}.acme.test',
          auth: { type: 'bearer', credential: 'token' },
          actions: {
            delete: { identity: 'email', steps: [{ method: 'DELETE', path: '/users/{email|sha1}' }], count: 'deleted &&' },
          },
        },
      }),
    ).toEqual([
      'definition.actions.delete.steps.0.path: "{email|sha1}": unknown filter "sha1" (known: lower, upper, md5, sha256, base64, soql, phrase)',
      'definition.actions.delete.count: not a JMESPath expression: Syntax error: invalid token (EOF): ""',
      'definition.auth: credential "token" is not in credentials',
    ]);
    // Once the shape is right, references are checked too.
    expect(
      issues({
        definition: {
          name: 'acme',
          docs: ['https://acme.test/docs'],
          baseUrl: 'https://{params.region}.acme.test',
          auth: { type: 'none' },
          actions: { delete: { identity: 'email', steps: [{ method: 'DELETE', path: '/users/{value}?key={credentials.key}' }] } },
        },
      }),
    ).toEqual([
      'definition.baseUrl: {params.region}: "region" is not in params',
      'definition.actions.delete.steps.0.path: {credentials.key}: "key" is not in credentials',
    ]);
  });

  it('names a missing vendor, credential or param, and an unknown one', () => {
    expect(issues({ vendor: 'myspace' })).toEqual([expect.stringMatching(/^vendor: no built-in vendor "myspace" \(known: amplitude, braze, hubspot/)]);
    expect(issues({ vendor: 'zendesk', credentials: { token: { env: 'X' } }, params: { subdomain: 'acme' } })).toEqual([
      'credentials.apiToken: zendesk needs credential "apiToken" (a secret by reference)',
      'credentials.token: zendesk has no credential "token" (it takes: apiToken)',
      'params.agentEmail: zendesk needs param "agentEmail"',
    ]);
  });
});
