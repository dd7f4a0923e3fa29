import { z } from 'zod';
import { formsOf, type Identity } from '#core/identity';

/** A string with `{identity_type}` placeholders, e.g. `session:{user_id}`. */
export const identityTemplate = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .refine((t) => /\{[a-z][a-z0-9_]{1,63}\}/.test(t), 'must name at least one identity, as {identity_type}');

/**
 * Fill a template's `{identity_type}` placeholders with every combination of the subject's
 * identities of those types, each in every spelling `spell` gives (by default its value and the
 * forms it was submitted in); a template naming a type the subject lacks yields nothing.
 */
export function fill(
  template: string,
  identities: readonly Identity[],
  encode: (value: string) => string = (v) => v,
  spell: (identity: Identity) => string[] = formsOf,
): string[] {
  const types = [...new Set([...template.matchAll(/\{([a-z][a-z0-9_]{1,63})\}/g)].map((m) => m[1]!))];
  let results = [template];
  for (const type of types) {
    const values = [...new Set(identities.filter((i) => i.type === type).flatMap(spell))].map(encode);
    results = results.flatMap((r) => values.map((v) => r.replaceAll(`{${type}}`, () => v)));
  }
  return results;
}
