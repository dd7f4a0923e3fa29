import { Webhook } from 'standardwebhooks';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { WebhookConnector } from '#connectors/webhook/connector';
import { signatureHeaders, signerOf, verifySignature, webhookSigner } from '#connectors/webhook/protocol';
import { webhookSettingsSchema } from '#connectors/webhook/settings';
import { ConnectorPermanentError, ConnectorRetryableError, UnauthorizedError } from '#core/errors';
import type { ConnectorCommand, Restriction } from '#core/ports';
import type { Action } from '#core/request';
import { WEBHOOK_SECRET, webhookService, type WebhookService } from '../fixtures/webhook-service.ts';

/**
 * The webhook connector against a service on 127.0.0.1 written with the `standardwebhooks`
 * library, as a company would write one: deliveries verify there, answers verify here, and a
 * signature more than 5 minutes old is refused on either side.
 */
const SUBJECT = 'ada@example.com';
const OTHER = 'grace@example.com';
let service: WebhookService;

beforeEach(async () => {
  service = await webhookService();
  service.records.set(SUBJECT, 3);
  service.records.set(OTHER, 1);
});
afterEach(async () => {
  vi.useRealTimers();
  await service.close();
});

const connect = (settings: Record<string, unknown> = {}, policy = {}) =>
  new WebhookConnector(
    'billing-svc',
    webhookSettingsSchema.parse({ url: service.url, secret: { env: 'UNUSED' }, handles: ['delete', 'restrict', 'lift'], ...settings }),
    webhookSigner(WEBHOOK_SECRET),
    3600,
    policy,
  );

const command = (action: Action, extra: Partial<ConnectorCommand> = {}): ConnectorCommand => ({
  requestId: '6a6b6c6d-0000-4000-8000-0000000000aa',
  action,
  regulation: 'ccpa',
  identities: [
    { type: 'email', value: SUBJECT },
    { type: 'user_id', value: 'u-ada' },
  ],
  keyedHash: () => '',
  callbackUrl: 'https://lethe.example/prod/v1/callbacks/6a6b6c6d-0000-4000-8000-0000000000aa/billing-svc/delete',
  ...extra,
});

describe('Class: WebhookConnector', () => {
  it('POSTs a signed delivery the service verifies, and counts what its signed answer says it deleted', async () => {
    expect(await connect().run(command('delete'))).toEqual({ affected: 3 });

    expect([...service.records.keys()]).toEqual([OTHER]);
    expect(service.rejected).toEqual([]);
    const [{ delivery, headers }] = service.deliveries as [WebhookService['deliveries'][number]];
    expect(delivery).toMatchObject({
      type: 'lethe.task',
      version: 1,
      id: '6a6b6c6d-0000-4000-8000-0000000000aa:billing-svc:delete',
      requestId: '6a6b6c6d-0000-4000-8000-0000000000aa',
      system: 'billing-svc',
      action: 'delete',
      regulation: 'ccpa',
      identities: [
        { type: 'email', value: SUBJECT },
        { type: 'user_id', value: 'u-ada' },
      ],
      callbackUrl: command('delete').callbackUrl,
    });
    expect(headers['webhook-id']).toBe(delivery.id);
    expect(Math.abs(Number(headers['webhook-timestamp']) - Date.now() / 1000)).toBeLessThan(5);
  });

  it('hands the service the forms the subject typed an address in, signed with the rest', async () => {
    const identities = [{ type: 'email', value: 'jürgen.ada@example.com', forms: ['Ju\u0308rgen.Ada@Example.com'] }];
    await connect().run(command('delete', { identities }));
    const [{ delivery }] = service.deliveries as [WebhookService['deliveries'][number]];
    expect(delivery.identities).toEqual(identities);
    expect(service.rejected).toEqual([]);
  });

  it('keeps the delivery id of a task across retries, so the service can deduplicate', async () => {
    await connect().run(command('delete'));
    await connect().run(command('delete'));
    expect(service.deliveries.map((d) => d.delivery.id)).toEqual([
      '6a6b6c6d-0000-4000-8000-0000000000aa:billing-svc:delete',
      '6a6b6c6d-0000-4000-8000-0000000000aa:billing-svc:delete',
    ]);
    expect(service.deliveries[1]!.delivery).toMatchObject({ action: 'delete' });
  });

  it('leaves an accepted task pending on the service’s callback, until the deadline', async () => {
    service.mode = 'accept';
    const result = await connect({ callbackDeadlineSeconds: 7200 }).run(command('delete'));

    expect(result).toEqual({
      affected: 0,
      pending: [{ vendor: 'webhook', id: '6a6b6c6d-0000-4000-8000-0000000000aa:billing-svc:delete', vars: {}, pollEverySeconds: 900, deadlineSeconds: 3600, awaiting: 'its callback' }],
    });
    expect(new Date(service.deliveries[0]!.delivery.deadline).getTime() - Date.now()).toBeGreaterThan(3590_000);
  });

  it('fails permanently with the service’s error code when it refuses', async () => {
    service.mode = { fail: 'legal_hold' };
    const error = await connect().run(command('delete')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectorPermanentError);
    expect((error as Error).message).toBe('billing-svc: the service failed the delete: legal_hold');
  });

  it('retries a 5xx, and gives up retryably when it persists', async () => {
    service.fault(503, 2);
    expect(await connect().run(command('delete'))).toEqual({ affected: 3 });
    expect(service.deliveries).toHaveLength(1);

    service.fault(502, 5);
    await expect(connect().run(command('delete'))).rejects.toThrow(ConnectorRetryableError);
  });

  it('is slowed by a 429, signing each attempt anew', async () => {
    service.fault(429, 1, '1');
    const started = Date.now();
    expect(await connect().run(command('delete'))).toEqual({ affected: 3 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(service.rejected).toEqual([]);
  });

  it.each([
    ['unsigned', /the answer is not believed: not signed/],
    ['wrong-secret', /the answer is not believed: the signature does not match/],
    ['stale', /the answer is not believed: the signature is more than 5 minutes old/],
  ] as const)('believes no %s answer, failing permanently', async (signing, message) => {
    service.answerSigning = signing;
    const error = await connect().run(command('delete')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectorPermanentError);
    expect((error as Error).message).toMatch(message);
  });

  it('names the status of a refusal it cannot believe, and nothing of its body', async () => {
    service.fault(403, 1);
    await expect(connect().run(command('delete'))).rejects.toThrow(/^billing-svc webhook: HTTP 403$/);
  });

  it('records a restriction before restricting, and lifts only what it recorded', async () => {
    const recorded: Restriction[] = [];
    await connect().run(command('restrict', { recordRestriction: (r) => Promise.resolve(void recorded.push(r)) }));
    expect(recorded).toEqual([{ 'billing-svc': ['subject'] }]);

    expect(await connect().run(command('lift', { restrictions: [] }))).toEqual({ affected: 0 });
    expect(service.deliveries.map((d) => d.delivery.action)).toEqual(['restrict']);
    expect(await connect().run(command('lift', { restrictions: recorded }))).toEqual({ affected: 1 });
    expect(service.deliveries.map((d) => d.delivery.action)).toEqual(['restrict', 'lift']);
  });

  it('refuses an action the service does not handle, without calling it', async () => {
    await expect(connect({ handles: ['delete'] }).run(command('anonymize'))).rejects.toThrow('billing-svc: the service does not handle anonymize');
    expect(service.deliveries).toEqual([]);
  });
});

describe('Module: webhook protocol signatures', () => {
  const signer = webhookSigner(WEBHOOK_SECRET);
  const body = '{"status":"done","affected":1}';

  it('lets a Standard Webhooks library verify a delivery, and refuse it replayed after 5 minutes', async () => {
    await connect().run(command('delete'));
    const { body: sent, headers } = service.deliveries[0]!;
    const library = new Webhook(WEBHOOK_SECRET);
    expect(() => library.verify(sent, headers as Record<string, string>)).not.toThrow();
    vi.useFakeTimers({ now: Date.now() + 5 * 60_000 + 1000, toFake: ['Date'] });
    expect(() => library.verify(sent, headers as Record<string, string>)).toThrow(/too old/);
  });

  it('accepts a fresh signature for the expected message id only', () => {
    const headers = signatureHeaders(signer, 'r:s:delete', body);
    expect(() => verifySignature(signer, body, headers, 'r:s:delete')).not.toThrow();
    expect(() => verifySignature(signer, body, headers, 'r:s:restrict')).toThrow('signed for another task (webhook-id)');
    expect(() => verifySignature(signer, `${body} `, headers)).toThrow('the signature does not match');
    expect(() => verifySignature(signer, body, {})).toThrow(UnauthorizedError);
  });

  it('refuses a signature more than 5 minutes old, or ahead', () => {
    const old = signatureHeaders(signer, 'id', body, new Date(Date.now() - 5 * 60_000 - 2000));
    const ahead = signatureHeaders(signer, 'id', body, new Date(Date.now() + 5 * 60_000 + 2000));
    const recent = signatureHeaders(signer, 'id', body, new Date(Date.now() - 4 * 60_000));
    expect(() => verifySignature(signer, body, old)).toThrow(/more than 5 minutes old/);
    expect(() => verifySignature(signer, body, ahead)).toThrow(/more than 5 minutes old \(or ahead\)/);
    expect(() => verifySignature(signer, body, recent)).not.toThrow();
  });

  it('refuses a secret that is not a Standard Webhooks secret, or too short, naming the system and not the secret', async () => {
    process.env['LETHE_TEST_WEBHOOK_SHORT'] = `whsec_${Buffer.from('short').toString('base64')}`;
    process.env['LETHE_TEST_WEBHOOK_BAD'] = 'whsec_***not base64***';
    const stores = { secret: () => Promise.resolve(undefined), parameter: () => Promise.resolve(undefined) };
    await expect(signerOf('billing-svc', { env: 'LETHE_TEST_WEBHOOK_SHORT' }, stores)).rejects.toThrow(
      'billing-svc: the webhook secret has 5 bytes; give it at least 24 random bytes',
    );
    const bad = await signerOf('billing-svc', { env: 'LETHE_TEST_WEBHOOK_BAD' }, stores).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(ConnectorPermanentError);
    expect((bad as Error).message).not.toContain('not base64');
  });
});

describe('Schema: webhook connector settings', () => {
  const issues = (settings: unknown) => {
    const parsed = webhookSettingsSchema.safeParse(settings);
    return parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };

  it('takes an https service, or http on this machine, with a secret by reference', () => {
    expect(issues({ url: 'https://billing.internal.example/lethe', secret: { secretArn: 'arn:aws:secretsmanager:eu-west-1:1:secret:x' } })).toEqual([]);
    expect(issues({ url: 'http://127.0.0.1:8080/lethe', secret: { env: 'WEBHOOK_SECRET' }, handles: ['delete', 'suppress'] })).toEqual([]);
    expect(webhookSettingsSchema.parse({ url: 'https://a.example', secret: { env: 'S' } })).toMatchObject({ handles: ['delete'], callTimeoutSeconds: 30 });
  });

  it('names every problem at once', () => {
    expect(issues({ url: 'http://billing.internal.example/lethe', secret: 'whsec_inline', handles: ['shred'], callTimeoutSeconds: 300, extra: 1 })).toEqual([
      'url: must be an https URL (http only to 127.0.0.1 or localhost)',
      expect.stringMatching(/^secret: /),
      expect.stringMatching(/^handles\.0: /),
      expect.stringMatching(/^callTimeoutSeconds: /),
      expect.stringMatching(/^: Unrecognized key/),
    ]);
  });
});
