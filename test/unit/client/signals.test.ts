import { GppModel } from '@iabgpp/cmpapi';
import { describe, expect, it } from 'vitest';
import { gppOptOuts, hasGpc, InvalidSignalError, toRequest, usPrivacyOptsOut } from '@lethe/client/signals';
import { parseSubmission } from '#core/request';

/** A GPP string with these fields set, encoded by the IAB's own library. */
const gpp = (fields: Record<string, Record<string, unknown>>) => {
  const model = new GppModel();
  for (const [section, values] of Object.entries(fields)) for (const [field, value] of Object.entries(values)) model.setFieldValue(section, field, value);
  return model.encode();
};
const ada = [{ type: 'email', value: 'ada@example.com' }];

describe('Module: @lethe/client/signals', () => {
  it('reads Sec-GPC as the GPC specification says: exactly "1", any one of several', () => {
    expect(hasGpc({ 'sec-gpc': '1' })).toBe(true);
    expect(hasGpc({ 'Sec-GPC': '1' })).toBe(true);
    expect(hasGpc(new Headers({ 'Sec-GPC': '1' }))).toBe(true);
    expect(hasGpc({ 'sec-gpc': ['0', '1'] })).toBe(true); // several headers, one of them 1
    expect(hasGpc({ 'sec-gpc': '0, 1' })).toBe(true); // the same, joined by a proxy
    for (const ignored of ['0', 'true', '11', '', 'yes', '1.0']) expect(hasGpc({ 'sec-gpc': ignored }), ignored).toBe(false);
    expect(hasGpc({})).toBe(false);
    expect(hasGpc(undefined)).toBe(false);
  });

  it('turns Sec-GPC: 1 into an opt-out of sale and sharing for the linked identities, which intake accepts', () => {
    const request = toRequest({ headers: { 'sec-gpc': '1' }, identities: ada });
    expect(request).toEqual({ type: 'opt_out', regulation: 'ccpa', identities: ada, scopes: ['sale', 'sharing'] });
    expect(parseSubmission(request)).toMatchObject({ type: 'opt_out', scopes: ['sale', 'sharing'] });
    expect(toRequest({ headers: { 'sec-gpc': '0' }, identities: ada })).toBeUndefined();
    expect(toRequest({ headers: { 'sec-gpc': '1' }, identities: ada, regulation: 'vcdpa', source: 'web', sourceEventId: 'profile-7' })).toMatchObject({
      regulation: 'vcdpa',
      source: 'web',
      sourceEventId: 'profile-7',
    });
    expect(() => toRequest({ headers: { 'sec-gpc': '1' }, identities: [] })).toThrow(/needs the identities/);
  });

  it("reads the GPP US national section's opt-out fields: 1 is opted out, 2 did not, 0 not applicable", () => {
    expect(gppOptOuts(gpp({ usnat: { SaleOptOut: 1 } }))).toEqual(['sale']);
    expect(gppOptOuts(gpp({ usnat: { SharingOptOut: 1 } }))).toEqual(['sharing']);
    expect(gppOptOuts(gpp({ usnat: { TargetedAdvertisingOptOut: 1 } }))).toEqual(['sharing']);
    expect(gppOptOuts(gpp({ usnat: { SaleOptOut: 1, SharingOptOut: 1, TargetedAdvertisingOptOut: 1 } })).sort()).toEqual(['sale', 'sharing']);
    expect(gppOptOuts(gpp({ usnat: { SaleOptOut: 2, SharingOptOut: 2, TargetedAdvertisingOptOut: 2 } }))).toEqual([]);
    expect(gppOptOuts(gpp({ usnat: { SaleOptOut: 0 } }))).toEqual([]);
  });

  it("reads every US state section, and a GPC sub-section's Gpc flag", () => {
    expect(gppOptOuts(gpp({ usca: { SaleOptOut: 1 } }))).toEqual(['sale']);
    expect(gppOptOuts(gpp({ usca: { SharingOptOut: 1 } }))).toEqual(['sharing']);
    expect(gppOptOuts(gpp({ usva: { TargetedAdvertisingOptOut: 1 } }))).toEqual(['sharing']);
    expect(gppOptOuts(gpp({ usco: { SaleOptOut: 1 } }))).toEqual(['sale']);
    expect(gppOptOuts(gpp({ usia: { SaleOptOut: 1 } }))).toEqual(['sale']);
    expect(gppOptOuts(gpp({ usca: { GpcSegmentIncluded: true, Gpc: true } })).sort()).toEqual(['sale', 'sharing']);
    expect(gppOptOuts(gpp({ usnat: { GpcSegmentIncluded: true, Gpc: false, SaleOptOut: 2 } }))).toEqual([]);
    // Sections together: what any of them opts out of.
    expect(gppOptOuts(gpp({ usnat: { SaleOptOut: 2 }, usca: { SharingOptOut: 1 } }))).toEqual(['sharing']);
  });

  it('reads the US Privacy string, in GPP (uspv1) or on its own; TCF holds consent, not opt-outs', () => {
    expect(gppOptOuts(gpp({ uspv1: { Notice: 'Y', OptOutSale: 'Y', LspaCovered: 'N' } }))).toEqual(['sale']);
    expect(gppOptOuts(gpp({ uspv1: { Notice: 'Y', OptOutSale: 'N', LspaCovered: 'N' } }))).toEqual([]);
    expect(usPrivacyOptsOut('1YYN')).toBe(true);
    expect(usPrivacyOptsOut('1-Y-')).toBe(true);
    expect(usPrivacyOptsOut('1YNN')).toBe(false);
    expect(usPrivacyOptsOut('1---')).toBe(false);
    expect(() => usPrivacyOptsOut('2YYN')).toThrow(InvalidSignalError);
    expect(gppOptOuts(gpp({ tcfeuv2: { CmpId: 5 } }))).toEqual([]);
  });

  it('makes one opt-out of every signal together, and refuses a GPP string that does not decode', () => {
    const request = toRequest({ gpp: gpp({ usnat: { SaleOptOut: 1 } }), usPrivacy: '1YNN', identities: ada });
    expect(request?.scopes).toEqual(['sale']);
    expect(toRequest({ headers: { 'sec-gpc': '1' }, gpp: gpp({ usnat: { SaleOptOut: 1 } }), identities: ada })?.scopes).toEqual(['sale', 'sharing']);
    expect(toRequest({ gpp: gpp({ usnat: { SaleOptOut: 2 } }), identities: ada })).toBeUndefined();
    expect(() => toRequest({ gpp: 'garbage', identities: ada })).toThrow(InvalidSignalError);
    expect(() => toRequest({ gpp: 'DBABLA~!!!!', identities: ada })).toThrow(InvalidSignalError);
  });
});
