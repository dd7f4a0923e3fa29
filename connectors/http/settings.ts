import { readFileSync, readdirSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { ACTIONS } from '#core/request';
import { secretSourceSchema } from '../secrets.ts';
import { vendorDefinitionSchema, type HttpRequest, type VendorDefinition } from './definition.ts';
import { placeholders } from './template.ts';

const VENDORS = new URL('./vendors/', import.meta.url);

/** The vendors Lethe ships a definition for (`connectors/http/vendors/<name>.yaml`). */
export function builtInVendors(): string[] {
  return readdirSync(VENDORS)
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => f.slice(0, -'.yaml'.length))
    .sort();
}

/**
 * `settings` of a `connector: http` system: a built-in `vendor` or a `definition` file of your own
 * (YAML, the same format), the credentials it names (secrets by reference), its params, and
 * optionally another `baseUrl` (a region, a sandbox). The definition is read and validated here,
 * and carried resolved to the worker, which reads no files.
 */
export const httpSettingsSchema = z
  .strictObject({
    vendor: z.string().regex(/^[a-z][a-z0-9-]{0,39}$/).optional(),
    /** A definition file (relative to where Lethe runs), or the definition itself once resolved. */
    definition: z.union([z.string().min(1), z.record(z.string(), z.unknown())]).optional(),
    baseUrl: z.url().optional(),
    credentials: z.record(z.string(), secretSourceSchema).default({}),
    params: z.record(z.string(), z.string()).default({}),
    /** Poll this system's vendor jobs at least this often (local mode and tests poll fast). */
    pollEverySeconds: z.int().min(1).max(86_400).optional(),
  })
  .transform((s, ctx) => {
    const { vendor, definition, ...rest } = s;
    if ((vendor === undefined) === (definition === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['vendor'], message: `give either vendor (one of: ${builtInVendors().join(', ')}) or definition (a file)` });
      return z.NEVER;
    }
    let raw: unknown = definition;
    let where: (string | number)[] = ['definition'];
    try {
      if (vendor !== undefined) {
        if (!builtInVendors().includes(vendor)) {
          ctx.addIssue({ code: 'custom', path: ['vendor'], message: `no built-in vendor "${vendor}" (known: ${builtInVendors().join(', ')}); or give a definition file` });
          return z.NEVER;
        }
        raw = parseYaml(readFileSync(new URL(`${vendor}.yaml`, VENDORS), 'utf8'));
        where = ['vendor'];
      } else if (typeof definition === 'string') {
        raw = parseYaml(readFileSync(definition, 'utf8'));
      }
    } catch (error) {
      ctx.addIssue({ code: 'custom', path: where, message: `cannot read the definition: ${(error as Error).message}` });
      return z.NEVER;
    }
    const parsed = vendorDefinitionSchema.safeParse(raw);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) ctx.addIssue({ code: 'custom', path: [...where, ...issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p))], message: issue.message });
      return z.NEVER;
    }
    const def = parsed.data;
    for (const issue of referenceIssues(def)) ctx.addIssue({ code: 'custom', path: [...where, ...issue.path], message: issue.message });
    for (const name of def.credentials) {
      if (!(name in rest.credentials)) ctx.addIssue({ code: 'custom', path: ['credentials', name], message: `${def.name} needs credential "${name}" (a secret by reference)` });
    }
    for (const name of Object.keys(rest.credentials)) {
      if (!def.credentials.includes(name)) ctx.addIssue({ code: 'custom', path: ['credentials', name], message: `${def.name} has no credential "${name}" (it takes: ${def.credentials.join(', ') || 'none'})` });
    }
    for (const name of def.params) if (!(name in rest.params)) ctx.addIssue({ code: 'custom', path: ['params', name], message: `${def.name} needs param "${name}"` });
    return { ...rest, definition: def };
  });
export type HttpSettings = z.output<typeof httpSettingsSchema>;

function parseYaml(text: string): unknown {
  const doc = parseDocument(text, { prettyErrors: false });
  if (doc.errors.length > 0) throw new Error(`YAML: ${doc.errors.map((e) => e.message).join('; ')}`);
  return doc.toJS() as unknown;
}

/** Placeholders that name params or credentials the definition does not declare. */
function referenceIssues(def: VendorDefinition): { path: (string | number)[]; message: string }[] {
  const templates: { path: (string | number)[]; text: string }[] = [{ path: ['baseUrl'], text: def.baseUrl }];
  const auth = def.auth;
  if (auth.type === 'basic') templates.push({ path: ['auth', 'username'], text: auth.username }, { path: ['auth', 'password'], text: auth.password });
  if (auth.type === 'oauth2') templates.push({ path: ['auth', 'tokenUrl'], text: auth.tokenUrl });
  for (const [name, value] of Object.entries(def.headers)) templates.push({ path: ['headers', name], text: value });
  const requests: { path: (string | number)[]; request: HttpRequest }[] = [
    ...def.lookup.map((l, i) => ({ path: ['lookup', i, 'request'], request: l.request })),
    ...ACTIONS.flatMap((a) => {
      const spec = def.actions[a];
      if (!spec) return [];
      return [
        ...spec.steps.map((request, i) => ({ path: ['actions', a, 'steps', i], request })),
        ...(spec.job ? [{ path: ['actions', a, 'job', 'poll'], request: spec.job.poll }] : []),
      ];
    }),
  ];
  for (const { path, request } of requests) {
    templates.push({ path: [...path, 'path'], text: request.path });
    for (const [k, v] of Object.entries({ ...request.query, ...request.headers, ...request.form })) templates.push({ path: [...path, k], text: v });
    if (request.text) templates.push({ path: [...path, 'text'], text: request.text.body });
    for (const text of strings(request.json)) templates.push({ path: [...path, 'json'], text });
  }
  const issues: { path: (string | number)[]; message: string }[] = [];
  for (const { path, text } of templates) {
    for (const name of placeholders(text)) {
      const [scope, field = ''] = name.split('.');
      if (scope === 'params' && !def.params.includes(field)) issues.push({ path, message: `{${name}}: "${field}" is not in params` });
      if (scope === 'credentials' && !def.credentials.includes(field)) issues.push({ path, message: `{${name}}: "${field}" is not in credentials` });
    }
  }
  return issues;
}

function strings(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.flatMap(strings);
  if (value && typeof value === 'object') return Object.values(value).flatMap(strings);
  return [];
}
