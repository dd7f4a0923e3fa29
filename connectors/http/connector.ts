import { ConnectorPermanentError } from '#core/errors';
import type { Identity } from '#core/identity';
import type { Connector, ConnectorCommand, ConnectorResult, JobState, PendingJob } from '#core/ports';
import type { Action } from '#core/request';
import { extract, type VendorClient } from './client.ts';
import { definedActions, type ActionSpec, type HttpRequest, type VendorDefinition } from './definition.ts';
import type { TemplateVars } from './template.ts';

type Target = Readonly<Record<string, unknown>>;

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
    const sensitive = command.identities.map((i) => i.value);
    const eachTarget = spec.eachTarget ?? !spec.identity;
    const targets = eachTarget ? (await this.#targets(command.identities)).map(targetVars) : [{}];
    const values = spec.identity ? identityUnits(spec, command.identities) : [{}];
    const units = targets.flatMap((t) => values.map((v) => ({ ...t, ...v })));
    let affected = 0;
    const pending: PendingJob[] = [];
    for (const unit of units) {
      const vars: Record<string, unknown> = { ...firstOfEachType(command.identities), ...unit, requestId: command.requestId, regulation: command.regulation ?? 'gdpr', vars: {} };
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
    const response = await this.#client.call(spec.poll, vars, command.identities.map((i) => i.value));
    if (response.absent) return spec.absentIsDone ? { state: 'done', detail: `HTTP ${String(response.status)}` } : { state: 'failed', detail: `job not found (HTTP ${String(response.status)})` };
    const raw = extract(response.body, spec.state);
    const state = typeof raw === 'string' || typeof raw === 'number' ? String(raw) : '';
    if (spec.done.includes(state)) return { state: 'done', detail: state };
    if (spec.failed.includes(state)) return { state: 'failed', detail: state };
    if (spec.pending.includes(state)) return { state: 'pending', detail: state };
    return { state: 'pending', detail: state ? `unknown state ${state.slice(0, 40)}` : 'no state in the answer' };
  }

  async verify(command: ConnectorCommand): Promise<{ remaining: number }> {
    if (this.#verifyBy() === 'none' || (command.action !== 'delete' && command.action !== 'anonymize')) return { remaining: 0 };
    return { remaining: (await this.#targets(command.identities)).length };
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

  /** The subject's records at the vendor, through every lookup, every page, each once. */
  async #targets(identities: readonly Identity[]): Promise<Target[]> {
    const found = new Map<string, Target>();
    const sensitive = identities.map((i) => i.value);
    for (const lookup of this.#def.lookup) {
      for (const identity of identities.filter((i) => i.type === lookup.identity)) {
        let request: HttpRequest = lookup.request;
        for (let page = 0; page < lookup.maxPages; page += 1) {
          const vars = { ...firstOfEachType(identities), [identity.type]: identity.value, value: identity.value };
          const response = await this.#client.call(request, vars, sensitive);
          if (response.absent) break;
          const targets = extract(response.body, lookup.targets);
          for (const t of Array.isArray(targets) ? targets : targets === null ? [] : [targets]) {
            const target: Target = t !== null && typeof t === 'object' ? (t as Target) : { id: t };
            found.set(JSON.stringify(target), target);
          }
          const cursor = lookup.cursor ? extract(response.body, lookup.cursor.next) : undefined;
          const next = lookup.nextUrl ? extract(response.body, lookup.nextUrl) : undefined;
          if (lookup.cursor && cursor && (typeof cursor === 'string' || typeof cursor === 'number')) {
            request = { ...lookup.request, query: { ...lookup.request.query, [lookup.cursor.param]: String(cursor).replaceAll('{', '{{').replaceAll('}', '}}') } };
          } else if (lookup.nextUrl && typeof next === 'string' && next) {
            request = { ...lookup.request, path: next.replaceAll('{', '{{').replaceAll('}', '}}'), query: {} };
          } else {
            break;
          }
        }
      }
    }
    return [...found.values()];
  }
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
