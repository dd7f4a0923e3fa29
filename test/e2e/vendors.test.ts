import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalMode, waitFor, type RunningLocalMode } from '../fixtures/local-mode.ts';
import { dynamoUnavailable } from '../fixtures/servers.ts';
import * as vendors from '../fixtures/vendors.ts';

/**
 * Local mode with four vendors on fakes of their documented APIs: HubSpot and Stripe answer at
 * once, Segment with a job that the poller follows to FINISHED, Braze refuses one user (a 4xx).
 */
const unavailable = dynamoUnavailable();
if (unavailable) console.warn(`skipping the vendors end-to-end test: ${unavailable}`);

interface Status {
  status: string;
  systems: { system: string; action: string; status: string; affected: number | null; jobs?: string; error?: { name: string; message: string } }[];
}

describe.skipIf(unavailable)('Local mode, an erasure across vendors', () => {
  let local: RunningLocalMode;
  let fakes: {
    hubspot: Awaited<ReturnType<typeof vendors.hubspot>>;
    stripe: Awaited<ReturnType<typeof vendors.stripe>>;
    segment: Awaited<ReturnType<typeof vendors.segment>>;
    braze: Awaited<ReturnType<typeof vendors.braze>>;
  };

  beforeAll(async () => {
    fakes = { hubspot: await vendors.hubspot(), stripe: await vendors.stripe(), segment: await vendors.segment(), braze: await vendors.braze() };
    const config = join(await import('node:os').then((os) => os.tmpdir()), `lethe-vendors-${String(process.pid)}.yaml`);
    writeFileSync(
      config,
      `version: 1
identities: [email, user_id]
systems:
  crm:
    connector: http
    identities: [email]
    settings: { vendor: hubspot, baseUrl: '${fakes.hubspot.fake.url}', credentials: { token: { env: LETHE_E2E_HUBSPOT_TOKEN } } }
  billing:
    connector: http
    identities: [email]
    settings: { vendor: stripe, baseUrl: '${fakes.stripe.fake.url}', credentials: { secretKey: { env: LETHE_E2E_STRIPE_KEY } } }
  analytics:
    connector: http
    identities: [user_id]
    heartbeatSeconds: 30
    timeoutSeconds: 3100000
    settings: { vendor: segment, baseUrl: '${fakes.segment.fake.url}', credentials: { token: { env: LETHE_E2E_SEGMENT_TOKEN } }, pollEverySeconds: 1 }
  engagement:
    connector: http
    identities: [user_id]
    maxAttempts: 2
    settings: { vendor: braze, baseUrl: '${fakes.braze.fake.url}', credentials: { apiKey: { env: LETHE_E2E_BRAZE_KEY } }, params: { restHost: unused } }
`,
    );
    local = await startLocalMode({
      LETHE_CONFIG: config,
      LETHE_SCHEDULE_SECONDS: '1',
      LETHE_E2E_HUBSPOT_TOKEN: 'hs-token',
      LETHE_E2E_STRIPE_KEY: 'sk_test_1',
      LETHE_E2E_SEGMENT_TOKEN: 'seg-token',
      LETHE_E2E_BRAZE_KEY: 'braze-key',
    });
  });

  afterAll(async () => {
    if (local.child.exitCode === null) local.child.kill('SIGKILL');
    for (const f of Object.values(fakes)) await f.fake.close();
  });

  const erase = async (email: string, userId: string): Promise<Status> => {
    const response = await fetch(`${local.api}/v1/requests`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'erasure', regulation: 'gdpr', identities: [{ type: 'email', value: email }, { type: 'user_id', value: userId }] }),
    });
    const { requestId } = (await response.json()) as { requestId: string };
    return waitFor(
      'the request to finish',
      async () => {
        const s = (await (await fetch(`${local.api}/v1/requests/${requestId}`)).json()) as Status;
        return ['completed', 'partially_failed', 'failed'].includes(s.status) ? s : undefined;
      },
      60_000,
    );
  };

  it('completes once every vendor is done, the asynchronous one followed by the poller', async () => {
    const done = await erase(vendors.SUBJECT.email, vendors.SUBJECT.userId);

    expect(done.status).toBe('completed');
    expect(done.systems.map((s) => `${s.system} ${s.status} ${String(s.affected)}`)).toEqual([
      'analytics succeeded 1',
      'billing succeeded 2',
      'crm succeeded 1',
      'engagement succeeded 1',
    ]);
    expect(done.systems.find((s) => s.system === 'analytics')?.jobs).toBe('segment job reg-1');
    expect(fakes.segment.regulations.get('reg-1')?.polls).toBe(3);
    expect([...fakes.hubspot.contacts.keys()]).toEqual([vendors.OTHER.email]);
    expect([...fakes.stripe.customers.values()]).toEqual([vendors.OTHER.email]);
    expect([...fakes.braze.users]).toEqual([vendors.OTHER.userId]);
    for (const f of Object.values(fakes)) expect(f.fake.violations).toEqual([]);
  });

  it('ends partially failed when a vendor refuses, with that system’s cause and no identifier in it', async () => {
    const done = await erase('mallory@example.com', 'u-mallory');

    expect(done.status).toBe('partially_failed');
    const engagement = done.systems.find((s) => s.system === 'engagement');
    expect(engagement).toMatchObject({
      status: 'failed',
      error: { name: 'ConnectorPermanentError', message: 'braze POST /users/delete: HTTP 400: external_id [redacted] cannot be deleted in this workspace' },
    });
    expect(done.systems.filter((s) => s.system !== 'engagement').every((s) => s.status === 'succeeded')).toBe(true);
  });

  it('logged no identifier of either subject', () => {
    const log = readFileSync(join(local.stateDir, 'local.log'), 'utf8');
    for (const raw of [vendors.SUBJECT.email, vendors.SUBJECT.userId, 'mallory@example.com', 'u-mallory']) expect(log).not.toContain(raw);
  });
});
