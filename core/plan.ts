import type { DataMap, SystemConfig } from './config.ts';
import type { Action, RequestType } from './request.ts';

/** One step of a request's saga: every task in a stage may run at once. */
export type Stage =
  | { readonly kind: 'resolve'; readonly systems: readonly string[] }
  | { readonly kind: 'act'; readonly tasks: readonly { readonly system: string; readonly action: Action }[] };

/**
 * Turn a request into ordered stages. First, resolution rounds: the systems that provide linked
 * identities, once the identities they are keyed by are known (a round may unlock the next), so
 * that every link is read before anything is deleted. Then the actions, in dependency order:
 * a system acts only after every system it depends on has, and independent systems share a stage.
 * `given` are the identity types the request carries. A `lift` acts on what the subject's earlier
 * restrictions recorded, so it reaches every system that lifts, with no resolution.
 */
export function planStages(type: RequestType, dataMap: DataMap, given: readonly string[]): Stage[] {
  const stages: Stage[] = [];
  const acting = dataMap.systems.filter((s) => s.actions[type] !== undefined);

  // A lift undoes what earlier restrictions recorded, whoever the identities reach: it needs no resolution.
  const byRecord = (s: SystemConfig) => s.actions[type] === 'lift';
  const known = new Set(given);
  const pending = new Set(
    acting.every(byRecord) ? [] : dataMap.systems.filter((s) => s.provides.length > 0 && s.provides.some((p) => !known.has(p))),
  );
  for (;;) {
    const round = [...pending].filter((s) => s.identities.some((i) => known.has(i)));
    if (round.length === 0) break;
    stages.push({ kind: 'resolve', systems: round.map((s) => s.name) });
    for (const s of round) {
      pending.delete(s);
      s.provides.forEach((p) => known.add(p));
    }
  }

  const names = new Set(acting.map((s) => s.name));
  const done = new Set<string>();
  let remaining: SystemConfig[] = acting.filter((s) => byRecord(s) || s.identities.some((i) => known.has(i)));
  while (remaining.length > 0) {
    const ready = remaining.filter((s) => s.dependsOn.every((d) => done.has(d) || !names.has(d)));
    // Validation rejects dependency cycles; should one slip through, run the rest rather than never.
    const layer = ready.length > 0 ? ready : remaining;
    stages.push({ kind: 'act', tasks: layer.map((s) => ({ system: s.name, action: s.actions[type]! })) });
    layer.forEach((s) => done.add(s.name));
    remaining = remaining.filter((s) => !done.has(s.name));
  }
  return stages;
}

/** Systems with an action for this request type that no identity of the subject can reach. */
export function unreachableSystems(type: RequestType, dataMap: DataMap, given: readonly string[]): string[] {
  const reached = new Set(
    planStages(type, dataMap, given).flatMap((s) => (s.kind === 'act' ? s.tasks.map((t) => t.system) : [])),
  );
  return dataMap.systems.filter((s) => s.actions[type] !== undefined && !reached.has(s.name)).map((s) => s.name);
}

/**
 * The resolvers of a plan whose linked identities `system` is reached by, beyond those the request
 * gives. Should one of them fail, acting on the system would miss what only those identities reach:
 * the task fails instead of succeeding with nothing done (and a retry runs it again).
 */
export function resolversOf(system: string, stages: readonly Stage[], dataMap: DataMap, given: readonly string[]): string[] {
  const reachedBy = dataMap.systems.find((s) => s.name === system)?.identities ?? [];
  const resolvers = stages.flatMap((s) => (s.kind === 'resolve' ? s.systems : [])).filter((r) => r !== system);
  return resolvers.filter((r) => (dataMap.systems.find((s) => s.name === r)?.provides ?? []).some((p) => !given.includes(p) && reachedBy.includes(p)));
}
