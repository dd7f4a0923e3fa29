import { z } from 'zod';
import type { RequestStatus, Submission } from './request.ts';

/**
 * OpenDSR 2.0 (formerly OpenGDPR), the processor's side: what a controller sends, how it maps to
 * a Lethe request, and what Lethe answers. Only `erasure` maps (OpenDSR has no opt-out, and access
 * and portability are not what Lethe does), and only raw identities (a hashed e-mail cannot be
 * normalized and pseudonymized as intake does).
 */
export const OPENDSR_VERSION = '2.0';
/** Headers of signed answers and callbacks (and the v1 names, which processors must still honour). */
export const DOMAIN_HEADER = 'X-OpenDSR-Processor-Domain';
export const SIGNATURE_HEADER = 'X-OpenDSR-Signature';
/** The event (on Lethe's bus) that makes the callbacks run besides the saga's own status changes. */
export const OPENDSR_CHANGED = 'OpenDSR Request Changed';

/** OpenDSR identity types and the Lethe identity each becomes; the others keep their name. */
const IDENTITY_TYPES: Readonly<Record<string, string>> = { email: 'email', controller_customer_id: 'user_id' };
export const OPENDSR_IDENTITY_TYPES = [
  'controller_customer_id',
  'android_advertising_id',
  'android_id',
  'email',
  'fire_advertising_id',
  'ios_advertising_id',
  'ios_vendor_id',
  'microsoft_advertising_id',
  'microsoft_publisher_id',
  'roku_publisher_id',
  'roku_advertising_id',
] as const;

/** A callback URL: HTTPS, or HTTP to this machine (local mode and tests). */
const callbackUrl = z.url().refine((u) => {
  const url = new URL(u);
  return url.protocol === 'https:' || (url.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname));
}, 'must be an https URL');

export const openDsrRequestSchema = z.object({
  regulation: z.enum(['gdpr', 'ccpa']),
  subject_request_id: z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'must be a lower-case UUID v4'),
  subject_request_type: z.enum(['erasure', 'access', 'portability']).refine((t) => t === 'erasure', 'only erasure is supported here (see discovery)'),
  subject_identities: z
    .array(
      z.object({
        identity_type: z.enum(OPENDSR_IDENTITY_TYPES),
        identity_value: z.string().min(1).max(512),
        identity_format: z.enum(['raw', 'sha1', 'md5', 'sha256']).refine((f) => f === 'raw', 'only raw identities are supported here (see discovery)'),
      }),
    )
    .min(1, 'at least one identity is required')
    .max(20, 'at most 20 identities'),
  submitted_time: z.iso.datetime({ offset: true }),
  api_version: z.string().max(16).optional(),
  status_callback_urls: z.array(callbackUrl).max(10).default([]),
  extensions: z.record(z.string(), z.unknown()).optional(),
});
export type OpenDsrRequest = z.output<typeof openDsrRequestSchema>;

/** The Lethe erasure an OpenDSR request becomes: its id is the controller's subject request id. */
export function toSubmission(request: OpenDsrRequest): Submission {
  return {
    type: 'erasure',
    regulation: request.regulation,
    requestId: request.subject_request_id,
    // The subject's own request to the controller starts the legal clock (§7.1.1).
    submittedAt: request.submitted_time,
    identities: request.subject_identities.map((i) => ({ type: IDENTITY_TYPES[i.identity_type] ?? i.identity_type, value: i.identity_value })),
  };
}

export type OpenDsrStatus = 'pending' | 'in_progress' | 'completed' | 'cancelled';

/**
 * A Lethe status as OpenDSR says it. OpenDSR has no failure: a failed request is not fulfilled,
 * and stays `in_progress` until an operator retries it to completion or cancels it.
 */
export function openDsrStatus(status: RequestStatus): OpenDsrStatus {
  switch (status) {
    case 'received':
      return 'pending';
    case 'completed':
      return 'completed';
    case 'cancelled':
      return 'cancelled';
    default:
      return 'in_progress';
  }
}

/** What discovery says this processor supports. */
export function discovery(certificateUrl: string): object {
  return {
    api_version: OPENDSR_VERSION,
    supported_identities: OPENDSR_IDENTITY_TYPES.map((identity_type) => ({ identity_type, identity_format: 'raw' })),
    supported_subject_request_types: ['erasure'],
    processor_certificate: certificateUrl,
  };
}

/** OpenDSR's error object (§7.6): never an identity or a credential in it. */
export function openDsrError(code: number, message: string, errors: readonly { path: string; message: string }[] = []): object {
  return {
    error: {
      code,
      message,
      ...(errors.length > 0 && { errors: errors.map((e) => ({ domain: 'Validation', reason: 'IllegalArgumentException', message: e.path ? `${e.path}: ${e.message}` : e.message })) }),
    },
  };
}
