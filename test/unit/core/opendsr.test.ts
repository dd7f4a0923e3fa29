import { describe, expect, it } from 'vitest';
import { discovery, openDsrError, openDsrRequestSchema, openDsrStatus, toSubmission } from '#core/opendsr';
import { REQUEST_STATUSES, parseSubmission } from '#core/request';

const example = {
  subject_request_id: 'a7551968-d5d6-44b2-9831-815ac9017798',
  regulation: 'gdpr',
  subject_request_type: 'erasure',
  submitted_time: '2018-10-02T15:00:00Z',
  subject_identities: [
    { identity_type: 'email', identity_value: 'johndoe@example.com', identity_format: 'raw' },
    { identity_type: 'controller_customer_id', identity_value: 'c-1', identity_format: 'raw' },
    { identity_type: 'ios_advertising_id', identity_value: 'EA7583CD-A667-48BC-B806-42ECB2B48606', identity_format: 'raw' },
  ],
  api_version: '2.0',
  status_callback_urls: ['https://example-controller.com/opendsr/callbacks'],
  extensions: { 'example-processor.com': { property_id: '123456' } },
};

describe('Module: core/opendsr', () => {
  it("takes the specification's example request and makes it a Lethe erasure under the controller's id", () => {
    const parsed = openDsrRequestSchema.parse(example);
    const submission = toSubmission(parsed);
    expect(submission).toEqual({
      type: 'erasure',
      regulation: 'gdpr',
      requestId: example.subject_request_id,
      submittedAt: '2018-10-02T15:00:00Z',
      identities: [
        { type: 'email', value: 'johndoe@example.com' },
        { type: 'user_id', value: 'c-1' },
        { type: 'ios_advertising_id', value: 'EA7583CD-A667-48BC-B806-42ECB2B48606' },
      ],
    });
    expect(parseSubmission(submission).requestId).toBe(example.subject_request_id);
    expect(openDsrRequestSchema.parse({ ...example, status_callback_urls: undefined }).status_callback_urls).toEqual([]);
  });

  it('says every Lethe status as one of the four OpenDSR has; a failure is not fulfilled, so in progress', () => {
    expect(Object.fromEntries(REQUEST_STATUSES.map((s) => [s, openDsrStatus(s)]))).toEqual({
      received: 'pending',
      in_progress: 'in_progress',
      completed: 'completed',
      partially_failed: 'in_progress',
      needs_review: 'in_progress',
      failed: 'in_progress',
      cancelled: 'cancelled',
    });
  });

  it('discovers erasure of raw identities only, with the certificate URL given', () => {
    const d = discovery('https://opendsr.example.com/v2/cert.pem') as { supported_identities: { identity_format: string }[] };
    expect(d).toMatchObject({ api_version: '2.0', supported_subject_request_types: ['erasure'], processor_certificate: 'https://opendsr.example.com/v2/cert.pem' });
    expect(new Set(d.supported_identities.map((i) => i.identity_format))).toEqual(new Set(['raw']));
    expect(d.supported_identities).toHaveLength(11);
  });

  it('writes errors in the specification’s shape', () => {
    expect(openDsrError(400, 'invalid', [{ path: 'subject_request_id', message: 'is required' }])).toEqual({
      error: { code: 400, message: 'invalid', errors: [{ domain: 'Validation', reason: 'IllegalArgumentException', message: 'subject_request_id: is required' }] },
    });
    expect(openDsrError(404, 'not found')).toEqual({ error: { code: 404, message: 'not found' } });
  });
});
