import { compile } from '@jmespath-community/jmespath';
import { z } from 'zod';
import { ACTIONS, REGULATIONS, type Action } from '#core/request';
import { TEMPLATE_ERRORS } from './template.ts';

/**
 * A vendor definition: everything the `http` connector needs to act on one SaaS API, in YAML.
 * Strings marked "template" may hold `{placeholders}` (see template.ts); "expression" fields are
 * JMESPath over a JSON response.
 */

const template = z.string().superRefine((value, ctx) => {
  for (const message of TEMPLATE_ERRORS(value)) ctx.addIssue({ code: 'custom', message });
});

const expression = z.string().superRefine((value, ctx) => {
  try {
    compile(value);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: `not a JMESPath expression: ${(error as Error).message}` });
  }
});

const status = z.int().min(100).max(599);

/** Any JSON value whose strings are templates. */
const jsonTemplate: z.ZodType<unknown> = z.lazy(() =>
  z.union([template, z.number(), z.boolean(), z.null(), z.array(jsonTemplate), z.record(z.string(), jsonTemplate)]),
);

export const httpRequestSchema = z
  .strictObject({
    method: z.enum(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']),
    /** Relative to `baseUrl`; placeholders in a path are URL-encoded. Or a full URL (a pagination link). */
    path: template,
    query: z.record(z.string(), template).optional(),
    headers: z.record(z.string(), template).optional(),
    /** A JSON body. */
    json: jsonTemplate.optional(),
    /** A form body (application/x-www-form-urlencoded). */
    form: z.record(z.string(), template).optional(),
    /** A text body, with its content type (e.g. a CSV upload). */
    text: z.strictObject({ contentType: z.string(), body: template }).optional(),
    /** Statuses that are success. */
    ok: z.array(status).default([200, 201, 202, 204]),
    /** Statuses that mean "no such record": nothing to do, 0 affected. */
    absent: z.array(status).default([404]),
    /** Values to keep from the response for later steps: `{vars.<name>}`. */
    capture: z.record(z.string().regex(/^[a-zA-Z]\w*$/), expression).optional(),
  })
  .refine((r) => [r.json, r.form, r.text].filter((b) => b !== undefined).length <= 1, 'give at most one of json, form and text');
export type HttpRequest = z.infer<typeof httpRequestSchema>;

const lookupSchema = z.strictObject({
  /** The identity type this lookup starts from. */
  identity: z.string(),
  request: httpRequestSchema,
  /** The vendor's records of the subject: an array of ids, or of objects (then `{target.<field>}`; `{id}` is `{target.id}`). */
  targets: expression,
  /** Cursor pagination: the next cursor (falsy: last page) and the query parameter that takes it. */
  cursor: z.strictObject({ next: expression, param: z.string() }).optional(),
  /** Link pagination: the next page's URL or path (falsy: last page). */
  nextUrl: expression.optional(),
  /** More pages than this fail the task (never a silent stop with records left unread). */
  maxPages: z.int().min(1).max(1000).default(20),
  /**
   * Whether the vendor compares the value case-sensitively (its API reference says so): then it is
   * asked with every form the subject gave the identity in, as well as the normal form.
   */
  caseSensitive: z.boolean(),
  /**
   * Where one result holds the identity it was found by (JMESPath over the result: a string or a
   * list of them). Only results whose identity is the subject's, compared as intake normalizes it,
   * are kept: a search that matches more than it was asked (wildcards, partial matches, tokens)
   * never reaches anyone else.
   */
  match: expression.optional(),
  /** More of the subject's records than this fail the task as ambiguous, before anything is done. */
  maxTargets: z.int().min(1).max(10_000).default(5),
});

const jobSchema = z.strictObject({
  /** The vendor's job id, from the last step's response (or a captured var). */
  id: expression,
  poll: httpRequestSchema,
  /** The job's state in the poll response. */
  state: expression,
  pending: z.array(z.string()).min(1),
  done: z.array(z.string()).min(1),
  failed: z.array(z.string()).default([]),
  /** A poll answered with an `absent` status means: done (the record is gone). */
  absentIsDone: z.boolean().default(false),
  pollEverySeconds: z.int().min(5).max(86_400).default(300),
  /** How long the vendor may take (its documented SLA, with margin) before the task fails. */
  deadlineSeconds: z.int().min(60).max(31_536_000),
});
export type JobSpec = z.infer<typeof jobSchema>;

const actionSchema = z.strictObject({
  /** The identity type whose values the steps run once for (`{value}`, and `{<type>}`). */
  identity: z.string().optional(),
  /** Run the steps for every record the lookup finds (`{id}`, `{target.<field>}`); default when no identity is named. */
  eachTarget: z.boolean().optional(),
  steps: z.array(httpRequestSchema).min(1),
  /** Records affected by one run of the steps; default 1 (0 when a step answered `absent`). */
  count: expression.optional(),
  job: jobSchema.optional(),
});
export type ActionSpec = z.infer<typeof actionSchema>;

const credential = z.string().regex(/^[a-zA-Z]\w*$/, 'must name a credential of the system');
const authSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('none') }),
  z.strictObject({ type: z.literal('bearer'), credential }),
  z.strictObject({ type: z.literal('header'), name: z.string(), credential, prefix: z.string().default('') }),
  z.strictObject({ type: z.literal('query'), name: z.string(), credential }),
  /** HTTP Basic: each of username and password a template, e.g. `{credentials.apiKey}` or `{params.email}/token`. */
  z.strictObject({ type: z.literal('basic'), username: template, password: template }),
  z.strictObject({
    type: z.literal('oauth2'),
    tokenUrl: template,
    clientId: credential,
    clientSecret: credential,
    scope: z.string().optional(),
  }),
]);
export type AuthSpec = z.infer<typeof authSchema>;

export const vendorDefinitionSchema = z
  .strictObject({
    name: z.string().regex(/^[a-z][a-z0-9-]{0,39}$/),
    /** The vendor documentation this definition follows. */
    docs: z.array(z.url()).min(1),
    description: z.string().optional(),
    baseUrl: template,
    auth: authSchema,
    /** Credentials the system must supply (secrets by reference), by name. */
    credentials: z.array(credential).default([]),
    /** Non-secret settings the system must supply, by name (a list id, a subdomain). */
    params: z.array(z.string().regex(/^[a-zA-Z]\w*$/)).default([]),
    headers: z.record(z.string(), template).default({}),
    /** Requests per interval, per vendor and credential; 429 answers slow it further. */
    rateLimit: z.strictObject({ requests: z.int().min(1), perSeconds: z.number().positive() }).optional(),
    /** Where the vendor's error text is in an error response (never echoed without scrubbing). */
    errorMessage: expression.optional(),
    lookup: z.array(lookupSchema).default([]),
    actions: z.partialRecord(z.enum(ACTIONS), actionSchema),
    /** How many of the subject's records remain: the lookup again (default when there is one), or none. */
    verify: z.enum(['lookup', 'none']).optional(),
    /**
     * What the vendor calls each regulation, where it takes only some (`{regulation}` is then the
     * vendor's name). A request under a regulation not listed fails as a configuration error.
     */
    regulations: z.partialRecord(z.enum(REGULATIONS), z.string().min(1)).optional(),
  })
  .superRefine((d, ctx) => {
    for (const [action, spec] of Object.entries(d.actions)) {
      if (d.lookup.length === 0 && (!spec.identity || spec.eachTarget)) {
        ctx.addIssue({ code: 'custom', path: ['actions', action], message: 'without a lookup, the steps run per identity: name it, and no eachTarget' });
      }
    }
    const names = new Set([...d.credentials]);
    const auth = d.auth;
    const used = auth.type === 'oauth2' ? [auth.clientId, auth.clientSecret] : 'credential' in auth ? [auth.credential] : [];
    for (const c of used) if (!names.has(c)) ctx.addIssue({ code: 'custom', path: ['auth'], message: `credential "${c}" is not in credentials` });
    if (d.verify === 'lookup' && d.lookup.length === 0) ctx.addIssue({ code: 'custom', path: ['verify'], message: 'verify: lookup needs a lookup' });
    // Records found by a lookup are deleted: each must be shown to be the subject's.
    if ((d.verify ?? 'lookup') === 'lookup') {
      d.lookup.forEach((l, i) => {
        if (l.match === undefined) {
          ctx.addIssue({ code: 'custom', path: ['lookup', i, 'match'], message: "say where a result holds the identity it was found by, so that only the subject's records are kept" });
        }
      });
    }
  });
export type VendorDefinition = z.infer<typeof vendorDefinitionSchema>;

export const definedActions = (d: VendorDefinition): Action[] => ACTIONS.filter((a) => d.actions[a] !== undefined);
