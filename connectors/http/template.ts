import { createHash } from 'node:crypto';
import { ConnectorPermanentError } from '#core/errors';

/**
 * Placeholders in vendor definitions: `{name}` or `{name|filter|...}`, `{{` and `}}` for braces.
 * Names: an identity type (`{email}`), `{value}` (the identity the steps run for), `{id}` and
 * `{target.<field>}` (a record the lookup found), `{params.<name>}`, `{credentials.<name>}`,
 * `{vars.<name>}` (captured from an earlier response), `{job}`, `{requestId}`, `{regulation}`.
 */
const PLACEHOLDER = /\{\{|\}\}|\{([^{}]*)\}/g;
const NAME = /^[a-zA-Z_]\w*(\.[a-zA-Z_]\w*)?$/;

const FILTERS: Record<string, (s: string) => string> = {
  lower: (s) => s.toLowerCase(),
  upper: (s) => s.toUpperCase(),
  /** Mailchimp's subscriber hash. */
  md5: (s) => createHash('md5').update(s).digest('hex'),
  sha256: (s) => createHash('sha256').update(s).digest('hex'),
  base64: (s) => Buffer.from(s).toString('base64'),
  /** A string literal inside a SOQL query: backslash and quote escaped. */
  soql: (s) => s.replaceAll('\\', '\\\\').replaceAll("'", "\\'"),
  /** A quoted phrase in a search syntax (Zendesk's, Lucene's): an exact value, never wildcards or operators. */
  phrase: (s) => `"${s.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`,
};

export type TemplateVars = Readonly<Record<string, unknown>>;

/** Syntax problems of a template, for validating definitions. */
export function TEMPLATE_ERRORS(template: string): string[] {
  const errors: string[] = [];
  for (const match of template.matchAll(PLACEHOLDER)) {
    if (match[1] === undefined) continue;
    const [name = '', ...filters] = match[1].split('|').map((p) => p.trim());
    if (!NAME.test(name)) errors.push(`"{${match[1]}}": "${name}" is not a placeholder name`);
    for (const f of filters) if (!(f in FILTERS)) errors.push(`"{${match[1]}}": unknown filter "${f}" (known: ${Object.keys(FILTERS).join(', ')})`);
  }
  const stray = template.replace(PLACEHOLDER, '');
  if (/[{}]/.test(stray)) errors.push('unbalanced { or }: write {{ and }} for literal braces');
  return errors;
}

/** The names a template refers to, e.g. `params.listId`. */
export function placeholders(template: string): string[] {
  return [...template.matchAll(PLACEHOLDER)].flatMap((m) => (m[1] === undefined ? [] : [m[1].split('|')[0]!.trim()]));
}

/**
 * A value filled into a URL path: one segment, URL-encoded. Empty, `.` and `..` are refused: URL
 * resolution would turn `DELETE /lists/{p}/members/{id}` into a request on the list itself.
 */
export function pathSegment(value: string): string {
  if (value === '' || value === '.' || value === '..') {
    throw new ConnectorPermanentError(`http: a path value may not be empty, "." or ".." (it would address another resource)`);
  }
  return encodeURIComponent(value);
}

/**
 * Fill a template. `encode` applies to each filled value (URL-encoding in paths). A name with no
 * value is a permanent error that names it, never the values around it.
 */
export function render(template: string, vars: TemplateVars, encode: (s: string) => string = (s) => s): string {
  return template.replace(PLACEHOLDER, (whole, inner: string | undefined) => {
    if (inner === undefined) return whole[0]!;
    const [name = '', ...filters] = inner.split('|').map((p) => p.trim());
    let value = lookup(vars, name);
    if (value === undefined || value === null) throw new ConnectorPermanentError(`http: no value for {${name}}`);
    if (typeof value !== 'string') value = typeof value === 'number' || typeof value === 'boolean' ? String(value) : JSON.stringify(value);
    for (const f of filters) value = FILTERS[f]!(value as string);
    return encode(value as string);
  });
}

/** Fill every string of a JSON template. */
export function renderJson(value: unknown, vars: TemplateVars): unknown {
  if (typeof value === 'string') return render(value, vars);
  if (Array.isArray(value)) return value.map((v) => renderJson(v, vars));
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, renderJson(v, vars)]));
  return value;
}

function lookup(vars: TemplateVars, name: string): unknown {
  const [head = '', field] = name.split('.');
  const value = vars[head];
  if (field === undefined) return value;
  return value && typeof value === 'object' ? (value as Record<string, unknown>)[field] : undefined;
}
