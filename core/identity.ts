import { createHmac } from 'node:crypto';
import { domainToASCII } from 'node:url';
import { parsePhoneNumberFromString } from 'libphonenumber-js/max';
import { ValidationError, type FieldIssue } from './errors.ts';

export interface Identity {
  readonly type: string;
  readonly value: string;
  /**
   * The other forms the subject gave this identity in (as submitted, trimmed), where they differ
   * from the normal `value`: a system that matches exactly is asked with these too. They travel
   * sealed with the identities and are never pseudonymized.
   */
  readonly forms?: readonly string[];
}

/** Every form of an identity to ask a system with: its normal value first, then the forms it was given in. */
export const formsOf = (identity: Identity): string[] => [...new Set([identity.value, ...(identity.forms ?? [])])];

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
 * Characters that are search syntax in the systems an e-mail address is looked up in (wildcards in
 * Zendesk's and Salesforce's search, SQL's LIKE) and that no address of a real person needs: an
 * address holding one could match other people's records.
 */
const SEARCH_SYNTAX = /[*?%]/u;

/**
 * Normalize one identity: e-mail addresses trimmed, in Unicode NFC and lower-cased, phone numbers to
 * E.164, every other (opaque) identity kept exactly as given.
 */
export function normalizeIdentity(identity: Identity): Identity {
  switch (identity.type) {
    case 'email': {
      // NFC and lower-cased, and the domain in ASCII, so that Ada@Bücher.de, ada@bu\u0308cher.de and
      // ada@xn--bcher-kva.de are one subject.
      const value = canonicalValue('email', identity.value);
      if (!EMAIL.test(value)) throw invalid('must be an e-mail address');
      if (SEARCH_SYNTAX.test(value)) throw invalid('must not contain *, ? or %: they are search syntax in the systems it is looked up in');
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

/**
 * A value as a system holds it, in the subject's normal form where that can be had without
 * validating it (a stored address may be anything): e-mail addresses trimmed, NFC and lower-cased
 * with the domain in ASCII, phone numbers in E.164 where they parse; anything else as it is. For
 * telling whether a record a system returned is the subject's.
 */
export function canonicalValue(type: string, value: string): string {
  if (type === 'email') {
    const trimmed = value.trim();
    const at = trimmed.lastIndexOf('@');
    const domain = at > 0 ? domainToASCII(trimmed.slice(at + 1).normalize('NFC').toLowerCase()) : '';
    return at > 0 && domain ? `${trimmed.slice(0, at).normalize('NFC').toLowerCase()}@${domain}` : trimmed.normalize('NFC').toLowerCase();
  }
  if (type === 'phone') return parsePhoneNumberFromString(value.trim())?.number ?? value;
  return value;
}

function withForms(identity: Identity, given: readonly string[]): Identity {
  const forms = [...new Set(given)].filter((f) => f !== identity.value);
  return forms.length > 0 ? { ...identity, forms } : identity;
}

/**
 * Normalize a subject's identities, naming every invalid one at once, and merge duplicates. An
 * e-mail address keeps the forms it was submitted in (trimmed) where they differ from its normal
 * value, for the systems that match exactly.
 */
export function normalizeIdentities(identities: readonly Identity[]): Identity[] {
  const normal = normalizeEach(identities);
  const merged = new Map<string, Identity>();
  normal.forEach((n, i) => {
    const key = `${n.type}\u0000${n.value}`;
    const given = n.type === 'email' ? [identities[i]!.value.trim()] : [];
    const seen = merged.get(key) ?? n;
    merged.set(key, withForms(seen, [...(seen.forms ?? []), ...given]));
  });
  return [...merged.values()];
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
