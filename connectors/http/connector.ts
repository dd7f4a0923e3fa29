import { AmbiguousTargetsError, ConfigError, ConnectorPermanentError } from '#core/errors';
import { canonicalValue, formsOf, type Identity } from '#core/identity';
import { nearMissReason, NearMissTally, wideKey, wideSpellings } from '#core/near-miss';
import type { Connector, ConnectorCommand, ConnectorResult, JobState, PendingJob, Verification } from '#core/ports';
import type { Action } from '#core/request';
import { extract, type VendorClient } from './client.ts';
import { definedActions, type ActionSpec, type HttpRequest, type VendorDefinition } from './definition.ts';
import type { TemplateVars } from './template.ts';

type Target = Readonly<Record<string, unknown>>;
/** A record a lookup found, and the identity it holds (at the lookup's `match`). */
type Found = { readonly target: Target; readonly held: string | undefined };

/**
 * A vendor's API driven by its definition: find the subject's records (lookups, paginated), run
 * the action's steps for each (or for each of the subject's identities of the action's type),
 * count what changed from the responses, and hand back the vendor's job when it works
 * asynchronously; `poll` then maps the job's state to pending, done or failed.
 */
export class HttpConnector implements Connector {
  readonly kind = 'http';
  readonly #def: VendorDefinition;
  readonly #client: VendorClient;

  readonly #pollEverySeconds: number | undefined;

  /** `pollEverySeconds`: the system's own, when it polls more often than the definition says. */
  constructor(definition: VendorDefinition, client: VendorClient, pollEverySeconds?: number) {
    this.#def = definition;
    this.#client = client;
    this.#pollEverySeconds = pollEverySeconds;
  }

  describe(): { actions: readonly Action[]; counts: boolean } {
    return { actions: definedActions(this.#def), counts: this.#verifyBy() === 'lookup' };
  }

  resolve(): Promise<Identity[]> {
    return Promise.resolve([]);
  }

  async run(command: ConnectorCommand): Promise<ConnectorResult> {
    const spec = this.#def.actions[command.action];
    if (!spec) throw new ConnectorPermanentError(`${this.#def.name} cannot ${command.action}`);
    // A lift undoes a restriction this vendor recorded for the subject, and nothing else: never an
    // opt-out or an erasure's suppression that a withdraw does not concern.
    if (command.action === 'lift' && !(command.restrictions ?? []).some((r) => (r[this.#def.name]?.length ?? 0) > 0)) return { affected: 0 };
    if (command.action === 'restrict') await command.recordRestriction?.({ [this.#def.name]: ['subject'] });
    const sensitive = command.identities.flatMap(formsOf);
    const eachTarget = spec.eachTarget ?? !spec.identity;
    const targets = eachTarget ? [...(await this.#targets(command.identities)).values()].map((f) => targetVars(f.target)) : [{}];
    const values = spec.identity ? identityUnits(spec, command.identities) : [{}];
    const units = targets.flatMap((t) => values.map((v) => ({ ...t, ...v })));
    let affected = 0;
    const pending: PendingJob[] = [];
    for (const unit of units) {
      const vars: Record<string, unknown> = { ...firstOfEachType(command.identities), ...unit, requestId: command.requestId, regulation: this.#regulation(command.regulation), vars: {} };
      const outcome = await this.#steps(spec.steps, vars, sensitive);
      if (!outcome) continue;
      affected += spec.count ? Number(extract(outcome.body, spec.count) ?? 0) || 0 : 1;
      if (spec.job) {
        const id = extract({ ...(outcome.body as object), vars: vars['vars'] }, spec.job.id);
        if (typeof id !== 'string' && typeof id !== 'number') {
          throw new ConnectorPermanentError(`${this.#def.name} ${command.action}: no job id at "${spec.job.id}" in the answer`);
        }
        pending.push({
          vendor: this.#def.name,
          id: String(id),
          vars: vars['vars'] as Record<string, string>,
          pollEverySeconds: Math.min(spec.job.pollEverySeconds, this.#pollEverySeconds ?? Infinity),
          deadlineSeconds: spec.job.deadlineSeconds,
        });
      }
    }
    return pending.length > 0 ? { affected, pending } : { affected };
  }

  async poll(command: ConnectorCommand, job: PendingJob): Promise<JobState> {
    const spec = this.#def.actions[command.action]?.job;
    if (!spec) throw new ConnectorPermanentError(`${this.#def.name} ${command.action} has no job to poll`);
    const vars = { ...firstOfEachType(command.identities), job: job.id, vars: job.vars, requestId: command.requestId };
    const response = await this.#client.call(spec.poll, vars, command.identities.flatMap(formsOf));
    if (response.absent) return spec.absentIsDone ? { state: 'done', detail: `HTTP ${String(response.status)}` } : { state: 'failed', detail: `job not found (HTTP ${String(response.status)})` };
    const raw = extract(response.body, spec.state);
    const state = typeof raw === 'string' || typeof raw === 'number' ? String(raw) : '';
    if (spec.done.includes(state)) return { state: 'done', detail: state };
    if (spec.failed.includes(state)) return { state: 'failed', detail: state };
    if (spec.pending.includes(state)) return { state: 'pending', detail: state };
    return { state: 'pending', detail: state ? `unknown state ${state.slice(0, 40)}` : 'no state in the answer' };
  }

  async verify(command: ConnectorCommand): Promise<Verification> {
    if (this.#verifyBy() === 'none' || (command.action !== 'delete' && command.action !== 'anonymize')) return { remaining: 0 };
    const mine = await this.#targets(command.identities);
    // The wider net: every spelling of the subject's value asked, results compared trimmed, NFKC and case-folded.
    const nearMisses = new NearMissTally();
    for (const [key, { held }] of await this.#targets(command.identities, 'wide')) {
      if (!mine.has(key)) nearMisses.add(held === undefined ? 'stored_form' : nearMissReason(held));
    }
    return nearMisses.result(mine.size);
  }

  /** The regulation as the vendor names it, where its definition maps them. */
  #regulation(regulation = 'gdpr'): string {
    const names = this.#def.regulations;
    if (!names) return regulation;
    const name = names[regulation as keyof typeof names];
    if (name === undefined) {
      throw new ConfigError([
        { path: `${this.#def.name}.regulations`, message: `${this.#def.name} takes ${[...new Set(Object.values(names))].join(' or ')}; the definition gives none for ${regulation}` },
      ]);
    }
    return name;
  }

  #verifyBy(): 'lookup' | 'none' {
    return this.#def.verify ?? (this.#def.lookup.length > 0 ? 'lookup' : 'none');
  }

  /** Run one unit's steps in order; undefined when every step found nothing (`absent`). */
  async #steps(steps: readonly HttpRequest[], vars: Record<string, unknown>, sensitive: readonly string[]): Promise<{ body: unknown } | undefined> {
    let last: { body: unknown } | undefined;
    for (const step of steps) {
      const response = await this.#client.call(step, vars, sensitive);
      if (response.absent) continue;
      last = { body: response.body };
      for (const [name, expression] of Object.entries(step.capture ?? {})) {
        const value = extract(response.body, expression);
        if (value !== null && value !== undefined) (vars['vars'] as Record<string, unknown>)[name] = typeof value === 'string' ? value : JSON.stringify(value);
      }
    }
    return last;
  }

  /**
   * The subject's records at the vendor, through every lookup, every page, each once: asked with
   * every form the subject gave where the vendor compares case-sensitively, and kept only where
   * the record's own identity is the subject's. More than a lookup's `maxTargets` is ambiguous.
   */
  async #targets(identities: readonly Identity[], net: 'action' | 'wide' = 'action'): Promise<Map<string, Found>> {
    const found = new Map<string, Found>();
    const sensitive = identities.flatMap(formsOf);
    for (const lookup of this.#def.lookup) {
      if (net === 'wide' && lookup.match === undefined) continue;
      const mine = new Map<string, Found>();
      for (const identity of identities.filter((i) => i.type === lookup.identity)) {
        const spellings = net === 'wide' ? [...formsOf(identity), ...wideSpellings(identity)] : lookup.caseSensitive ? formsOf(identity) : [identity.value];
        for (const form of spellings) {
          let request: HttpRequest = lookup.request;
          for (let page = 1; ; page += 1) {
            const vars = { ...firstOfEachType(identities), [identity.type]: form, value: form };
            const response = await this.#client.call(request, vars, sensitive);
            if (response.absent) break;
            const targets = extract(response.body, lookup.targets);
            for (const t of Array.isArray(targets) ? targets : targets === null ? [] : [targets]) {
              const target: Target = t !== null && typeof t === 'object' ? (t as Target) : { id: t };
              const held = lookup.match === undefined ? undefined : this.#held(target, lookup.match, identity, net);
              if (lookup.match === undefined || held !== undefined) mine.set(JSON.stringify(target), { target, held });
            }
            const following = nextPage(lookup, response.body);
            if (!following) break;
            if (page >= lookup.maxPages) {
              throw new AmbiguousTargetsError(`${this.#def.name} ${lookup.request.method} ${lookup.request.path}: more than ${String(lookup.maxPages)} pages of results (maxPages)`);
            }
            request = following;
          }
        }
      }
      if (net === 'action' && mine.size > lookup.maxTargets) {
        throw new AmbiguousTargetsError(
          `${this.#def.name} ${lookup.request.method} ${lookup.request.path}: ${String(mine.size)} records found for the subject, more than maxTargets (${String(lookup.maxTargets)}); nothing was done`,
        );
      }
      for (const [key, target] of mine) found.set(key, target);
    }
    return found;
  }

  /**
   * A result's own identity (at `match`) where it is the subject's, else undefined: compared in
   * normal form by the action, trimmed, NFKC and case-folded by the wider net.
   */
  #held(target: Target, match: string, identity: Identity, net: 'action' | 'wide'): string | undefined {
    const held = extract(target, match);
    const values = (Array.isArray(held) ? held : [held]).filter((v): v is string | number => typeof v === 'string' || typeof v === 'number').map(String);
    if (values.length === 0) {
      throw new ConnectorPermanentError(`${this.#def.name}: a lookup result holds nothing at "${match}" to compare with the subject`);
    }
    if (net === 'wide') {
      const subject = new Set(formsOf(identity).map(wideKey));
      return values.find((v) => subject.has(wideKey(v)));
    }
    const subject = canonicalValue(identity.type, identity.value);
    return values.find((v) => canonicalValue(identity.type, v) === subject);
  }
}

/** The request for a lookup's next page, from its answer; undefined on the last page. */
function nextPage(lookup: VendorDefinition['lookup'][number], body: unknown): HttpRequest | undefined {
  // A cursor or link is the vendor's text: braces in it are literal, not placeholders.
  const literal = (s: string) => s.replaceAll('{', '{{').replaceAll('}', '}}');
  const cursor = lookup.cursor ? extract(body, lookup.cursor.next) : undefined;
  if (lookup.cursor && cursor && (typeof cursor === 'string' || typeof cursor === 'number')) {
    return { ...lookup.request, query: { ...lookup.request.query, [lookup.cursor.param]: literal(String(cursor)) } };
  }
  const next = lookup.nextUrl ? extract(body, lookup.nextUrl) : undefined;
  if (lookup.nextUrl && typeof next === 'string' && next) return { ...lookup.request, path: literal(next), query: {} };
  return undefined;
}

function targetVars(target: Target): TemplateVars {
  return { target, id: target['id'] };
}

/** The subject's identities of the action's type, one unit each. */
function identityUnits(spec: ActionSpec, identities: readonly Identity[]): TemplateVars[] {
  return identities.filter((i) => i.type === spec.identity).map((i) => ({ [i.type]: i.value, value: i.value }));
}

function firstOfEachType(identities: readonly Identity[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const i of identities) out[i.type] ??= i.value;
  return out;
}
