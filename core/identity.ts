import { createHmac } from 'node:crypto';
import { domainToASCII } from 'node:url';
import { parsePhoneNumberFromString } from 'libphonenumber-js/max';
import { ValidationError, type FieldIssue } from './errors.ts';

export interface Identity {
  readonly type: string;
  readonly value: string;
}

/** A pseudonymous identity: what may travel through queues, state machines, logs and audit. */
export interface PseudonymousIdentity {
  readonly type: string;
  /** HMAC-SHA256 of `type:normalizedValue`, hex. */
  readonly pseudonym: string;
}

/** The HMAC key that turns identities into pseudonyms, and its version (recorded with every pseudonym). */
export interface PseudonymKey {
  readonly version: string;
  readonly key: Uint8Array;
}

/**
 * An address as people have them (RFC 5321/6531): a local part of up to 64 characters, any but
 * whitespace, `@` and quotes (Unicode too), at a domain with a dot, in its ASCII (punycode) form.
 */
const EMAIL = /^[^\s@"]{1,64}@(?=.{4,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$/u;

/**
 * Normalize one identity: e-mail addresses trimmed and lower-cased, phone numbers to E.164,
 * every other (opaque) identity kept exactly as given.
 */
export function normalizeIdentity(identity: Identity): Identity {
  switch (identity.type) {
    case 'email': {
      // Lower-cased, and the domain in ASCII, so that Ada@Bücher.de and ada@xn--bcher-kva.de are one subject.
      const trimmed = identity.value.trim();
      const at = trimmed.lastIndexOf('@');
      const value = at > 0 ? `${trimmed.slice(0, at).toLowerCase()}@${domainToASCII(trimmed.slice(at + 1).toLowerCase())}` : '';
      if (!EMAIL.test(value)) throw invalid('must be an e-mail address');
      return { type: 'email', value };
    }
    case 'phone': {
      const phone = parsePhoneNumberFromString(identity.value.trim());
      if (!phone?.isValid()) throw invalid('must be a phone number in international format, e.g. +44 20 7946 0958');
      return { type: 'phone', value: phone.number };
    }
    default:
      return { type: identity.type, value: identity.value };
  }
}

/** Normalize a list of identities, naming every invalid one at once, and drop exact duplicates. */
export function normalizeIdentities(identities: readonly Identity[]): Identity[] {
  return [...new Map(normalizeEach(identities).map((n) => [`${n.type}\u0000${n.value}`, n])).values()];
}

/** Normalize each identity of a list, in its place, naming every invalid one (`identities.<i>.value`) at once. */
export function normalizeEach(identities: readonly Identity[]): Identity[] {
  const issues: FieldIssue[] = [];
  const out = identities.map((identity, index) => {
    try {
      return normalizeIdentity(identity);
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      issues.push(...error.issues.map((i) => ({ path: `identities.${String(index)}.value`, message: i.message })));
      return identity;
    }
  });
  if (issues.length > 0) throw new ValidationError(issues);
  return out;
}

export function pseudonymize(identity: Identity, key: PseudonymKey): PseudonymousIdentity {
  const pseudonym = createHmac('sha256', key.key).update(`${identity.type}:${identity.value}`).digest('hex');
  return { type: identity.type, pseudonym };
}

function invalid(message: string): ValidationError {
  return new ValidationError([{ path: 'value', message }]);
}
