import { GppModel, Sections } from '@iabgpp/cmpapi';
import type { Identity } from '../core/identity.ts';
import type { Regulation, Submission } from '../core/request.ts';
import type { Scope } from '../core/suppression.ts';

/**
 * Opt-out preference signals, as a product backend receives them with a request, turned into one
 * Lethe `opt_out` for the identities the backend links to that browser or device:
 *
 * - Global Privacy Control: a `Sec-GPC` header whose value is exactly `1` (a server must ignore any
 *   other value; of several headers, one `1` is enough). It asks that data not be sold or shared
 *   (cross-context advertising): `sale` and `sharing`.
 * - IAB GPP strings: in the US national section and every US state section, `SaleOptOut = 1`
 *   gives `sale`, `SharingOptOut = 1` and `TargetedAdvertisingOptOut = 1` give `sharing`, and a
 *   GPC sub-section with `Gpc` set gives both. The legacy US Privacy section (`uspv1`, or a bare
 *   `us_privacy` string such as `1YYN`) with `OptOutSale = Y` gives `sale`.
 */

/** A signal that is there but cannot be read (a GPP or US Privacy string that does not decode). */
export class InvalidSignalError extends Error {
  override readonly name = 'InvalidSignalError';
}

export interface SignalInput {
  /** The request's headers (a `Headers`, or Node's `IncomingHttpHeaders`): `Sec-GPC` is read. */
  readonly headers?: Headers | Readonly<Record<string, string | readonly string[] | undefined>>;
  /** A GPP string (`gpp` URL parameter, OpenRTB `regs.gpp`, or `__gpp('ping')`'s `gppString`). */
  readonly gpp?: string | undefined;
  /** A legacy US Privacy string (`us_privacy`), e.g. `1YYN`. */
  readonly usPrivacy?: string | undefined;
  /** The identities linked to this browser or device that the opt-out covers; at least one. */
  readonly identities: readonly Identity[];
  /** @default 'ccpa' */
  readonly regulation?: Regulation;
  /**
   * Where the signal came from and its id there, to make the request idempotent. A signal arrives
   * with every page view: pass an id that stays the same for the same browser profile (or emit only
   * when the signal is new to it), so one opt-out is made, not thousands.
   */
  readonly source?: string;
  readonly sourceEventId?: string;
}

/** The `opt_out` the signals ask for, or undefined when none opts out of anything. */
export function toRequest(input: SignalInput): Submission | undefined {
  const scopes = new Set<Scope>();
  if (hasGpc(input.headers)) ['sale', 'sharing'].forEach((s) => scopes.add(s as Scope));
  if (input.gpp) for (const s of gppOptOuts(input.gpp)) scopes.add(s);
  if (input.usPrivacy && usPrivacyOptsOut(input.usPrivacy)) scopes.add('sale');
  if (scopes.size === 0) return undefined;
  if (input.identities.length === 0) throw new TypeError('toRequest: an opt-out signal needs the identities it covers; none were given');
  return {
    type: 'opt_out',
    regulation: input.regulation ?? 'ccpa',
    identities: input.identities.map((i) => ({ type: i.type, value: i.value })),
    scopes: (['sale', 'sharing', 'marketing', 'processing', 'all'] as const).filter((s) => scopes.has(s)),
    ...(input.source && input.sourceEventId && { source: input.source, sourceEventId: input.sourceEventId }),
  };
}

/** Whether the headers carry `Sec-GPC: 1` (exactly `1`; of several values, any one). */
export function hasGpc(headers: SignalInput['headers']): boolean {
  if (!headers) return false;
  const raw = headers instanceof Headers ? headers.get('sec-gpc') : headerValue(headers);
  const values = [raw ?? []].flat().flatMap((v) => v.split(','));
  return values.some((v) => v.trim() === '1');
}

function headerValue(headers: Readonly<Record<string, string | readonly string[] | undefined>>): string | readonly string[] | undefined {
  for (const [name, value] of Object.entries(headers)) if (name.toLowerCase() === 'sec-gpc') return value;
  return undefined;
}

const OPTED_OUT = 1; // GPP's Int(2) opt-out fields: 0 not applicable, 1 opted out, 2 did not opt out
const FIELDS: readonly [string, Scope][] = [
  ['SaleOptOut', 'sale'],
  ['SharingOptOut', 'sharing'],
  ['TargetedAdvertisingOptOut', 'sharing'],
];

/** The scopes a GPP string opts out of, over every US section it holds. */
export function gppOptOuts(gpp: string): Scope[] {
  const scopes = new Set<Scope>();
  try {
    const model = new GppModel(gpp.trim());
    for (const id of model.getSectionIds() as number[]) {
      const section = Sections.SECTION_ID_NAME_MAP.get(id);
      if (!section) continue; // a section newer than the library: not read
      if (section === 'uspv1') {
        if (model.getFieldValue(section, 'OptOutSale') === 'Y') scopes.add('sale');
        continue;
      }
      if (!section.startsWith('us')) continue; // TCF (EU, Canada): consent, not opt-outs
      // Not every state has every field (California has no targeted advertising opt-out of its own).
      const value = (field: string): unknown => (model.hasField(section, field) ? model.getFieldValue(section, field) : undefined);
      for (const [field, scope] of FIELDS) if (value(field) === OPTED_OUT) scopes.add(scope);
      if (value('Gpc') === true) ['sale', 'sharing'].forEach((s) => scopes.add(s as Scope));
    }
  } catch (error) {
    throw new InvalidSignalError(`not a GPP string that decodes: ${(error as Error).message}`, { cause: error });
  }
  return [...scopes];
}

/** Whether a US Privacy string (`1YYN`) says the consumer opted out of sale. */
export function usPrivacyOptsOut(usPrivacy: string): boolean {
  const s = usPrivacy.trim().toUpperCase();
  if (!/^1[YN-][YN-][YN-]$/.test(s)) throw new InvalidSignalError(`not a US Privacy string: four characters, 1 then Y, N or - three times`);
  return s[2] === 'Y';
}
